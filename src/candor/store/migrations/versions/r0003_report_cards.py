"""Report cards: the figures of each `candor evaluate` run in the workspace.

Revision ID: 0003_report_cards
Revises: 0002_governance
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_report_cards"
down_revision: str | None = "0002_governance"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def _hex64(column: str) -> str:
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


def _non_blank(column: str) -> str:
    return f"length(trim({column})) > 0"


def upgrade() -> None:
    op.create_table(
        "report_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("dataset_sha256", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("dataset_limits", sa.Text(), nullable=False),
        sa.CheckConstraint(_non_blank("dataset"), name=op.f("ck_report_cards_dataset_not_blank")),
        sa.CheckConstraint(
            _hex64("dataset_sha256"), name=op.f("ck_report_cards_dataset_sha256_hex")
        ),
        sa.CheckConstraint(
            _non_blank("model_key"), name=op.f("ck_report_cards_model_key_not_blank")
        ),
        sa.CheckConstraint(
            _non_blank("dataset_limits"), name=op.f("ck_report_cards_dataset_limits_not_blank")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_report_cards_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_cards")),
    )
    op.create_index("ix_report_cards_created_at", "report_cards", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_report_cards_created_at", table_name="report_cards")
    op.drop_table("report_cards")
