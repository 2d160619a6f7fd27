"""Face models as installed, named things: the registry of operator models (two admins),
the history of which model is active, and each model's own thresholds.

Revision ID: 0014_face_models
Revises: 0013_staged_sealed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from candor.store.models import UTCDateTime

revision = "0014_face_models"
down_revision: str | None = "0013_staged_sealed"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "face_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("layout", sa.String(length=8), nullable=False),
        sa.Column("input_size", sa.Integer(), nullable=False),
        sa.Column("input_mean", sa.Float(), nullable=False),
        sa.Column("input_std", sa.Float(), nullable=False),
        sa.Column("colour", sa.String(length=8), nullable=False),
        sa.Column("alignment", sa.String(length=32), nullable=False),
        sa.Column("licence", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("added_by", sa.Integer(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state <> 'pending' AND decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name=op.f("ck_face_models_decision_complete"),
        ),
        sa.CheckConstraint("colour IN ('RGB', 'BGR')", name=op.f("ck_face_models_colour_known")),
        sa.CheckConstraint("layout IN ('NCHW', 'NHWC')", name=op.f("ck_face_models_layout_known")),
        sa.CheckConstraint(
            "length(name) >= 2 AND length(name) <= 64 "
            "AND ltrim(name, 'abcdefghijklmnopqrstuvwxyz0123456789._-') = '' AND name <> 'dlib'",
            name=op.f("ck_face_models_name_form"),
        ),
        sa.CheckConstraint(
            "length(sha256) = 64 AND ltrim(sha256, '0123456789abcdef') = ''",
            name=op.f("ck_face_models_sha256_hex"),
        ),
        sa.CheckConstraint(
            "state <> 'confirmed' OR decided_by <> added_by",
            name=op.f("ck_face_models_second_admin_confirms"),
        ),
        sa.CheckConstraint(
            "state <> 'rejected' OR (reason IS NOT NULL AND length(trim(reason)) > 0)",
            name=op.f("ck_face_models_rejection_has_reason"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'confirmed', 'rejected')", name=op.f("ck_face_models_state_known")
        ),
        sa.CheckConstraint("dimension > 0", name=op.f("ck_face_models_dimension_positive")),
        sa.CheckConstraint("input_size > 0", name=op.f("ck_face_models_input_size_positive")),
        sa.CheckConstraint("input_std <> 0", name=op.f("ck_face_models_input_std_not_zero")),
        sa.CheckConstraint(
            "length(trim(alignment)) > 0", name=op.f("ck_face_models_alignment_not_blank")
        ),
        sa.CheckConstraint(
            "length(trim(licence)) > 0", name=op.f("ck_face_models_licence_not_blank")
        ),
        sa.CheckConstraint(
            "length(trim(model_key)) > 0", name=op.f("ck_face_models_model_key_not_blank")
        ),
        sa.CheckConstraint("length(trim(path)) > 0", name=op.f("ck_face_models_path_not_blank")),
        sa.CheckConstraint(
            "length(trim(source)) > 0", name=op.f("ck_face_models_source_not_blank")
        ),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"], name=op.f("fk_face_models_added_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_face_models_decided_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_models")),
        sa.UniqueConstraint("model_key", name=op.f("uq_face_models_model_key")),
        sa.UniqueConstraint("name", name=op.f("uq_face_models_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=False),
        sa.Column("activated_by", sa.Integer(), nullable=True),
        sa.Column("templates", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "length(trim(model_key)) > 0", name=op.f("ck_model_activations_model_key_not_blank")
        ),
        sa.CheckConstraint(
            "length(trim(model_name)) > 0", name=op.f("ck_model_activations_model_name_not_blank")
        ),
        sa.CheckConstraint(
            "templates >= 0", name=op.f("ck_model_activations_templates_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["activated_by"], ["users.id"], name=op.f("fk_model_activations_activated_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_activations")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "model_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("dataset_sha256", sa.String(length=64), nullable=False),
        sa.Column("verify_threshold", sa.Float(), nullable=False),
        sa.Column("verify_false_match_rate", sa.Float(), nullable=False),
        sa.Column("verify_false_non_match_rate", sa.Float(), nullable=False),
        sa.Column("impostor_pairs", sa.Integer(), nullable=False),
        sa.Column("mated_pairs", sa.Integer(), nullable=False),
        sa.Column("repeat_similarity", sa.Float(), nullable=False),
        sa.Column("min_sharpness", sa.Float(), nullable=False),
        sa.Column("recipe", sa.String(length=100), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "length(dataset_sha256) = 64 AND ltrim(dataset_sha256, '0123456789abcdef') = ''",
            name=op.f("ck_model_calibrations_dataset_sha256_hex"),
        ),
        sa.CheckConstraint(
            "impostor_pairs > 0", name=op.f("ck_model_calibrations_impostor_pairs_positive")
        ),
        sa.CheckConstraint(
            "length(trim(dataset)) > 0", name=op.f("ck_model_calibrations_dataset_not_blank")
        ),
        sa.CheckConstraint(
            "length(trim(model_key)) > 0", name=op.f("ck_model_calibrations_model_key_not_blank")
        ),
        sa.CheckConstraint(
            "mated_pairs > 0", name=op.f("ck_model_calibrations_mated_pairs_positive")
        ),
        sa.CheckConstraint(
            "verify_false_match_rate > 0 AND verify_false_match_rate < 1",
            name=op.f("ck_model_calibrations_verify_false_match_rate_range"),
        ),
        sa.CheckConstraint(
            "verify_false_non_match_rate >= 0 AND verify_false_non_match_rate <= 1",
            name=op.f("ck_model_calibrations_verify_false_non_match_rate_range"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_model_calibrations_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_calibrations")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_model_calibrations_model_key_active",
        "model_calibrations",
        ["model_key", "active"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_model_calibrations_model_key_active", table_name="model_calibrations")
    op.drop_table("model_calibrations")
    op.drop_table("model_activations")
    op.drop_table("face_models")
