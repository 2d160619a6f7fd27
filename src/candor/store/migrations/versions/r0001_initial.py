"""Initial schema: workspace binding, subjects, gallery images with provenance, templates.

Revision ID: 0001_initial
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

# Names pass through op.f(): the metadata's naming convention would prefix them again.
# Frozen copies of the model's lists: a revision must not change when the models do.
SOURCE_TYPES = (
    "booking_photo",
    "consented_enrolment",
    "court_order",
    "evaluation",
    "demo",
    "benchmark",
    "simulation",
)


def _hex64(column: str) -> str:
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


def _non_blank(column: str) -> str:
    return f"length(trim({column})) > 0"


def upgrade() -> None:
    op.create_table(
        "workspace_info",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("workspace_id", sa.String(36), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspace_info"),
        sa.CheckConstraint("id = 1", name=op.f("ck_workspace_info_single_row")),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subjects"),
        sa.UniqueConstraint("external_ref", name="uq_subjects_external_ref"),
        sa.CheckConstraint(
            _non_blank("external_ref"), name=op.f("ck_subjects_external_ref_not_blank")
        ),
    )
    source_types = ", ".join(f"'{value}'" for value in SOURCE_TYPES)
    op.create_table(
        "gallery_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("source_ref", sa.String(500), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("collected_on", sa.Date(), nullable=False),
        sa.Column("retain_until", sa.Date(), nullable=False),
        sa.Column("enrolled_by", sa.String(200), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("face_choice", sa.String(40), nullable=False),
        sa.Column("face_left", sa.Integer(), nullable=False),
        sa.Column("face_top", sa.Integer(), nullable=False),
        sa.Column("face_right", sa.Integer(), nullable=False),
        sa.Column("face_bottom", sa.Integer(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gallery_images"),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name="fk_gallery_images_subject_id_subjects",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("sha256", name="uq_gallery_images_sha256"),
        sa.UniqueConstraint("id", "subject_id", name="uq_gallery_images_id_subject_id"),
        sa.CheckConstraint(_hex64("sha256"), name=op.f("ck_gallery_images_sha256_hex")),
        sa.CheckConstraint(
            "width > 0 AND height > 0", name=op.f("ck_gallery_images_dimensions_positive")
        ),
        sa.CheckConstraint("byte_size > 0", name=op.f("ck_gallery_images_byte_size_positive")),
        sa.CheckConstraint(
            f"source_type IN ({source_types})", name=op.f("ck_gallery_images_source_type_known")
        ),
        sa.CheckConstraint(
            _non_blank("source_ref"), name=op.f("ck_gallery_images_source_ref_not_blank")
        ),
        sa.CheckConstraint(
            _non_blank("legal_basis"), name=op.f("ck_gallery_images_legal_basis_not_blank")
        ),
        sa.CheckConstraint(
            "retain_until >= collected_on",
            name=op.f("ck_gallery_images_retention_after_collection"),
        ),
        sa.CheckConstraint(
            "face_choice = 'largest-central' OR face_choice LIKE 'index % of %'",
            name=op.f("ck_gallery_images_face_choice_form"),
        ),
        sa.CheckConstraint(
            "face_left < face_right AND face_top < face_bottom",
            name=op.f("ck_gallery_images_face_box_ordered"),
        ),
    )
    op.create_index("ix_gallery_images_subject_id", "gallery_images", ["subject_id"])
    op.create_index("ix_gallery_images_retain_until", "gallery_images", ["retain_until"])
    op.create_table(
        "face_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("detector_key", sa.String(200), nullable=False),
        sa.Column("recipe", sa.String(500), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_face_templates"),
        sa.ForeignKeyConstraint(
            ["image_id", "subject_id"],
            ["gallery_images.id", "gallery_images.subject_id"],
            name="fk_face_templates_image_id_subject_id_gallery_images",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name="fk_face_templates_subject_id_subjects",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("image_id", "model_key", name="uq_face_templates_image_id_model_key"),
        sa.CheckConstraint("dimension > 0", name=op.f("ck_face_templates_dimension_positive")),
        sa.CheckConstraint(
            "length(vector) = 4 * dimension", name=op.f("ck_face_templates_vector_length")
        ),
        sa.CheckConstraint(
            _hex64("weights_sha256"), name=op.f("ck_face_templates_weights_sha256_hex")
        ),
    )
    op.create_index("ix_face_templates_subject_id", "face_templates", ["subject_id"])
    op.create_index("ix_face_templates_model_key_id", "face_templates", ["model_key", "id"])


def downgrade() -> None:
    op.drop_table("face_templates")
    op.drop_table("gallery_images")
    op.drop_table("subjects")
    op.drop_table("workspace_info")
