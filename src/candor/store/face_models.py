"""Face models as installed, named things: the registry, which model is active, and each
model's own thresholds.

- `FaceModelRecord` (face_models): an operator's recognition model, added by one admin and
  confirmed by another (the database holds the two-admin rule too). It names the file
  (absolute path) and the sha256 its bytes must have, and how to run it (input layout and
  size, pixel normalisation, colour order, alignment, embedding size), with the licence
  and source the operator declared. dlib's ResNet, which ships with Candor, has no row:
  it is the built-in model, named `BUILTIN_MODEL_NAME`.
- `ModelActivation` (model_activations): each switch of the workspace's active model, in
  order; the newest row is the model in use, and no row means the built-in model. Kept
  for good, so an auditor can say which model made any search.
- `ModelCalibration` (model_calibrations): a model's thresholds beyond the 1:N tables of
  `calibrations` (1:1 verification threshold with its measured rates, the repeat-search
  similarity, the quality gate's embedder-dependent limit), from a calibration run on a
  named dataset. One active row per model.

Every SQL statement about face models lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.store.evaluation import ReportCard
from candor.store.models import (
    NEVER_REUSED_IDS,
    Base,
    FaceTemplate,
    GalleryImage,
    UTCDateTime,
    _hex64,
    _non_blank,
    _sql_list,
)

__all__ = [
    "BUILTIN_MODEL_NAME",
    "FACE_MODEL_STATES",
    "MODEL_LAYOUTS",
    "FaceModelRecord",
    "ModelActivation",
    "ModelCalibration",
    "active_model_activation",
    "active_model_calibration",
    "add_face_model",
    "add_model_activation",
    "add_model_calibration",
    "decide_face_model",
    "face_model_by_key",
    "face_model_by_name",
    "face_models",
    "latest_report_card_of_model",
    "model_activations",
    "newest_model_activation_id",
]

# The model that ships with Candor (dlib's ResNet): no row, always installed.
BUILTIN_MODEL_NAME: Final = "dlib"
FACE_MODEL_STATES: Final = ("pending", "confirmed", "rejected")
MODEL_LAYOUTS: Final = ("NCHW", "NHWC")
MODEL_COLOURS: Final = ("RGB", "BGR")
MODEL_NAME_CHARACTERS: Final = "abcdefghijklmnopqrstuvwxyz0123456789._-"


class FaceModelRecord(Base):
    """An operator's face-embedding model: its file, its bytes' sha256 and how to run it."""

    __tablename__ = "face_models"
    __table_args__ = (
        CheckConstraint(
            f"length(name) >= 2 AND length(name) <= 64 "
            f"AND ltrim(name, '{MODEL_NAME_CHARACTERS}') = '' AND name <> '{BUILTIN_MODEL_NAME}'",
            name="name_form",
        ),
        CheckConstraint(_non_blank("model_key"), name="model_key_not_blank"),
        CheckConstraint(_non_blank("path"), name="path_not_blank"),
        CheckConstraint(_hex64("sha256"), name="sha256_hex"),
        CheckConstraint("dimension > 0", name="dimension_positive"),
        CheckConstraint("input_size > 0", name="input_size_positive"),
        CheckConstraint(f"layout IN ({_sql_list(MODEL_LAYOUTS)})", name="layout_known"),
        CheckConstraint(f"colour IN ({_sql_list(MODEL_COLOURS)})", name="colour_known"),
        CheckConstraint("input_std <> 0", name="input_std_not_zero"),
        CheckConstraint(_non_blank("alignment"), name="alignment_not_blank"),
        CheckConstraint(_non_blank("licence"), name="licence_not_blank"),
        CheckConstraint(_non_blank("source"), name="source_not_blank"),
        CheckConstraint(f"state IN ({_sql_list(FACE_MODEL_STATES)})", name="state_known"),
        CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state <> 'pending' AND decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name="decision_complete",
        ),
        # The two-admin rule, held by the database as well as by the workflow.
        CheckConstraint(
            "state <> 'confirmed' OR decided_by <> added_by", name="second_admin_confirms"
        ),
        CheckConstraint(
            f"state <> 'rejected' OR (reason IS NOT NULL AND {_non_blank('reason')})",
            name="rejection_has_reason",
        ),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # ModelId.key of the templates it makes: "name/version/sha256[:16]".
    model_key: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[int] = mapped_column(Integer)
    layout: Mapped[str] = mapped_column(String(8))
    input_size: Mapped[int] = mapped_column(Integer)
    input_mean: Mapped[float] = mapped_column(Float)
    input_std: Mapped[float] = mapped_column(Float)
    colour: Mapped[str] = mapped_column(String(8))
    # How a face is cut out for it, e.g. "arcface-112" (similarity transform of the landmarks
    # onto ArcFace's 112 x 112 template).
    alignment: Mapped[str] = mapped_column(String(32))
    licence: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    added_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ModelActivation(Base):
    """One switch of the workspace's active model; the newest row is the model in use."""

    __tablename__ = "model_activations"
    __table_args__ = (
        CheckConstraint(_non_blank("model_key"), name="model_key_not_blank"),
        CheckConstraint(_non_blank("model_name"), name="model_name_not_blank"),
        CheckConstraint("templates >= 0", name="templates_not_negative"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_key: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # Gallery templates of this model when it became active (after its re-enrolment).
    templates: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ModelCalibration(Base):
    """A model's own thresholds from one calibration run (1:N tables are in `calibrations`)."""

    __tablename__ = "model_calibrations"
    __table_args__ = (
        CheckConstraint(_non_blank("model_key"), name="model_key_not_blank"),
        CheckConstraint(_non_blank("dataset"), name="dataset_not_blank"),
        CheckConstraint(_hex64("dataset_sha256"), name="dataset_sha256_hex"),
        CheckConstraint(
            "verify_false_match_rate > 0 AND verify_false_match_rate < 1",
            name="verify_false_match_rate_range",
        ),
        CheckConstraint(
            "verify_false_non_match_rate >= 0 AND verify_false_non_match_rate <= 1",
            name="verify_false_non_match_rate_range",
        ),
        CheckConstraint("impostor_pairs > 0", name="impostor_pairs_positive"),
        CheckConstraint("mated_pairs > 0", name="mated_pairs_positive"),
        Index("ix_model_calibrations_model_key_active", "model_key", "active"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_key: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(Text)
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    # 1:1 verification: the cosine at the target false match rate, and the rates measured.
    verify_threshold: Mapped[float] = mapped_column(Float)
    verify_false_match_rate: Mapped[float] = mapped_column(Float)
    verify_false_non_match_rate: Mapped[float] = mapped_column(Float)
    impostor_pairs: Mapped[int] = mapped_column(Integer)
    mated_pairs: Mapped[int] = mapped_column(Integer)
    # Two probes at least this similar count as the same search (repeat-search rule).
    repeat_similarity: Mapped[float] = mapped_column(Float)
    # The quality gate's embedder-dependent limit: sharpness of this model's aligned chip.
    min_sharpness: Mapped[float] = mapped_column(Float)
    # The recipe measured best for this model on the dataset's tune half, where measured.
    recipe: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Anything else the run measured (intervals, counts), for reports.
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


def add_face_model(session: Session, record: FaceModelRecord) -> FaceModelRecord:
    """Store a newly added (pending) model; the caller built the row."""
    session.add(record)
    session.flush()
    return record


def face_model_by_name(session: Session, name: str) -> FaceModelRecord | None:
    """The model called `name` in any state, or None."""
    return session.scalars(select(FaceModelRecord).where(FaceModelRecord.name == name)).first()


def face_model_by_key(session: Session, model_key: str) -> FaceModelRecord | None:
    """The model whose templates carry `model_key`, or None."""
    return session.scalars(
        select(FaceModelRecord).where(FaceModelRecord.model_key == model_key)
    ).first()


def face_models(session: Session) -> list[FaceModelRecord]:
    """Every added model, oldest first."""
    return list(session.scalars(select(FaceModelRecord).order_by(FaceModelRecord.id)))


def decide_face_model(
    session: Session,
    record: FaceModelRecord,
    *,
    decided_by: int,
    confirmed: bool,
    at: datetime,
    reason: str | None = None,
) -> None:
    """Confirm or reject a pending model."""
    record.state = "confirmed" if confirmed else "rejected"
    record.decided_by = decided_by
    record.decided_at = at
    record.reason = reason
    session.flush()


def active_model_activation(session: Session) -> ModelActivation | None:
    """The newest activation, or None when the built-in model was never switched from."""
    return session.scalars(
        select(ModelActivation).order_by(ModelActivation.id.desc()).limit(1)
    ).first()


def model_activations(session: Session) -> list[ModelActivation]:
    """Every switch of the active model, oldest first."""
    return list(session.scalars(select(ModelActivation).order_by(ModelActivation.id)))


def add_model_activation(session: Session, activation: ModelActivation) -> ModelActivation:
    """Record a switch of the active model (it takes effect with the commit)."""
    session.add(activation)
    session.flush()
    return activation


def add_model_calibration(session: Session, calibration: ModelCalibration) -> ModelCalibration:
    """Store a model's calibration as its active one (others of that model are deactivated)."""
    session.execute(
        update(ModelCalibration)
        .where(ModelCalibration.model_key == calibration.model_key)
        .values(active=False)
    )
    calibration.active = True
    session.add(calibration)
    session.flush()
    return calibration


def active_model_calibration(session: Session, model_key: str) -> ModelCalibration | None:
    """The model's active calibration, or None when it was never calibrated here."""
    return session.scalars(
        select(ModelCalibration)
        .where(ModelCalibration.model_key == model_key, ModelCalibration.active.is_(True))
        .order_by(ModelCalibration.id.desc())
        .limit(1)
    ).first()


# --- re-enrolment by model (helper `reenrol`): gallery photos and each model's templates ---


@dataclass(frozen=True)
class PhotoWithoutTemplate:
    """A gallery photo with no template of some model yet: where to read it and its face.

    box: (left, top, right, bottom) of the face chosen at enrolment, in the decoded photo's
    pixels (every model's template is of that same face).
    """

    image_id: int
    sha256: str
    box: tuple[int, int, int, int]


def gallery_photo_count(session: Session) -> int:
    """Photos in the gallery (each holds at most one template per model)."""
    return int(session.scalar(select(func.count(GalleryImage.id))) or 0)


def template_counts_by_model(session: Session) -> dict[str, int]:
    """Gallery templates by model key (models with none are absent)."""
    rows = session.execute(
        select(FaceTemplate.model_key, func.count(FaceTemplate.id)).group_by(FaceTemplate.model_key)
    ).all()
    return {model_key: int(count) for model_key, count in rows}


def photos_without_template(
    session: Session, model_key: str, *, after: int, limit: int
) -> list[PhotoWithoutTemplate]:
    """Up to `limit` photos with id above `after` and no template of `model_key`, by id
    (keyset paging: a gallery of millions is never listed at once, and a photo enrolled
    meanwhile comes later in the same pass, its id being larger)."""
    has_template = (
        select(FaceTemplate.id)
        .where(FaceTemplate.image_id == GalleryImage.id, FaceTemplate.model_key == model_key)
        .exists()
    )
    rows = session.execute(
        select(
            GalleryImage.id,
            GalleryImage.sha256,
            GalleryImage.face_left,
            GalleryImage.face_top,
            GalleryImage.face_right,
            GalleryImage.face_bottom,
        )
        .where(GalleryImage.id > after, ~has_template)
        .order_by(GalleryImage.id)
        .limit(limit)
    ).all()
    return [
        PhotoWithoutTemplate(image_id, sha256, (left, top, right, bottom))
        for image_id, sha256, left, top, right, bottom in rows
    ]


def photo_lacking_template(session: Session, image_id: int, model_key: str) -> GalleryImage | None:
    """The photo, when it is still in the gallery and still has no template of `model_key`
    (an expungement or another run may have come first), else None."""
    image = session.get(GalleryImage, image_id)
    if image is None:
        return None
    made = session.scalar(
        select(FaceTemplate.id).where(
            FaceTemplate.image_id == image_id, FaceTemplate.model_key == model_key
        )
    )
    return image if made is None else None


# Registry (the workspace's side: which model a Workflow follows) -------------------------


def newest_model_activation_id(session: Session) -> int:
    """The id of the newest activation, 0 when there is none: what a Workflow compares to
    notice a switch (one lookup of the primary key's maximum)."""
    # On the connection, as changes.latest_change: it runs at every request, and the ORM's
    # session.scalar cost a third more (about 0.5 ms against 0.35 ms, machine loaded).
    newest = session.connection().execute(select(func.max(ModelActivation.id))).scalar()
    return int(newest or 0)


# Compare (reports: the model in use and its own latest report card) ----------------------


def latest_report_card_of_model(session: Session, model_key: str | None) -> ReportCard | None:
    """The newest report card (by date; ties: the later id) of the model `model_key`; with
    None, of the built-in model: a card whose key is no added model's."""
    query = select(ReportCard)
    if model_key is not None:
        query = query.where(ReportCard.model_key == model_key)
    else:
        query = query.where(ReportCard.model_key.not_in(select(FaceModelRecord.model_key)))
    return session.scalars(
        query.order_by(ReportCard.created_at.desc(), ReportCard.id.desc()).limit(1)
    ).first()
