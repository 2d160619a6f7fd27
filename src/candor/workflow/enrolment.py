"""Enrolment: lawfully sourced photos into the gallery, each with its provenance.

One photo is one transaction: a photo that fails (no face, poor quality, a corrupt
file, a provenance problem) is reported and skipped, and nothing already enrolled is
touched. Enrolling the same image again changes nothing and says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
from candor.workflow.permissions import require_permission


class EnrolmentStatus(StrEnum):
    """What became of one photo."""

    ENROLLED = "enrolled"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass(frozen=True)
class EnrolmentRequest:
    """One photo file and the agency's reference of the person it shows."""

    path: Path
    subject_ref: str


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
    provenance: Provenance,
    *,
    workers: int | None = None,
    face_index: int | None = None,
    on_outcome: ProgressCallback | None = None,
) -> EnrolmentSummary:
    """Enrol each photo for its subject; returns every file's outcome.

    actor: an admin (the policy's `gallery.enrol`); recorded as who enrolled each photo.
    provenance: applies to every photo of the call; checked before any photo is read,
        so a wrong source type fails at once with the field named. The source type must
        be allowed both by the workspace's purpose and by the active policy.
    workers: processes for detection and templates (default: `default_workers`).
    face_index: take this face (0 = largest) instead of the largest face nearest the
        centre; for a single photo showing several people.
    on_outcome: called after each file, in order (for progress bars).
    """
    workspace = workflow.workspace
    policy = require_permission(workflow, actor, "gallery.enrol")
    limits.SOURCE_TYPE.check(provenance.source_type)
    limits.SOURCE_REF.check(provenance.source_ref.strip())
    limits.LEGAL_BASIS.check(provenance.legal_basis.strip())
    for request in requests:
        limits.SUBJECT_REF.check(request.subject_ref.strip())
    checked = validate_provenance(
        provenance,
        allowed_source_types=_allowed_sources(workflow, policy),
        today=workflow.today(),
    )
    limit = gallery_retain_until_limit(policy, checked.collected_on)
    if limit is not None and checked.retain_until > limit:
        raise ProvenanceError(
            "retain_until",
            f"{checked.retain_until} is later than the policy allows for a photo collected on "
            f"{checked.collected_on} (at most {policy.retention.gallery_max_days} days: {limit})",
        )
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
    for request, extraction in zip(requests, extractions, strict=True):
        outcome = _enrol_one(workflow, actor, request, extraction, checked)
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
                "source_type": checked.source_type,
            },
        )
    return summary


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
            request.path, request.subject_ref, EnrolmentStatus.REFUSED, reason=str(error)
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
    )


def _refused(request: EnrolmentRequest, extraction: FaceExtraction) -> EnrolmentOutcome:
    return EnrolmentOutcome(
        request.path,
        request.subject_ref,
        EnrolmentStatus.REFUSED,
        reason=extraction.refusal or "no usable face",
        image_sha256=extraction.sha256,
        faces_found=len(extraction.faces),
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
