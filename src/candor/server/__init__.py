"""The Candor server: a JSON API and web pages over the workflow, and nothing below it."""
