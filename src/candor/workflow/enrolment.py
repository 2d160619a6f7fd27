"""Enrolment: lawfully sourced photos into the gallery, each with its provenance.

One photo is one transaction: a photo that fails (no face, poor quality, a corrupt
file, a provenance problem) is reported and skipped, and nothing already enrolled is
touched. Enrolling the same image again changes nothing and says so.

A photo may carry its own provenance (an import from a booking system: each record has
its own source reference and dates) and an origin naming where it came from ("intake.csv
row 7"); every request's provenance is checked before any photo is read, so a batch with
one unlawful record stores nothing, and the refusal names that record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path

from candor.faces import DetectedFace
from candor.faces.extraction import FaceExtraction, extract_faces, extract_one
from candor.policy import Policy, gallery_retain_until_limit
from candor.store import (
    GalleryError,
    Provenance,
    ProvenanceError,
    add_gallery_image,
    add_template,
    face_choice_label,
    get_or_create_subject,
    image_by_sha256,
    validate_provenance,
)
from candor.workflow import limits
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.models import active_model
from candor.workflow.permissions import require_permission


class EnrolmentStatus(StrEnum):
    """What became of one photo."""

    ENROLLED = "enrolled"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass(frozen=True)
class EnrolmentRequest:
    """One photo file and the agency's reference of the person it shows.

    provenance: this photo's own, instead of the call's (an imported record's).
    origin: where the photo came from ("intake.csv row 7", "tx0001.an2 record 10.003");
        every refusal about the photo names it.
    """

    path: Path
    subject_ref: str
    provenance: Provenance | None = None
    origin: str | None = None


class EnrolmentRefusedError(WorkflowError):
    """One photo's provenance or reference is refused before any photo is read.

    The message names the photo's origin and the field: "intake.csv row 7: field
    retain_until: ...".
    """

    def __init__(self, origin: str, field: str, problem: str) -> None:
        self.origin = origin
        self.field = field
        self.problem = problem
        super().__init__(f"{origin}: field {field}: {problem}")


@dataclass(frozen=True)
class EnrolmentOutcome:
    """The result for one file; `reason` says why it was refused or what it duplicates."""

    path: Path
    subject_ref: str
    status: EnrolmentStatus
    reason: str | None = None
    image_sha256: str | None = None
    image_id: int | None = None
    template_id: int | None = None
    faces_found: int = 0
    face_choice: str | None = None
    origin: str | None = None


@dataclass
class EnrolmentSummary:
    """Every file's outcome, in the order given."""

    outcomes: list[EnrolmentOutcome] = field(default_factory=list)

    def count(self, status: EnrolmentStatus) -> int:
        """How many files ended with `status`."""
        return sum(1 for outcome in self.outcomes if outcome.status is status)


ProgressCallback = Callable[[EnrolmentOutcome], None]


def default_workers(file_count: int) -> int:
    """Worker processes for a batch: one per core, but one for a handful of files.

    A spawned worker takes about a second to load the models, more than a few photos
    cost in this process.
    """
    if file_count < 8:
        return 1
    return max(1, min(os.cpu_count() or 1, file_count // 4))


def enrol_files(
    workflow: Workflow,
    actor: Actor,
    requests: Sequence[EnrolmentRequest],
    provenance: Provenance | None,
    *,
    workers: int | None = None,
    face_index: int | None = None,
    on_outcome: ProgressCallback | None = None,
) -> EnrolmentSummary:
    """Enrol each photo for its subject; returns every file's outcome.

    actor: an admin (the policy's `gallery.enrol`); recorded as who enrolled each photo.
    provenance: applies to every photo without its own (EnrolmentRequest.provenance);
        None when every request has its own. Every photo's provenance is checked before
        any photo is read (`check_enrolment`), so a wrong source type fails at once with
        the field (and the photo's origin) named. The source type must be allowed both by
        the workspace's purpose and by the active policy.
    workers: processes for detection and templates (default: `default_workers`).
    face_index: take this face (0 = largest) instead of the largest face nearest the
        centre; for a single photo showing several people.
    on_outcome: called after each file, in order (for progress bars).
    """
    workspace = workflow.workspace
    checked = check_enrolment(workflow, actor, requests, provenance)
    summary = EnrolmentSummary()
    if not requests:
        return summary
    workflow.model_in_step()  # templates of the model active now (another process's switch)
    paths = [request.path for request in requests]
    processes = workers or default_workers(len(paths))
    extractions: Iterator[FaceExtraction]
    if processes == 1 or len(paths) == 1:
        extractions = _extracted_here(workflow, paths, face_index)
    else:
        extractions = extract_faces(
            paths,
            workflow.settings,
            workers=processes,
            keep_data=True,
            face_index=face_index,
            views=workflow.recipe.enrol_views,
        )
    for request, extraction, photo_provenance in zip(requests, extractions, checked, strict=True):
        outcome = _enrol_one(workflow, actor, request, extraction, photo_provenance)
        summary.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    with workspace.session() as session, session.begin():
        record(
            session,
            workflow,
            actor.username,
            "gallery.enrolment_batch",
            {},
            {
                "files": len(summary.outcomes),
                "enrolled": summary.count(EnrolmentStatus.ENROLLED),
                "duplicates": summary.count(EnrolmentStatus.DUPLICATE),
                "refused": summary.count(EnrolmentStatus.REFUSED),
                "source_type": ", ".join(sorted({item.source_type for item in checked})),
            },
        )
    return summary


def check_enrolment(
    workflow: Workflow,
    actor: Actor,
    requests: Sequence[EnrolmentRequest],
    provenance: Provenance | None,
) -> list[Provenance]:
    """Each request's checked provenance, in order; reads no photo and stores nothing.

    Makes every check enrolment makes before reading a photo: the permission, the text
    limits, the provenance against the workspace's purpose and the policy, the policy's
    retention limit. The call's `provenance` is checked when some request uses it (or
    there are no requests: queueing checks it alone) and refused as before, naming the
    field; a refusal about a request with an origin raises EnrolmentRefusedError naming
    the origin and the field.
    """
    policy = require_permission(workflow, actor, "gallery.enrol")
    allowed = _allowed_sources(workflow, policy)
    today = workflow.today()
    shared: Provenance | None = None
    if provenance is not None and (
        not requests or any(request.provenance is None for request in requests)
    ):
        shared = _checked_provenance(provenance, policy, allowed, today)
    # A batch of imported records repeats few distinct provenances; each is checked once.
    seen: dict[Provenance, Provenance] = {}
    checked: list[Provenance] = []
    for request in requests:
        try:
            limits.SUBJECT_REF.check(request.subject_ref.strip())
            if request.provenance is None:
                if shared is None:
                    raise EnrolmentRefusedError(
                        request.origin or str(request.path),
                        "provenance",
                        "this photo has no provenance of its own and the call gives none",
                    )
                checked.append(shared)
                continue
            if request.provenance not in seen:
                seen[request.provenance] = _checked_provenance(
                    request.provenance, policy, allowed, today
                )
            checked.append(seen[request.provenance])
        except ProvenanceError as error:
            if request.origin is None:
                raise
            raise EnrolmentRefusedError(request.origin, error.field, error.problem) from None
        except limits.TextRefusedError as error:
            if request.origin is None:
                raise
            field_name = getattr(getattr(error, "limit", None), "field", "text")
            raise EnrolmentRefusedError(request.origin, field_name, str(error)) from None
    return checked


def check_source_type(workflow: Workflow, actor: Actor, source_type: str) -> Policy:
    """The active policy, if `actor` may enrol and `source_type` is allowed here.

    Refuses as enrolment would (ProvenanceError naming source_type): the workspace's purpose
    and the policy both decide. An import checks its source type once, before its records.
    """
    policy = require_permission(workflow, actor, "gallery.enrol")
    limits.SOURCE_TYPE.check(source_type)
    today = workflow.today()
    # The store's rule and message; every other field of this provenance passes.
    placeholder = Provenance(source_type, "-", "-", collected_on=today, retain_until=today)
    validate_provenance(
        placeholder, allowed_source_types=_allowed_sources(workflow, policy), today=today
    )
    return policy


def _checked_provenance(
    provenance: Provenance, policy: Policy, allowed: Sequence[str], today: date
) -> Provenance:
    """The provenance stripped and checked (limits, source type, dates, retention)."""
    limits.SOURCE_TYPE.check(provenance.source_type)
    limits.SOURCE_REF.check(provenance.source_ref.strip())
    limits.LEGAL_BASIS.check(provenance.legal_basis.strip())
    checked = validate_provenance(provenance, allowed_source_types=allowed, today=today)
    limit = gallery_retain_until_limit(policy, checked.collected_on)
    if limit is not None and checked.retain_until > limit:
        raise ProvenanceError(
            "retain_until",
            f"{checked.retain_until} is later than the policy allows for a photo collected on "
            f"{checked.collected_on} (at most {policy.retention.gallery_max_days} days: {limit})",
        )
    return checked


def _extracted_here(
    workflow: Workflow, paths: Sequence[Path], face_index: int | None
) -> Iterator[FaceExtraction]:
    """Each photo's extraction by the workflow's own engine, in this process.

    extract_faces would make a new engine (and load dlib's models again, seconds) for
    every call: each web enrolment. The workflow's engine is loaded once per process and
    its model passes take turns with searches (SerialEngine); same settings, so the same
    templates.
    """
    if face_index is not None and face_index < 0:
        raise ValueError("face_index counts from 0")
    return (
        extract_one(
            workflow.engine,
            Path(path),
            keep_data=True,
            face_index=face_index,
            views=workflow.recipe.enrol_views,
        )
        for path in paths
    )


def _allowed_sources(workflow: Workflow, policy: Policy) -> tuple[str, ...]:
    """Source types both the workspace's purpose and the agency's policy allow."""
    return tuple(
        source
        for source in workflow.workspace.allowed_source_types()
        if source in policy.gallery_source_types
    )


def _enrol_one(
    workflow: Workflow,
    actor: Actor,
    request: EnrolmentRequest,
    extraction: FaceExtraction,
    provenance: Provenance,
) -> EnrolmentOutcome:
    refused = _refused(request, extraction)
    template, sha256, data, chosen = (
        extraction.template,
        extraction.sha256,
        extraction.data,
        extraction.chosen,
    )
    if template is None or sha256 is None or data is None or chosen is None:
        return refused
    if extraction.image_format is None or extraction.width is None or extraction.height is None:
        return refused
    face = extraction.faces[chosen]
    workspace = workflow.workspace
    vault = workspace.vault
    try:
        with workspace.session() as session, session.begin():
            existing = image_by_sha256(session, sha256)
            if existing is not None:
                return _duplicate(request, extraction, existing.subject.external_ref)
            now = workflow.now()
            subject, created = get_or_create_subject(session, request.subject_ref, actor.username)
            if created:
                # The store dates new rows by the system clock; the workflow's clock decides.
                subject.created_at = now
            # Sealed under the subject's key, made in this transaction for a new subject:
            # should it roll back, the key goes with it and the files are erased below.
            key = workspace.keys.subject_key(session, subject.id, create=True)
            # Files first, row last: a row never points at a missing file. If the
            # transaction then fails, the files are erased below.
            vault.put_image(sha256, data, key)
            if extraction.chip_png is not None:
                vault.put_crop(sha256, extraction.chip_png, key)
            image = add_gallery_image(
                session,
                subject,
                sha256=sha256,
                image_format=extraction.image_format,
                width=extraction.width,
                height=extraction.height,
                byte_size=len(data),
                provenance=provenance,
                allowed_source_types=(provenance.source_type,),
                today=workflow.today(),
                enrolled_by=actor.username,
                face_choice=face_choice_label(extraction.requested_face, len(extraction.faces)),
                face_box=(face.box.left, face.box.top, face.box.right, face.box.bottom),
                quality=quality_summary(face),
                enrolled_at=now,
            )
            stored = add_template(
                session,
                image,
                model=template.model,
                detector_key=workflow.settings.key,
                recipe=workflow.recipe.key,
                vector=template.vector,
                vault=vault,
                keys=workflow.workspace.keys,
            )
            stored.created_at = now
            if workflow.follows_active_model:
                # Read after the template's insert, which waits for a model switch in
                # progress (PostgreSQL's gallery lock; SQLite's write lock): a template of
                # a model switched away from while this photo was read is not stored.
                active = active_model(session)
                if active.model_key != template.model.key:
                    raise GalleryError(
                        f"the workspace switched to face model {active.name} while this "
                        "photo was being enrolled; enrol it again"
                    )
            image_id, template_id = image.id, stored.id
            # Ids and hashes only: the subject's reference (a booking number) stays out.
            record(
                session,
                workflow,
                actor.username,
                "gallery.enrolled",
                {"subject": subject.id, "image": image_id, "template": template_id},
                {
                    "image_sha256": sha256,
                    "source_type": provenance.source_type,
                    "model": template.model.key,
                    "face_choice": image.face_choice,
                },
            )
    except GalleryError as error:
        _erase_unreferenced(workflow, sha256)
        return EnrolmentOutcome(
            request.path,
            request.subject_ref,
            EnrolmentStatus.REFUSED,
            reason=str(error),
            origin=request.origin,
        )
    except BaseException:
        _erase_unreferenced(workflow, sha256)
        raise
    if workflow.index_loaded:
        workflow.index.add([template_id], template.vector[None, :])
    return EnrolmentOutcome(
        request.path,
        request.subject_ref,
        EnrolmentStatus.ENROLLED,
        image_sha256=sha256,
        image_id=image_id,
        template_id=template_id,
        faces_found=len(extraction.faces),
        face_choice=face_choice_label(extraction.requested_face, len(extraction.faces)),
        origin=request.origin,
    )


def _refused(request: EnrolmentRequest, extraction: FaceExtraction) -> EnrolmentOutcome:
    return EnrolmentOutcome(
        request.path,
        request.subject_ref,
        EnrolmentStatus.REFUSED,
        reason=extraction.refusal or "no usable face",
        image_sha256=extraction.sha256,
        faces_found=len(extraction.faces),
        origin=request.origin,
    )


def _duplicate(
    request: EnrolmentRequest, extraction: FaceExtraction, enrolled_for: str
) -> EnrolmentOutcome:
    if enrolled_for == request.subject_ref.strip():
        reason = f"already enrolled for {enrolled_for}; nothing changed"
    else:
        reason = (
            f"this exact image is already enrolled for {enrolled_for}, not "
            f"{request.subject_ref}; nothing changed"
        )
    return EnrolmentOutcome(
        request.path,
        request.subject_ref,
        EnrolmentStatus.DUPLICATE,
        reason=reason,
        image_sha256=extraction.sha256,
        faces_found=len(extraction.faces),
        origin=request.origin,
    )


def _erase_unreferenced(workflow: Workflow, sha256: str) -> None:
    """Remove files written for an image whose row did not commit (and no other row uses)."""
    with workflow.workspace.session() as session:
        if image_by_sha256(session, sha256) is not None:
            return
    workflow.workspace.vault.erase_image(sha256)


def quality_summary(face: DetectedFace) -> dict[str, float | list[str]]:
    """The quality gate's measurements of one face, as stored and shown (no biometrics)."""
    quality = face.quality
    return {
        "eye_distance_px": round(quality.eye_distance_px, 2),
        "sharpness": round(quality.sharpness, 2),
        "yaw_degrees": round(quality.yaw_degrees, 1),
        "roll_degrees": round(quality.roll_degrees, 1),
        "detector_confidence": round(quality.detector_confidence, 3),
        "reasons": list(quality.reasons),
    }


def requests_from_folders(root: Path) -> list[EnrolmentRequest]:
    """One request per photo in `root/<subject>/<photo>`, subjects and files in sorted order.

    Hidden files and folders are skipped; anything else is handed to the decoder, which
    recognises images by content and refuses the rest with a reason.
    """
    if not root.is_dir():
        raise WorkflowError(f"{root} is not a folder")
    requests = [
        EnrolmentRequest(path, folder.name)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]
    if not requests:
        raise WorkflowError(
            f"{root} has no photos in per-person folders (<folder>/<person>/<photo>)"
        )
    return requests
