"""Candor: accountable face search for an investigative unit."""
