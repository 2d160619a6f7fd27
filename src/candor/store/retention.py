"""What retention deletes from the gallery: photos past their retain-until date or the
policy's gallery maximum, their templates, and the subjects left with no photo.
(Requests' purges are in candor.store.requests.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from candor.store.models import FaceTemplate, GalleryImage, Subject


@dataclass(frozen=True)
class GalleryPurge:
    """What `purge_gallery_images` deleted, by internal id (and each photo's hash)."""

    images: list[int]
    image_sha256: list[str]
    templates: list[int]
    subjects_removed: list[int]


def purge_gallery_images(
    session: Session, today: date, collected_before: date | None
) -> GalleryPurge | None:
    """Delete every gallery photo past its retain-until date (`today` is not past) or
    collected before `collected_before`, with its templates, and each subject left with
    no photo; None when nothing was due."""
    condition = GalleryImage.retain_until < today
    if collected_before is not None:
        condition = or_(condition, GalleryImage.collected_on < collected_before)
    due = session.execute(
        select(GalleryImage.id, GalleryImage.sha256, GalleryImage.subject_id).where(condition)
    ).all()
    if not due:
        return None
    image_ids = [image_id for image_id, _, _ in due]
    template_ids = list(
        session.scalars(select(FaceTemplate.id).where(FaceTemplate.image_id.in_(image_ids)))
    )
    session.execute(delete(FaceTemplate).where(FaceTemplate.image_id.in_(image_ids)))
    session.execute(delete(GalleryImage).where(GalleryImage.id.in_(image_ids)))
    touched = {subject_id for _, _, subject_id in due}
    still_held = set(
        session.scalars(select(GalleryImage.subject_id).where(GalleryImage.subject_id.in_(touched)))
    )
    emptied = sorted(touched - still_held)
    session.execute(delete(Subject).where(Subject.id.in_(emptied)))
    return GalleryPurge(image_ids, [sha256 for _, sha256, _ in due], template_ids, emptied)
