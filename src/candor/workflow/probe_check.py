"""Looking at faces before and after a search: the probe check and the review material.

A web page shows an analyst the faces found in a photo and the quality gate's verdict
before the request is sent, and shows an examiner the probe and each candidate side by
side. Both touch face data, so both live here, behind the policy's permissions, and both
leave an audit entry; neither records a search nor compares a face with the gallery.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from candor.faces import DetectedFace
from candor.images import PROBE_LIMITS, DecodedImage, decode_image, load_image
from candor.images.annotate import photo_with_box
from candor.policy import has_permission
from candor.store import (
    BiometricNotFoundError,
    GalleryImage,
    gallery_rows_named,
)
from candor.store.requests import request_by_id
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.enrolment import quality_summary
from candor.workflow.errors import RequestNotFoundError, WorkflowError
from candor.workflow.permissions import (
    PermissionDeniedError,
    require_current_certificate,
    require_permission,
    require_policy,
)
from candor.workflow.probes import stored_crop, stored_image, stored_probe

# The most bytes a photo may have: what decoding accepts, so an interface can refuse an
# upload before it has all of it.
UPLOAD_MAX_BYTES = PROBE_LIMITS.max_bytes
# Face pictures are shown, not measured: small enough to send inline with the page.
_PREVIEW_SIDE = 160
# Context around a detected box, so a person sees the head, not a cut-out.
_MARGIN = 0.25


@dataclass(frozen=True)
class CheckedFace:
    """One face found in a probe photo, with the quality gate's verdict on it."""

    index: int
    box: tuple[int, int, int, int]
    usable: bool
    reasons: tuple[str, ...]
    quality: dict[str, Any]
    preview_png: bytes


@dataclass(frozen=True)
class ProbeCheck:
    """What a photo would give a search: its faces (largest first) and which one is used."""

    image_sha256: str
    format: str
    width: int
    height: int
    faces: tuple[CheckedFace, ...]

    @property
    def verdict(self) -> str:
        """One sentence: can this photo be searched as it is, and if not, why."""
        usable = [face for face in self.faces if face.usable]
        if not self.faces:
            return "no face found: this photo cannot be searched"
        if not usable:
            return "no face passes the quality gate: this photo cannot be searched"
        if len(self.faces) == 1:
            return "one face, which passes the quality gate"
        return f"{len(self.faces)} faces found: choose the one to search with"


@dataclass(frozen=True)
class CandidateMaterial:
    """What an examiner compares for one candidate: the gallery crop and its provenance."""

    rank: int
    crop_png: bytes | None  # None when the image has since been expunged
    provenance: dict[str, Any] | None
    # The whole gallery photo with the face box drawn (JPEG; candor.images.annotate), and
    # the quality figures recorded when it was enrolled; None once expunged.
    photo_jpeg: bytes | None = None
    quality: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReviewMaterial:
    """The probe's face and every candidate's, for side-by-side review."""

    search_id: int
    probe_png: bytes | None  # None once the probe has been purged under retention
    threshold: float | None
    candidates: tuple[CandidateMaterial, ...]
    # The whole probe photo with the searched face's box drawn (JPEG), and that face's
    # quality figures; None once the probe has been purged.
    probe_photo_jpeg: bytes | None = None
    probe_quality: dict[str, Any] | None = None


def check_probe(
    workflow: Workflow, actor: Actor, path: Path, face_index: int | None = None
) -> ProbeCheck:
    """Decode a photo and find its faces and their quality, without searching anything.

    face_index: only checked to exist (the faces are always all returned).
    The photo must be within `PROBE_LIMITS`, as a search's probe must.
    """
    require_permission(workflow, actor, "search.request")
    require_current_certificate(actor)
    image = load_image(path, limits=PROBE_LIMITS)
    faces = workflow.engine.detect_faces(image)
    if face_index is not None and not 0 <= face_index < len(faces):
        raise WorkflowError(
            f"{path.name}: face {face_index} asked for, but the photo has {len(faces)} "
            "face(s), numbered from 0"
        )
    checked = tuple(_checked_face(image, index, face) for index, face in enumerate(faces))
    with workflow.workspace.session() as session, session.begin():
        record(
            session,
            workflow,
            actor.username,
            "probe.checked",
            {},
            {
                "probe_sha256": image.sha256,
                "faces": len(checked),
                "usable": sum(1 for face in checked if face.usable),
            },
        )
    height, width = image.pixels.shape[:2]
    return ProbeCheck(image.sha256, image.format, width, height, checked)


def checked_faces(image: DecodedImage, faces: Sequence[DetectedFace]) -> tuple[CheckedFace, ...]:
    """Each face of a photo with the quality gate's verdict and a picture (also for a photo
    about to be enrolled: workflow.gallery.enrolment_faces)."""
    return tuple(_checked_face(image, index, face) for index, face in enumerate(faces))


def _checked_face(image: DecodedImage, index: int, face: DetectedFace) -> CheckedFace:
    box = (face.box.left, face.box.top, face.box.right, face.box.bottom)
    summary = quality_summary(face)
    return CheckedFace(
        index=index,
        box=box,
        usable=face.quality.passed,
        reasons=tuple(face.quality.reasons),
        quality={key: value for key, value in summary.items() if key != "reasons"},
        preview_png=_preview(image.pixels, box),
    )


def _preview(pixels: np.ndarray, box: tuple[int, int, int, int]) -> bytes:
    left, top, right, bottom = box
    pad_x, pad_y = int((right - left) * _MARGIN), int((bottom - top) * _MARGIN)
    height, width = pixels.shape[:2]
    region = pixels[
        max(0, top - pad_y) : min(height, bottom + pad_y),
        max(0, left - pad_x) : min(width, right + pad_x),
    ]
    return _png(region)


def _png(pixels: np.ndarray) -> bytes:
    picture = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    picture.thumbnail((_PREVIEW_SIDE, _PREVIEW_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def review_material(workflow: Workflow, actor: Actor, search_id: int) -> ReviewMaterial:
    """The probe's aligned face and each candidate's gallery crop with its provenance.

    For the people who may see the candidate list (examiners and supervisors, never the
    requester); audited, like viewing the list itself.
    """
    policy = require_policy(workflow)
    may_review = has_permission(policy, actor.roles, "candidate.review")
    may_supervise = has_permission(policy, actor.roles, "search.approve")
    if not (may_review or may_supervise) or actor.disabled:
        raise PermissionDeniedError("only examiners and supervisors see candidate faces")
    vault = workflow.workspace.vault
    with workflow.workspace.session() as session, session.begin():
        row = request_by_id(session, search_id)
        if row is None:
            raise RequestNotFoundError(search_id)
        if row.requester_id == actor.user_id:
            raise PermissionDeniedError(
                f"request {search_id} is your own: its candidates go to independent examiners"
            )
        if row.status != "completed" or row.kind != "search":
            raise WorkflowError(f"request {search_id} has no candidate list ({row.status})")
        candidates = []
        for candidate in row.candidates:
            _, image = gallery_rows_named(
                session, candidate.subject_id, candidate.image_id, named_at=row.ran_at
            )
            candidates.append(
                CandidateMaterial(
                    rank=candidate.rank,
                    crop_png=None if image is None else _stored_crop(workflow, image.sha256),
                    provenance=None if image is None else _provenance(image),
                    photo_jpeg=None if image is None else _gallery_photo(workflow, image),
                    quality=None if image is None else dict(image.quality),
                )
            )
        probe_sha256 = row.probe_sha256 if vault.has_probe(row.probe_sha256) else None
        face_index = row.face_index or 0
        threshold = row.threshold
        record(
            session,
            workflow,
            actor.username,
            "candidates.faces_viewed",
            {"search": row.id},
            {"candidates": len(candidates), "probe_shown": probe_sha256 is not None},
        )
    probe = None
    if probe_sha256 is not None:
        probe = _probe_face(workflow, probe_sha256, face_index, search_id)
    return ReviewMaterial(
        search_id,
        None if probe is None else probe.chip_png,
        threshold,
        tuple(candidates),
        probe_photo_jpeg=None if probe is None else probe.photo_jpeg,
        probe_quality=None if probe is None else probe.quality,
    )


def _gallery_photo(workflow: Workflow, image: GalleryImage) -> bytes | None:
    try:
        data = stored_image(workflow, image.sha256, image.subject_id)
    except BiometricNotFoundError:
        return None  # a gallery held as templates only (e.g. synthetic) has no photo
    pixels = decode_image(data, name=f"gallery image {image.id}").pixels
    box = (image.face_left, image.face_top, image.face_right, image.face_bottom)
    return photo_with_box(pixels, box)


@dataclass(frozen=True)
class _ProbeFace:
    chip_png: bytes
    photo_jpeg: bytes
    quality: dict[str, Any]


def _stored_crop(workflow: Workflow, sha256: str) -> bytes | None:
    try:
        return stored_crop(workflow, sha256)
    except BiometricNotFoundError:
        return None


def _probe_face(
    workflow: Workflow, sha256: str, face_index: int, search_id: int
) -> _ProbeFace | None:
    # The gallery's crops are aligned chips, so the probe is shown the same way; the
    # whole photo beside it shows the face the search used by its box.
    image = decode_image(stored_probe(workflow, sha256), name=f"request {search_id}")
    faces = workflow.engine.detect_faces(image)
    if not 0 <= face_index < len(faces):
        return None
    face = faces[face_index]
    box = (face.box.left, face.box.top, face.box.right, face.box.bottom)
    summary = quality_summary(face)
    return _ProbeFace(
        chip_png=_png(workflow.engine.aligned_chip(image, face)),
        photo_jpeg=photo_with_box(image.pixels, box),
        quality={key: value for key, value in summary.items() if key != "reasons"},
    )


def _provenance(image: GalleryImage) -> dict[str, Any]:
    def text(value: object) -> object:
        return value.isoformat() if isinstance(value, date | datetime) else value

    return {
        "image_id": image.id,
        "source_type": image.source_type,
        "source_ref": image.source_ref,
        "legal_basis": image.legal_basis,
        "collected_on": text(image.collected_on),
        "retain_until": text(image.retain_until),
        "enrolled_by": image.enrolled_by,
        "enrolled_at": text(image.enrolled_at),
        "face_choice": image.face_choice,
        "format": image.format,
        "width": image.width,
        "height": image.height,
    }


__all__ = [
    "UPLOAD_MAX_BYTES",
    "CandidateMaterial",
    "CheckedFace",
    "ProbeCheck",
    "ReviewMaterial",
    "check_probe",
    "review_material",
]
