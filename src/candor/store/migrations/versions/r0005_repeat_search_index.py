"""An index for the repeat-search check: search requests by kind and creation time.

Revision ID: 0005_repeat_search_index
Revises: 0004_recipe_scores
"""

from __future__ import annotations

from alembic import op

revision = "0005_repeat_search_index"
down_revision: str | None = "0004_recipe_scores"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_search_requests_kind_created_at",
        "search_requests",
        ["kind", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_search_requests_kind_created_at", table_name="search_requests")
