"""What an import reads from an agency's export: photos with their record's provenance.

An import knows nothing of the gallery: it reads an export (a CSV manifest, ANSI/NIST
transactions) into `ImportedPhoto`s, and every record it cannot take into an
`ImportRefusal` naming the record. The workflow turns the photos into enrolment requests,
filling what a record leaves out from the command or the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class ImportedPhoto:
    """One photo of an export and what its record says about it.

    origin: where it came from, named in every refusal ("intake.csv row 7",
        "tx0001.an2 record 10.003").
    subject_ref: the agency's reference of the person.
    source_ref: the source's own reference (a transaction control number, a booking).
    collected_on, retain_until, legal_basis: None where the record does not say; the
        command or the policy fills them.
    booking_number: the agency's booking number, where the export has one.
    path: the photo file (an export's own, or one written to a staging folder).
    """

    origin: str
    subject_ref: str
    source_ref: str
    collected_on: date | None
    retain_until: date | None
    legal_basis: str | None
    booking_number: str | None
    path: Path


@dataclass(frozen=True)
class ImportRefusal:
    """A record an import does not take, and why (one line naming the field)."""

    origin: str
    reason: str
