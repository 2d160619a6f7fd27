"""Errors an import raises for a whole file (a refused record is an ImportRefusal)."""

from __future__ import annotations


class ImportFileError(ValueError):
    """A whole file cannot be read (missing, empty, not UTF-8, not CSV, not ANSI/NIST...).

    The message names the file and what is wrong with it.
    """
