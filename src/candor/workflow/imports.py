"""Imports from a booking system: each record's photo enrolled with the record's provenance.

A reader in `candor.imports` (a CSV manifest, ANSI/NIST transactions) turns an export into
`ImportedPhoto`s and `ImportRefusal`s. Here each photo becomes an enrolment request with
its own provenance: the record's values first, then the command's (`legal_basis`,
`collected_on`, `retain_until`), then the policy's (the latest retention date its gallery
maximum allows). The source type is the command's, `booking_photo` by default, and must be
allowed by the workspace's purpose and the policy (an evaluation workspace takes no booking
photos): it is checked once, before any record.

Every record is checked before anything is stored: its provenance, its references'
lengths and characters, its dates against today and the policy's retention limit. When
any record is refused, nothing is stored and `ImportRefusedError` carries every refusal,
unless the caller asks to skip refused records (`skip_refused`), when the rest are
enrolled and the refusals are returned beside the outcomes.

There is no column for a booking number: a record's booking number is kept in the stored
source reference, after the record's own ("TCN 0001 booking B-77").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from candor.imports.records import ImportedPhoto, ImportRefusal
from candor.policy import Policy, gallery_retain_until_limit
from candor.store import Provenance
from candor.workflow import limits
from candor.workflow.accounts import Actor
from candor.workflow.context import Workflow
from candor.workflow.enrolment import (
    EnrolmentRefusedError,
    EnrolmentRequest,
    EnrolmentSummary,
    ProgressCallback,
    check_enrolment,
    check_source_type,
    enrol_files,
)
from candor.workflow.errors import WorkflowError
from candor.workflow.jobs import JobView, queue_enrolment

DEFAULT_SOURCE_TYPE = "booking_photo"


class ImportRefusedError(WorkflowError):
    """Records of an import were refused, so nothing was stored; `refused` says which, why."""

    def __init__(self, refused: Sequence[ImportRefusal], total: int) -> None:
        self.refused = list(refused)
        self.total = total
        first = self.refused[0]
        super().__init__(
            f"{len(self.refused)} of {total} record(s) refused, so nothing was stored "
            f"(first: {first.origin}: {first.reason})"
        )


@dataclass(frozen=True)
class ImportPlan:
    """What an import would enrol, and what it refuses; nothing is stored yet."""

    requests: list[EnrolmentRequest]
    refused: list[ImportRefusal]
    total: int


@dataclass(frozen=True)
class ImportResult:
    """An import's refusals and its enrolment: the outcomes, or the job queued for it."""

    refused: list[ImportRefusal]
    summary: EnrolmentSummary | None = None
    job: JobView | None = None


def plan_import(
    workflow: Workflow,
    actor: Actor,
    photos: Sequence[ImportedPhoto],
    refused: Sequence[ImportRefusal] = (),
    *,
    source_type: str = DEFAULT_SOURCE_TYPE,
    legal_basis: str | None = None,
    collected_on: date | None = None,
    retain_until: date | None = None,
) -> ImportPlan:
    """Each photo's enrolment request, or its refusal; reads no photo, stores nothing.

    refused: the reader's refusals, reported with the records refused here.
    source_type: for every photo (the command's); refused at once when not allowed.
    legal_basis, collected_on, retain_until: the command's, for records without their own.
    """
    policy = check_source_type(workflow, actor, source_type)
    if legal_basis is not None:
        limits.LEGAL_BASIS.check(legal_basis.strip())
    requests: list[EnrolmentRequest] = []
    refusals = list(refused)
    for photo in photos:
        try:
            provenance = _provenance_of(
                photo, policy, source_type, legal_basis, collected_on, retain_until
            )
            request = EnrolmentRequest(photo.path, photo.subject_ref, provenance, photo.origin)
            check_enrolment(workflow, actor, [request], None)
        except EnrolmentRefusedError as error:
            refusals.append(ImportRefusal(photo.origin, f"field {error.field}: {error.problem}"))
            continue
        requests.append(request)
    refusals.sort(key=lambda refusal: _in_order(refusal.origin))
    return ImportPlan(requests, refusals, total=len(photos) + len(refused))


def _in_order(origin: str) -> tuple[tuple[int, str], ...]:
    """Sorts origins as people count ("row 9" before "row 10"): the reader's refusals and
    the workflow's, mixed, in the export's order."""
    # re.split with a group alternates text and digits: odd places hold the numbers,
    # compared by length, then digit by digit (no int(): a number may be very long).
    return tuple(
        (len(piece.lstrip("0")), piece.lstrip("0")) if place % 2 else (0, piece)
        for place, piece in enumerate(re.split(r"(\d+)", origin))
    )


def enrol_imported(
    workflow: Workflow,
    actor: Actor,
    photos: Sequence[ImportedPhoto],
    refused: Sequence[ImportRefusal] = (),
    *,
    source_type: str = DEFAULT_SOURCE_TYPE,
    legal_basis: str | None = None,
    collected_on: date | None = None,
    retain_until: date | None = None,
    skip_refused: bool = False,
    background: bool = False,
    workers: int | None = None,
    on_outcome: ProgressCallback | None = None,
) -> ImportResult:
    """Enrol an import's photos, each with its record's provenance (see `plan_import`).

    When any record is refused (by the reader or here), raises ImportRefusedError and
    stores nothing, unless `skip_refused`: then the others are enrolled.
    background: queue the enrolment as a job (the photo files must still be there when it
        runs) instead of enrolling now.
    """
    plan = plan_import(
        workflow,
        actor,
        photos,
        refused,
        source_type=source_type,
        legal_basis=legal_basis,
        collected_on=collected_on,
        retain_until=retain_until,
    )
    return enrol_planned(
        workflow,
        actor,
        plan,
        skip_refused=skip_refused,
        background=background,
        workers=workers,
        on_outcome=on_outcome,
    )


def enrol_planned(
    workflow: Workflow,
    actor: Actor,
    plan: ImportPlan,
    *,
    skip_refused: bool = False,
    background: bool = False,
    workers: int | None = None,
    on_outcome: ProgressCallback | None = None,
) -> ImportResult:
    """Enrol what `plan_import` planned (see `enrol_imported`); each request is checked
    again by the enrolment itself (the policy may have changed since)."""
    if plan.refused and (not skip_refused or not plan.requests):
        raise ImportRefusedError(plan.refused, plan.total)
    if not plan.requests:
        raise WorkflowError("the import has no records")
    if background:
        return ImportResult(plan.refused, job=queue_enrolment(workflow, actor, plan.requests, None))
    summary = enrol_files(
        workflow, actor, plan.requests, None, workers=workers, on_outcome=on_outcome
    )
    return ImportResult(plan.refused, summary=summary)


def _provenance_of(
    photo: ImportedPhoto,
    policy: Policy,
    source_type: str,
    legal_basis: str | None,
    collected_on: date | None,
    retain_until: date | None,
) -> Provenance:
    """The record's provenance, the command's and the policy's values filling its gaps."""
    collected = photo.collected_on or collected_on
    if collected is None:
        raise EnrolmentRefusedError(
            photo.origin, "collected", "the record has no collection date and none was given"
        )
    retain = photo.retain_until or retain_until or gallery_retain_until_limit(policy, collected)
    if retain is None:
        raise EnrolmentRefusedError(
            photo.origin,
            "retain_until",
            "the record has no retention date, none was given and the policy sets no "
            "gallery maximum",
        )
    basis = photo.legal_basis or legal_basis
    if basis is None or not basis.strip():
        raise EnrolmentRefusedError(
            photo.origin, "legal_basis", "the record has no legal basis and none was given"
        )
    source_ref = photo.source_ref.strip()
    if photo.booking_number is not None and photo.booking_number.strip():
        # No column for it (yet): kept beside the record's own reference, searchable.
        source_ref = f"{source_ref} booking {photo.booking_number.strip()}"
    return Provenance(
        source_type=source_type,
        source_ref=source_ref,
        legal_basis=basis,
        collected_on=collected,
        retain_until=retain,
    )
