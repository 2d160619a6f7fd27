"""Simulation: synthetic galleries and simulated activity, a client of the workflow.

Nothing here writes to a workspace by itself: every change goes through a workflow
function, as it would from the CLI or the server (DESIGN.md, Parts).
"""
