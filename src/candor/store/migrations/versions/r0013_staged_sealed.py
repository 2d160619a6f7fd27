"""Staged probe photos are sealed under their probe's data key: each row names the probe
(its photo's sha256) whose key seals it, so the key can be found to open it and
destroyed with it.

Photos staged before this revision were kept in the clear; they are dropped here (a staged
photo lives minutes; the analyst picks it again).

Revision ID: 0013_staged_sealed
Revises: 0012_compact_range
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_staged_sealed"
down_revision: str | None = "0012_compact_range"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM staged_probes"))
    with op.batch_alter_table("staged_probes") as batch:
        batch.add_column(sa.Column("probe_sha256", sa.String(64), nullable=False))
        batch.create_check_constraint(
            op.f("ck_staged_probes_probe_sha256_hex"),
            "length(probe_sha256) = 64 AND ltrim(probe_sha256, '0123456789abcdef') = ''",
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM staged_probes"))
    with op.batch_alter_table("staged_probes") as batch:
        batch.drop_constraint(op.f("ck_staged_probes_probe_sha256_hex"), type_="check")
        batch.drop_column("probe_sha256")
