"""ORM models of the gallery. Portable SQL only, so PostgreSQL can run the same schema."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

OPERATIONAL_SOURCES = ("booking_photo", "consented_enrolment", "court_order")
# Test data enters only a workspace of the same purpose, under the same-named source type.
TEST_DATA_SOURCES = ("evaluation", "demo", "benchmark", "simulation")
SOURCE_TYPES = OPERATIONAL_SOURCES + TEST_DATA_SOURCES

# Named constraints let Alembic alter them later on both SQLite (batch mode) and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# For every table whose rows are named by id elsewhere (other rows, audit entries): without
# AUTOINCREMENT SQLite gives max(id) + 1, so an expunged person's ids went to the next
# person enrolled. PostgreSQL ignores the option; its SERIAL sequences never go back.
NEVER_REUSED_IDS: dict[str, Any] = {"sqlite_autoincrement": True}


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _hex64(column: str) -> str:
    # ltrim(x, chars) means the same on SQLite and PostgreSQL; GLOB and ~ are not portable.
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


def _non_blank(column: str) -> str:
    return f"length(trim({column})) > 0"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class WorkspaceInfo(Base):
    """One row binding the database to its workspace, so a swapped database is noticed."""

    __tablename__ = "workspace_info"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    workspace_id: Mapped[str] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Subject(Base):
    """A person in the gallery, known by an agency reference such as a booking number."""

    __tablename__ = "subjects"
    __table_args__ = (
        CheckConstraint(_non_blank("external_ref"), name="external_ref_not_blank"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))

    images: Mapped[list[GalleryImage]] = relationship(
        back_populates="subject",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="GalleryImage.id",
    )
    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="subject",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FaceTemplate.id",
        overlaps="templates",
    )


class GalleryImage(Base):
    """One enrolled photo, content-addressed, with its provenance and the face chosen in it."""

    __tablename__ = "gallery_images"
    __table_args__ = (
        # Lets face_templates reference (image, subject) together, so the pair always agrees.
        UniqueConstraint("id", "subject_id"),
        CheckConstraint(_hex64("sha256"), name="sha256_hex"),
        CheckConstraint("width > 0 AND height > 0", name="dimensions_positive"),
        CheckConstraint("byte_size > 0", name="byte_size_positive"),
        CheckConstraint(f"source_type IN ({_sql_list(SOURCE_TYPES)})", name="source_type_known"),
        CheckConstraint(_non_blank("source_ref"), name="source_ref_not_blank"),
        CheckConstraint(_non_blank("legal_basis"), name="legal_basis_not_blank"),
        CheckConstraint("retain_until >= collected_on", name="retention_after_collection"),
        CheckConstraint(
            "face_choice = 'largest-central' OR face_choice LIKE 'index % of %'",
            name="face_choice_form",
        ),
        CheckConstraint(
            "face_left < face_right AND face_top < face_bottom", name="face_box_ordered"
        ),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    source_type: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str] = mapped_column(String(500))
    legal_basis: Mapped[str] = mapped_column(Text)
    collected_on: Mapped[date] = mapped_column(Date)
    retain_until: Mapped[date] = mapped_column(Date, index=True)
    enrolled_by: Mapped[str] = mapped_column(String(200))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    face_choice: Mapped[str] = mapped_column(String(40))
    face_left: Mapped[int] = mapped_column(Integer)
    face_top: Mapped[int] = mapped_column(Integer)
    face_right: Mapped[int] = mapped_column(Integer)
    face_bottom: Mapped[int] = mapped_column(Integer)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON)

    subject: Mapped[Subject] = relationship(back_populates="images")
    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="image",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FaceTemplate.id",
        overlaps="templates",
    )


class FaceTemplate(Base):
    """A face model's vector of the chosen face in one gallery image, tied to that exact model."""

    __tablename__ = "face_templates"
    __table_args__ = (
        ForeignKeyConstraint(
            ["image_id", "subject_id"],
            ["gallery_images.id", "gallery_images.subject_id"],
            ondelete="CASCADE",
        ),
        # One template per image and model: a rebuilt index must not count a face twice.
        UniqueConstraint("image_id", "model_key"),
        CheckConstraint("dimension > 0", name="dimension_positive"),
        # Sealed (candor.sealing: 32 bytes more); plain only until `candor upgrade` seals it.
        CheckConstraint(
            "length(vector) = 4 * dimension OR length(vector) = 4 * dimension + 32",
            name="vector_length",
        ),
        CheckConstraint(_hex64("weights_sha256"), name="weights_sha256_hex"),
        Index("ix_face_templates_model_key_id", "model_key", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(Integer)
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    model_key: Mapped[str] = mapped_column(String(200))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(50))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[int] = mapped_column(Integer)
    detector_key: Mapped[str] = mapped_column(String(200))
    recipe: Mapped[str] = mapped_column(String(500))
    # Encoded and decoded only by BiometricVault, so encryption at rest has one place to go.
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    image: Mapped[GalleryImage] = relationship(
        back_populates="templates", foreign_keys=[image_id, subject_id], overlaps="templates"
    )
    subject: Mapped[Subject] = relationship(
        back_populates="templates", foreign_keys=[subject_id], overlaps="image,templates"
    )
