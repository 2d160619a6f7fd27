"""Each audit checkpoint keeps its tree's compact range (RFC 9162 2.1; the perfect subtrees
of its first size - 1 entries, then the leaf hash of its last), so the next checkpoint
grows from the newest stored one and reads only the entries after it.

Checkpoints signed before this revision keep NULL: the log then grows from its witness,
as before, once; every checkpoint signed after it stores its range.

Revision ID: 0012_compact_range
Revises: 0011_protection
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_compact_range"
down_revision: str | None = "0011_protection"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("compact_range", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("compact_range")
