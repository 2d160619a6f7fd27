"""Read-only views of the gallery for people: subjects, one subject's record and photos,
and the faces of a photo about to be enrolled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from candor.images import decode_image, load_image
from candor.images.annotate import photo_with_box
from candor.store import SubjectDetail, SubjectSummary, find_subject, list_subjects, subject_detail
from candor.store.errors import VaultError
from candor.store.gallery import count_subjects
from candor.workflow import limits
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import SubjectNotFoundError
from candor.workflow.paging import Page, PageRequest, page_of
from candor.workflow.permissions import require_permission
from candor.workflow.probe_check import CheckedFace, checked_faces
from candor.workflow.probes import stored_image


@dataclass(frozen=True)
class SubjectPhoto:
    """One enrolled photo of a subject, whole, with the enrolled face's box drawn (JPEG,
    scaled as the review page's: candor.images.annotate)."""

    image_id: int
    jpeg: bytes | None  # None when the file is missing from the vault


def gallery_subjects(
    workflow: Workflow, actor: Actor, *, limit: int | None = None, offset: int = 0
) -> list[SubjectSummary]:
    """Enrolled subjects by id, with their numbers of images and templates (gallery admins)."""
    require_permission(workflow, actor, "gallery.enrol")
    with workflow.workspace.session() as session:
        return list_subjects(session, limit=limit, offset=offset)


def gallery_subject_page(
    workflow: Workflow, actor: Actor, page: PageRequest, *, prefix: str = ""
) -> Page[SubjectSummary]:
    """One page of the enrolled subjects, oldest first; `prefix`: only those whose
    reference starts with it (letter case ignored)."""
    require_permission(workflow, actor, "gallery.enrol")
    wanted = prefix.strip()
    limits.SUBJECT_REF.check(wanted)
    with workflow.workspace.session() as session:
        items = list_subjects(session, limit=page.limit, offset=page.offset, prefix=wanted)
        return page_of(items, count_subjects(session, prefix=wanted), page)


def gallery_subject(workflow: Workflow, actor: Actor, subject_ref: str) -> SubjectDetail:
    """One subject with every image's provenance, face choice, quality and templates."""
    require_permission(workflow, actor, "gallery.enrol")
    # A reference from a page's path: PostgreSQL cannot even look up one with a NUL.
    limits.SUBJECT_REF.check(subject_ref.strip())
    with workflow.workspace.session() as session:
        subject = find_subject(session, subject_ref)
        detail = None if subject is None else subject_detail(session, subject.id)
    if detail is None:
        raise SubjectNotFoundError(f"no subject {subject_ref!r} is enrolled")
    return detail


def subject_photos(workflow: Workflow, actor: Actor, subject_ref: str) -> tuple[SubjectPhoto, ...]:
    """Each photo of a subject, whole, with the enrolled face boxed; an audited read."""
    detail = gallery_subject(workflow, actor, subject_ref)
    photos = []
    for image in detail.images:
        try:
            data = stored_image(workflow, image.sha256, detail.summary.id)
        except (OSError, ValueError, VaultError):
            photos.append(SubjectPhoto(image.id, None))
            continue
        photos.append(SubjectPhoto(image.id, _boxed(data, image.face_box)))
    with workflow.workspace.session() as session, session.begin():
        record(
            session,
            workflow,
            actor.username,
            "gallery.photos_viewed",
            {"subject": detail.summary.id},
            {"images": [image.id for image in detail.images]},
        )
    return tuple(photos)


def _boxed(data: bytes, box: tuple[int, int, int, int]) -> bytes:
    # Decoded as enrolment decoded it (EXIF orientation applied), so the box fits.
    return photo_with_box(decode_image(data).pixels, box)


def enrolment_faces(workflow: Workflow, actor: Actor, path: Path) -> tuple[CheckedFace, ...]:
    """The faces of a photo about to be enrolled (largest first), each with the quality
    gate's verdict and a picture, so a person chooses one when it shows several."""
    require_permission(workflow, actor, "gallery.enrol")
    image = load_image(path)
    faces = workflow.engine.detect_faces(image)
    # The search page's picture of each face with the quality gate's verdict, reused.
    return checked_faces(image, faces)
