"""Imports from an agency's systems: booking exports read into photos with provenance.

Reads files only: it knows nothing of the store or the workflow (which turns the photos
into enrolment requests, `candor.workflow.imports`), and may import `candor.images`.
"""

from candor.imports.errors import ImportFileError
from candor.imports.records import ImportedPhoto, ImportRefusal

__all__ = ["ImportFileError", "ImportRefusal", "ImportedPhoto"]
