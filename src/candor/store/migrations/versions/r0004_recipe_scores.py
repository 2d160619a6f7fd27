"""Scores of a recipe: the normalised score beside each candidate's cosine, the kind of
score each calibration tabulates, and the kind each search's threshold applies to.

Revision ID: 0004_recipe_scores
Revises: 0003_report_cards
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_recipe_scores"
down_revision: str | None = "0003_report_cards"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # Calibrations made before recipes were all of the cosine.
    with op.batch_alter_table("calibrations") as batch:
        batch.add_column(
            sa.Column("score", sa.String(length=100), nullable=False, server_default="cosine")
        )
        batch.create_check_constraint("score_not_blank", "length(trim(score)) > 0")
        batch.drop_index("ix_calibrations_model_key_active")
        batch.create_index(
            "ix_calibrations_model_key_score_active", ["model_key", "score", "active"]
        )
    # NULL: the search scored plain cosines (before recipes, or a gallery too small to be
    # its own cohort).
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("normalised_score", sa.Float(), nullable=True))
    # NULL on searches from before recipes: their thresholds were all cosines.
    with op.batch_alter_table("search_requests") as batch:
        batch.add_column(sa.Column("threshold_score", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("search_requests") as batch:
        batch.drop_column("threshold_score")
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("normalised_score")
    with op.batch_alter_table("calibrations") as batch:
        batch.drop_index("ix_calibrations_model_key_score_active")
        batch.create_index("ix_calibrations_model_key_active", ["model_key", "active"])
        batch.drop_constraint("score_not_blank", type_="check")
        batch.drop_column("score")
