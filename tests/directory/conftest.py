"""The directory tests run against a real slapd (tests/support_slapd.py)."""

from tests.support_slapd import slapd

__all__ = ["slapd"]
