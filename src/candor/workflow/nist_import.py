"""`candor enrol --nist`: ANSI/NIST-ITL transactions enrolled, each photo with its record's
provenance.

`candor.imports.nist` reads the file (or a folder of them) into a private staging folder
inside the workspace (`upload_folder`: mode 0700, overwritten with zeros and removed on
exit, and any left by a killed process erased at the next start); `candor.workflow.imports`
turns the photos into enrolment requests and enrols them (every record checked first;
nothing stored when one is refused, unless the caller skips refused records). A Type-10
record that is not a face (a scar, a tattoo) is skipped and reported: it is no fault of
the export and stops nothing.

A background job stores where the file is, its digest, the mapping and the command's
values, never the photos: the runner reads the file again when it runs, into a staging
folder of its own, and refuses a file that changed since it was queued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from candor.imports.errors import ImportFileError
from candor.imports.nist import (
    NistMapping,
    SkippedRecord,
    mapping_from_table,
    mapping_table,
    read_transactions,
)
from candor.imports.records import ImportedPhoto, ImportRefusal
from candor.workflow.accounts import Actor
from candor.workflow.context import Workflow
from candor.workflow.enrolment import EnrolmentRequest, EnrolmentSummary, ProgressCallback
from candor.workflow.errors import WorkflowError
from candor.workflow.imports import (
    DEFAULT_SOURCE_TYPE,
    ImportPlan,
    ImportRefusedError,
    ImportResult,
    enrol_planned,
    plan_import,
)
from candor.workflow.jobs import JobView, queue_nist_enrolment
from candor.workflow.upkeep import upload_folder


@dataclass(frozen=True)
class NistImport:
    """What `candor enrol --nist` asks for.

    path: an ANSI/NIST-ITL file, or a folder of them.
    mapping: which fields fill the provenance (`candor.imports.nist.default_mapping`).
    source_type: every photo's (`booking_photo` unless told; an evaluation workspace
        takes `evaluation` only).
    legal_basis, retain_until: for records without their own (else the policy's limit).
    skip_refused: enrol the other records when some are refused (default: none).
    """

    path: Path
    mapping: NistMapping
    source_type: str = DEFAULT_SOURCE_TYPE
    legal_basis: str | None = None
    retain_until: date | None = None
    skip_refused: bool = False


@dataclass(frozen=True)
class NistResult:
    """Refused and skipped records, and the enrolment: its outcomes, or the job queued."""

    refused: list[ImportRefusal]
    skipped: list[ImportRefusal]
    summary: EnrolmentSummary | None = None
    job: JobView | None = None


@dataclass(frozen=True)
class StagedImport:
    """The transactions read into a private folder: photos to enrol, refused records,
    skipped ones (no faces: reported, never in the way)."""

    photos: list[ImportedPhoto]
    refused: list[ImportRefusal]
    skipped: list[ImportRefusal]


def enrol_nist(
    workflow: Workflow,
    actor: Actor,
    request: NistImport,
    *,
    background: bool = False,
    workers: int | None = None,
    on_outcome: ProgressCallback | None = None,
) -> NistResult:
    """Enrol the face photos of ANSI/NIST-ITL transactions, or queue a job that will.

    Raises ImportFileError for a file that cannot be read at all (naming it), and
    ImportRefusedError (nothing stored or queued) when a record is refused and
    `request.skip_refused` is false.
    """
    with staged_transactions(workflow, request) as staged:
        plan = plan_nist(workflow, actor, request, staged)
        if background:
            result = queue_nist(workflow, actor, request, plan)
        else:
            result = enrol_planned(
                workflow,
                actor,
                plan,
                skip_refused=request.skip_refused,
                workers=workers,
                on_outcome=on_outcome,
            )
    return NistResult(result.refused, staged.skipped, summary=result.summary, job=result.job)


def plan_nist(
    workflow: Workflow, actor: Actor, request: NistImport, staged: StagedImport
) -> ImportPlan:
    """Each staged photo's enrolment request, or its refusal (`plan_import`)."""
    return plan_import(
        workflow,
        actor,
        staged.photos,
        staged.refused,
        source_type=request.source_type,
        legal_basis=request.legal_basis,
        retain_until=request.retain_until,
    )


def queue_nist(
    workflow: Workflow, actor: Actor, request: NistImport, plan: ImportPlan
) -> ImportResult:
    """Queue a job that reads the file again and enrols what `plan` would enrol now.

    Refuses as `enrol_planned` does (ImportRefusedError) when records are refused and
    `request.skip_refused` is false; nothing is queued then.
    """
    _check_plan(request, plan)
    job = queue_nist_enrolment(
        workflow,
        actor,
        _job_params(request, len(plan.requests)),
        photos=len(plan.requests),
        source_type=request.source_type,
    )
    return ImportResult(plan.refused, job=job)


@contextmanager
def staged_transactions(workflow: Workflow, request: NistImport) -> Iterator[StagedImport]:
    """The transactions read into a private folder inside the workspace, erased on exit
    (the photos' files are only valid inside the block)."""
    if not request.path.exists():
        raise ImportFileError(f"{request.path}: there is no such file or folder")
    with upload_folder(workflow) as staging:
        photos, refusals = read_transactions(request.path, request.mapping, staging)
        yield StagedImport(
            photos,
            refused=[r for r in refusals if not isinstance(r, SkippedRecord)],
            skipped=[r for r in refusals if isinstance(r, SkippedRecord)],
        )


@contextmanager
def job_requests(
    workflow: Workflow, actor: Actor, params: Mapping[str, Any]
) -> Iterator[list[EnrolmentRequest]]:
    """A queued NIST job's requests, the file read again into a staging folder (erased
    on exit). Refuses a file that changed since it was queued, and records that would
    now be enrolled differently (the policy changed meanwhile): queue it again."""
    request = _import_of(params)
    if _digest(request.path) != params["sha256"]:
        raise WorkflowError(
            f"{request.path} changed since the job was queued; nothing more was enrolled "
            "from it: queue it again"
        )
    with staged_transactions(workflow, request) as staged:
        plan = plan_nist(workflow, actor, request, staged)
        _check_plan(request, plan)
        if len(plan.requests) != params["photos"]:
            raise WorkflowError(
                f"{request.path}: {len(plan.requests)} record(s) would be enrolled now, "
                f"{params['photos']} when the job was queued (the policy changed?): queue "
                "it again"
            )
        yield plan.requests


def _check_plan(request: NistImport, plan: ImportPlan) -> None:
    """The rule of `enrol_planned`, for a job: refused records stop it unless skipped."""
    if plan.refused and (not request.skip_refused or not plan.requests):
        raise ImportRefusedError(plan.refused, plan.total)
    if not plan.requests:
        raise WorkflowError(f"{request.path} has no face photos to enrol")


def _job_params(request: NistImport, photos: int) -> dict[str, Any]:
    path = request.path.absolute()
    return {
        "path": str(path),
        "sha256": _digest(path),
        "mapping": mapping_table(request.mapping),
        "source_type": request.source_type,
        "legal_basis": request.legal_basis,
        "retain_until": None if request.retain_until is None else request.retain_until.isoformat(),
        "skip_refused": request.skip_refused,
        "photos": photos,
    }


def _import_of(params: Mapping[str, Any]) -> NistImport:
    retain_until = params.get("retain_until")
    return NistImport(
        path=Path(params["path"]),
        mapping=mapping_from_table(params["mapping"], "the job's mapping"),
        source_type=params["source_type"],
        legal_basis=params.get("legal_basis"),
        retain_until=None if retain_until is None else date.fromisoformat(retain_until),
        skip_refused=bool(params.get("skip_refused")),
    )


def _digest(path: Path) -> str:
    """The SHA-256 of what `read_transactions` reads: the file, or the folder's files by name."""
    digest = hashlib.sha256()
    try:
        files = (
            sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
            if path.is_dir()
            else [path]
        )
        for file in files:
            digest.update(file.name.encode() + b"\0")
            with file.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    except OSError as error:
        raise ImportFileError(f"{path}: cannot be read ({error.strerror})") from None
    return digest.hexdigest()
