"""Persistence of the gallery: subjects, images with provenance, templates.

Each function takes a Session and leaves committing to the caller (workflow), which
owns orchestration; these functions only read and write rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.orm import Session

from candor.sealing import SEAL_OVERHEAD, is_sealed
from candor.store.data_keys import DataKeys
from candor.store.errors import GalleryError, ProvenanceError, VaultError
from candor.store.models import SOURCE_TYPES, FaceTemplate, GalleryImage, Subject, utc_now
from candor.store.requests import plaintext_probe_template_count, seal_plaintext_probe_templates
from candor.store.vault import BiometricVault, is_sha256, template_context

LARGEST_CENTRAL = "largest-central"
_INDEX_CHOICE = re.compile(r"index (\d+) of (\d+)")


@dataclass(frozen=True)
class Provenance:
    """Where a gallery image came from and on what authority it is held."""

    source_type: str
    source_ref: str
    legal_basis: str
    collected_on: date
    retain_until: date


def validate_provenance(
    provenance: Provenance, *, allowed_source_types: Sequence[str], today: date
) -> Provenance:
    """The provenance with text fields stripped; raises ProvenanceError naming the field.

    `allowed_source_types` is the workspace's (Workspace.allowed_source_types()) and
    `today` the date in the workspace's time zone (Workspace.today()).
    """
    if provenance.source_type not in SOURCE_TYPES:
        raise ProvenanceError(
            "source_type",
            f"unknown source type {provenance.source_type!r}; "
            f"known types are {', '.join(SOURCE_TYPES)}",
        )
    if provenance.source_type not in allowed_source_types:
        raise ProvenanceError(
            "source_type",
            f"source type {provenance.source_type!r} is not allowed in this workspace; "
            f"allowed: {', '.join(allowed_source_types)}",
        )
    source_ref = provenance.source_ref.strip()
    if not source_ref:
        raise ProvenanceError("source_ref", "a source reference is required")
    legal_basis = provenance.legal_basis.strip()
    if not legal_basis:
        raise ProvenanceError("legal_basis", "a legal basis is required")
    if provenance.collected_on > today:
        raise ProvenanceError(
            "collected_on",
            f"collection date {provenance.collected_on.isoformat()} is in the future "
            f"(today is {today.isoformat()})",
        )
    if provenance.retain_until < provenance.collected_on:
        raise ProvenanceError(
            "retain_until",
            f"retention date {provenance.retain_until.isoformat()} is before the "
            f"collection date {provenance.collected_on.isoformat()}",
        )
    return Provenance(
        source_type=provenance.source_type,
        source_ref=source_ref,
        legal_basis=legal_basis,
        collected_on=provenance.collected_on,
        retain_until=provenance.retain_until,
    )


def face_choice_label(index: int | None, count: int) -> str:
    """How the face was chosen: "largest-central" (index None) or "index N of M" (0-based N)."""
    if count < 1:
        raise GalleryError(f"a face choice needs at least one face, not {count}")
    if index is None:
        return LARGEST_CENTRAL
    if not 0 <= index < count:
        raise GalleryError(f"face index {index} is outside the {count} faces found")
    return f"index {index} of {count}"


def _check_face_choice(face_choice: str) -> None:
    if face_choice == LARGEST_CENTRAL:
        return
    match = _INDEX_CHOICE.fullmatch(face_choice)
    if match is None or not int(match[1]) < int(match[2]):
        raise GalleryError(
            f"face choice {face_choice!r} is neither {LARGEST_CENTRAL!r} nor 'index N of M'"
        )


class TemplateModel(Protocol):
    """The identity of the face model that made a template (candor.faces.ModelId fits)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def weights_sha256(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class SubjectSummary:
    id: int
    external_ref: str
    created_at: datetime
    created_by: str
    image_count: int
    template_count: int


@dataclass(frozen=True)
class TemplateInfo:
    """A template's identity and settings, without its vector."""

    id: int
    model_key: str
    detector_key: str
    recipe: str
    created_at: datetime


@dataclass(frozen=True)
class ImageDetail:
    id: int
    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    provenance: Provenance
    enrolled_by: str
    enrolled_at: datetime
    face_choice: str
    face_box: tuple[int, int, int, int]  # left, top, right, bottom
    quality: dict[str, Any]
    templates: tuple[TemplateInfo, ...]


@dataclass(frozen=True)
class SubjectDetail:
    summary: SubjectSummary
    images: tuple[ImageDetail, ...]


@dataclass(frozen=True)
class RemovedSubject:
    """What a cascade deletion removed: enough to erase files and index entries, no names."""

    subject_id: int
    image_ids: tuple[int, ...]
    image_sha256s: tuple[str, ...]
    template_ids: tuple[int, ...]


def find_subject(session: Session, external_ref: str) -> Subject | None:
    """The subject with this agency reference, if enrolled."""
    return session.scalar(select(Subject).where(Subject.external_ref == external_ref.strip()))


def get_or_create_subject(
    session: Session, external_ref: str, created_by: str
) -> tuple[Subject, bool]:
    """The subject with this reference, and whether it was created now (flushed, not committed)."""
    reference = external_ref.strip()
    if not reference:
        raise GalleryError("a subject needs a non-empty external reference")
    existing = find_subject(session, reference)
    if existing is not None:
        return existing, False
    subject = Subject(external_ref=reference, created_at=utc_now(), created_by=created_by)
    session.add(subject)
    session.flush()
    return subject, True


def gallery_rows_named(
    session: Session, subject_id: int, image_id: int, *, named_at: datetime | None
) -> tuple[Subject | None, GalleryImage | None]:
    """The subject and image a record (a candidate) names by id, each None once gone.

    named_at: when the record was made. Before schema revision 0006 SQLite gave an
    expunged person's ids to the next person enrolled; a row enrolled after the record,
    or an image now another subject's, is not the one it named, so it reads as gone.
    """
    image = session.get(GalleryImage, image_id)
    if (
        image is not None
        and image.subject_id == subject_id
        and (named_at is None or image.enrolled_at <= named_at)
    ):
        return image.subject, image
    subject = session.get(Subject, subject_id)
    if subject is None or (named_at is not None and subject.created_at > named_at):
        return None, None
    return subject, None


def image_by_sha256(session: Session, sha256: str) -> GalleryImage | None:
    """The gallery image with this content address, if enrolled."""
    return session.scalar(select(GalleryImage).where(GalleryImage.sha256 == sha256))


def add_gallery_image(
    session: Session,
    subject: Subject,
    *,
    sha256: str,
    image_format: str,
    width: int,
    height: int,
    byte_size: int,
    provenance: Provenance,
    allowed_source_types: Sequence[str],
    today: date,
    enrolled_by: str,
    face_choice: str,
    face_box: tuple[int, int, int, int],
    quality: Mapping[str, Any],
    enrolled_at: datetime | None = None,
) -> GalleryImage:
    """Record an image of `subject` after validating its provenance; flushed, not committed.

    `face_box` is (left, top, right, bottom) in pixels; `quality` must be JSON-serialisable.
    """
    checked = validate_provenance(
        provenance, allowed_source_types=allowed_source_types, today=today
    )
    if not is_sha256(sha256):
        raise GalleryError("an image's sha256 must be 64 lower-case hex digits")
    if width <= 0 or height <= 0 or byte_size <= 0:
        raise GalleryError(f"image size {width}x{height}, {byte_size} bytes is not positive")
    left, top, right, bottom = face_box
    if not (left < right and top < bottom):
        raise GalleryError(f"face box {face_box} is not (left, top, right, bottom)")
    _check_face_choice(face_choice)
    image = GalleryImage(
        subject=subject,
        sha256=sha256,
        format=image_format,
        width=width,
        height=height,
        byte_size=byte_size,
        source_type=checked.source_type,
        source_ref=checked.source_ref,
        legal_basis=checked.legal_basis,
        collected_on=checked.collected_on,
        retain_until=checked.retain_until,
        enrolled_by=enrolled_by,
        enrolled_at=enrolled_at or utc_now(),
        face_choice=face_choice,
        face_left=left,
        face_top=top,
        face_right=right,
        face_bottom=bottom,
        quality=dict(quality),
    )
    session.add(image)
    session.flush()
    return image


def add_template(
    session: Session,
    image: GalleryImage,
    *,
    model: TemplateModel,
    detector_key: str,
    recipe: str,
    vector: np.ndarray,
    vault: BiometricVault,
    keys: DataKeys,
) -> FaceTemplate:
    """Record the template of the face chosen in `image`, sealed under its subject's key
    (made if the subject has none yet); flushed, not committed."""
    if vector.shape != (model.dimension,):
        raise GalleryError(
            f"a template of model {model.key} has shape ({model.dimension},), not {vector.shape}"
        )
    key = keys.subject_key(session, image.subject_id, create=True)
    template = FaceTemplate(
        image=image,
        subject_id=image.subject_id,
        model_key=model.key,
        model_name=model.name,
        model_version=model.version,
        weights_sha256=model.weights_sha256,
        dimension=model.dimension,
        detector_key=detector_key,
        recipe=recipe,
        vector=vault.encode_template(vector, key, template_context(image.sha256, model.key)),
        created_at=utc_now(),
    )
    session.add(template)
    session.flush()
    return template


@dataclass(frozen=True)
class BulkImage:
    """One picture for `add_gallery_bulk`: its vault address, size and template, sealed under
    its subject's key for `template_context(sha256, model key)`."""

    sha256: str
    byte_size: int
    template: bytes


@dataclass(frozen=True)
class BulkSubject:
    """One new subject for `add_gallery_bulk`, with its pictures and its data key (made
    beforehand with `new_data_key`: the pictures are sealed before the subject's row exists)."""

    external_ref: str
    images: Sequence[BulkImage]
    key: bytes


@dataclass(frozen=True)
class BulkRow:
    """The ids given to one picture by `add_gallery_bulk`."""

    subject_id: int
    image_id: int
    template_id: int


def add_gallery_bulk(
    session: Session,
    subjects: Sequence[BulkSubject],
    *,
    image_format: str,
    width: int,
    height: int,
    provenance: Provenance,
    allowed_source_types: Sequence[str],
    today: date,
    enrolled_by: str,
    enrolled_at: datetime,
    face_choice: str,
    face_box: tuple[int, int, int, int],
    quality: Mapping[str, Any],
    model: TemplateModel,
    detector_key: str,
    recipe: str,
    keys: DataKeys,
) -> list[BulkRow]:
    """New subjects, their images and one template per image, three INSERTs in all.

    The rows `get_or_create_subject`, `add_gallery_image` and `add_template` would make one
    by one, with the same checks, for pictures that share everything but their bytes (a
    synthetic gallery): executemany with RETURNING instead of a flush per row, which is
    what made a 100k gallery take 18 minutes. Ids come from AUTOINCREMENT as for any row;
    the triggers on face_templates feed gallery_changes as usual. Not committed. Returns
    each picture's ids, in the order given. An existing reference is refused.
    """
    checked = validate_provenance(
        provenance, allowed_source_types=allowed_source_types, today=today
    )
    left, top, right, bottom = face_box
    if width <= 0 or height <= 0 or not (left < right and top < bottom):
        raise GalleryError(f"image size {width}x{height} or face box {face_box} is not valid")
    _check_face_choice(face_choice)
    references = [subject.external_ref.strip() for subject in subjects]
    if not all(references) or len(set(references)) != len(references):
        raise GalleryError("bulk subjects need distinct, non-empty external references")
    taken = session.scalars(
        select(Subject.external_ref).where(Subject.external_ref.in_(references)).limit(1)
    ).first()
    if taken is not None:
        raise GalleryError(f"subject {taken} already exists")
    for subject in subjects:
        for image in subject.images:
            if not is_sha256(image.sha256) or image.byte_size <= 0:
                raise GalleryError(f"image {image.sha256!r} has a bad address or size")
            sealed_length = model.dimension * 4 + SEAL_OVERHEAD
            if len(image.template) != sealed_length or not is_sealed(image.template):
                raise GalleryError(
                    f"the template of image {image.sha256} is not a sealed template of model "
                    f"{model.key}"
                )
    if not references:
        return []
    subject_ids = session.scalars(
        insert(Subject).returning(Subject.id, sort_by_parameter_order=True),
        [
            {"external_ref": ref, "created_at": enrolled_at, "created_by": enrolled_by}
            for ref in references
        ],
    ).all()
    keys.add_subject_keys(
        session,
        {
            subject_id: subject.key
            for subject_id, subject in zip(subject_ids, subjects, strict=True)
        },
    )
    owners = [
        subject_id
        for subject_id, subject in zip(subject_ids, subjects, strict=True)
        for _ in subject.images
    ]
    pictures = [image for subject in subjects for image in subject.images]
    shared = {
        "format": image_format,
        "width": width,
        "height": height,
        "source_type": checked.source_type,
        "source_ref": checked.source_ref,
        "legal_basis": checked.legal_basis,
        "collected_on": checked.collected_on,
        "retain_until": checked.retain_until,
        "enrolled_by": enrolled_by,
        "enrolled_at": enrolled_at,
        "face_choice": face_choice,
        "face_left": left,
        "face_top": top,
        "face_right": right,
        "face_bottom": bottom,
        "quality": dict(quality),
    }
    image_ids = session.scalars(
        insert(GalleryImage).returning(GalleryImage.id, sort_by_parameter_order=True),
        [
            {**shared, "subject_id": owner, "sha256": image.sha256, "byte_size": image.byte_size}
            for owner, image in zip(owners, pictures, strict=True)
        ],
    ).all()
    template_ids = session.scalars(
        insert(FaceTemplate).returning(FaceTemplate.id, sort_by_parameter_order=True),
        [
            {
                "image_id": image_id,
                "subject_id": owner,
                "model_key": model.key,
                "model_name": model.name,
                "model_version": model.version,
                "weights_sha256": model.weights_sha256,
                "dimension": model.dimension,
                "detector_key": detector_key,
                "recipe": recipe,
                "vector": image.template,
                "created_at": enrolled_at,
            }
            for image_id, owner, image in zip(image_ids, owners, pictures, strict=True)
        ],
    ).all()
    return [
        BulkRow(subject_id=owner, image_id=image_id, template_id=template_id)
        for owner, image_id, template_id in zip(owners, image_ids, template_ids, strict=True)
    ]


def _with_prefix(query: Select[Any], prefix: str | None) -> Select[Any]:
    if not prefix:
        return query
    # LIKE with its wildcards escaped (a "%" or "_" typed matches only itself), and both
    # sides lower-cased: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return query.where(func.lower(Subject.external_ref).like(escaped + "%", escape="\\"))


def count_subjects(session: Session, *, prefix: str | None = None) -> int:
    """How many subjects there are (whose reference starts with `prefix`, when given)."""
    return session.scalar(_with_prefix(select(func.count(Subject.id)), prefix)) or 0


def list_subjects(
    session: Session, *, limit: int | None = None, offset: int = 0, prefix: str | None = None
) -> list[SubjectSummary]:
    """Subjects by id, each with its numbers of images and templates; `prefix`: only those
    whose reference starts with it."""
    images = (
        select(func.count(GalleryImage.id))
        .where(GalleryImage.subject_id == Subject.id)
        .scalar_subquery()
    )
    templates = (
        select(func.count(FaceTemplate.id))
        .where(FaceTemplate.subject_id == Subject.id)
        .scalar_subquery()
    )
    query = select(Subject, images, templates).order_by(Subject.id).offset(offset).limit(limit)
    query = _with_prefix(query, prefix)
    return [
        _summary(subject, image_count, template_count)
        for subject, image_count, template_count in session.execute(query)
    ]


def subject_detail(session: Session, subject_id: int) -> SubjectDetail | None:
    """A subject with its images, their provenance and their templates (no vectors)."""
    subject = session.get(Subject, subject_id)
    if subject is None:
        return None
    images = tuple(
        ImageDetail(
            id=image.id,
            sha256=image.sha256,
            format=image.format,
            width=image.width,
            height=image.height,
            byte_size=image.byte_size,
            provenance=Provenance(
                source_type=image.source_type,
                source_ref=image.source_ref,
                legal_basis=image.legal_basis,
                collected_on=image.collected_on,
                retain_until=image.retain_until,
            ),
            enrolled_by=image.enrolled_by,
            enrolled_at=image.enrolled_at,
            face_choice=image.face_choice,
            face_box=(image.face_left, image.face_top, image.face_right, image.face_bottom),
            quality=dict(image.quality),
            templates=tuple(
                TemplateInfo(
                    id=template.id,
                    model_key=template.model_key,
                    detector_key=template.detector_key,
                    recipe=template.recipe,
                    created_at=template.created_at,
                )
                for template in image.templates
            ),
        )
        for image in subject.images
    )
    template_count = sum(len(image.templates) for image in images)
    return SubjectDetail(summary=_summary(subject, len(images), template_count), images=images)


def templates_for_model(
    session: Session,
    model_key: str,
    vault: BiometricVault,
    keys: DataKeys,
    *,
    batch_size: int = 10_000,
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(template_id, subject_id, image_id, vector) of every template of one model, by id.

    Rows are streamed in batches, so a gallery of millions is not loaded at once; each
    batch's subject keys are read together (`DataKeys.subject_keys`), not one per template.
    """
    query = (
        select(
            FaceTemplate.id,
            FaceTemplate.subject_id,
            FaceTemplate.image_id,
            FaceTemplate.dimension,
            FaceTemplate.vector,
            GalleryImage.sha256,
        )
        .join(GalleryImage, GalleryImage.id == FaceTemplate.image_id)
        .where(FaceTemplate.model_key == model_key)
        .order_by(FaceTemplate.id)
        .execution_options(yield_per=batch_size)
    )
    for batch in session.execute(query).partitions():
        yield from open_templates(session, batch, model_key, vault, keys)


def open_templates(
    session: Session,
    rows: Sequence[Any],
    model_key: str,
    vault: BiometricVault,
    keys: DataKeys,
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(template_id, subject_id, image_id, vector) of each row of (id, subject_id, image_id,
    dimension, sealed vector, image sha256): the subjects' keys read together, one query
    per 500 subjects, not one per template."""
    subject_keys = keys.subject_keys(session, (row[1] for row in rows))
    for template_id, subject_id, image_id, dimension, blob, sha256 in rows:
        key = subject_keys.get(subject_id)
        if key is None:
            raise VaultError(
                f"template {template_id}: subject {subject_id} has no data key (expunged, or "
                "the workspace predates encryption at rest: run `candor upgrade`)"
            )
        context = template_context(sha256, model_key)
        yield (
            template_id,
            subject_id,
            image_id,
            vault.decode_template(blob, dimension, key, context),
        )


def seal_plaintext_templates(
    session: Session, keys: DataKeys, vault: BiometricVault, *, batch_size: int = 1000
) -> int:
    """Seal up to `batch_size` templates still stored in the clear (a workspace from before
    encryption at rest) under their owners' keys, made where missing; returns how many:
    gallery templates (subject keys) first, then requests' probe templates (probe keys,
    `requests.seal_plaintext_probe_templates`).

    For `candor upgrade`: call it again, committing in between, until it returns 0. Each
    batch commits whole or not at all, so a crash leaves every template either plain
    (sealed next time) or sealed; a sealed one is never touched again. The UPDATE logs each
    gallery template as removed and added (the change log's trigger): an index re-reads
    the same vector. Not committed.
    """
    rows = session.execute(
        select(
            FaceTemplate.id,
            FaceTemplate.subject_id,
            FaceTemplate.model_key,
            FaceTemplate.dimension,
            FaceTemplate.vector,
            GalleryImage.sha256,
        )
        .join(GalleryImage, GalleryImage.id == FaceTemplate.image_id)
        .where(func.length(FaceTemplate.vector) == 4 * FaceTemplate.dimension)
        .order_by(FaceTemplate.id)
        .limit(batch_size)
    ).all()
    if not rows:
        return seal_plaintext_probe_templates(session, keys, vault, batch_size=batch_size)
    subject_keys = keys.subject_keys(session, (row.subject_id for row in rows))
    sealed: list[dict[str, Any]] = []
    for template_id, subject_id, model_key, dimension, blob, sha256 in rows:
        if subject_id not in subject_keys:
            subject_keys[subject_id] = keys.subject_key(session, subject_id, create=True)
        vector = np.frombuffer(blob, dtype="<f4", count=dimension)
        context = template_context(sha256, model_key)
        sealed.append(
            {
                "id": template_id,
                "vector": vault.encode_template(vector, subject_keys[subject_id], context),
            }
        )
    session.execute(update(FaceTemplate), sealed)
    return len(sealed)


def plaintext_template_count(session: Session) -> int:
    """How many gallery and probe templates are still stored in the clear (0 once `candor
    upgrade` is done)."""
    gallery = session.scalar(
        select(func.count())
        .select_from(FaceTemplate)
        .where(func.length(FaceTemplate.vector) == 4 * FaceTemplate.dimension)
    )
    return int(gallery or 0) + plaintext_probe_template_count(session)


def delete_subject_cascade(session: Session, subject: Subject) -> RemovedSubject:
    """Delete a subject, its images and templates; flushed, not committed.

    The caller erases the returned images from the vault, removes the template ids
    from the index, and scrubs the database once the deletion has committed.
    """
    images = session.execute(
        select(GalleryImage.id, GalleryImage.sha256)
        .where(GalleryImage.subject_id == subject.id)
        .order_by(GalleryImage.id)
    ).all()
    template_ids = session.scalars(
        select(FaceTemplate.id)
        .where(FaceTemplate.subject_id == subject.id)
        .order_by(FaceTemplate.id)
    ).all()
    removed = RemovedSubject(
        subject_id=subject.id,
        image_ids=tuple(image_id for image_id, _ in images),
        image_sha256s=tuple(sha256 for _, sha256 in images),
        template_ids=tuple(template_ids),
    )
    # Bulk deletes, children first, so no row is left to the ORM's or the database's cascade.
    session.execute(delete(FaceTemplate).where(FaceTemplate.subject_id == subject.id))
    session.execute(delete(GalleryImage).where(GalleryImage.subject_id == subject.id))
    session.execute(delete(Subject).where(Subject.id == subject.id))
    return removed


def _summary(subject: Subject, image_count: int, template_count: int) -> SubjectSummary:
    return SubjectSummary(
        id=subject.id,
        external_ref=subject.external_ref,
        created_at=subject.created_at,
        created_by=subject.created_by,
        image_count=image_count,
        template_count=template_count,
    )
