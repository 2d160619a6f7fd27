"""Server state in the database, so that many worker processes and nodes serve as one:
failed guesses (logins, setup token), shared server secrets, staged probe photos, and
when each session was last used.

Revision ID: 0008_server_state
Revises: 0007_gallery_changes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from candor.store.models import UTCDateTime

revision = "0008_server_state"
down_revision: str | None = "0007_gallery_changes"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "failed_guesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("failed_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('login', 'setup_token')", name=op.f("ck_failed_guesses_kind_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_guesses")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_failed_guesses_kind_subject_failed_at",
        "failed_guesses",
        ["kind", "subject", "failed_at"],
        unique=False,
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    op.create_table(
        "staged_probes",
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("owner_sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "length(key_sha256) = 64 AND ltrim(key_sha256, '0123456789abcdef') = ''",
            name=op.f("ck_staged_probes_key_sha256_hex"),
        ),
        sa.CheckConstraint(
            "length(owner_sha256) = 64 AND ltrim(owner_sha256, '0123456789abcdef') = ''",
            name=op.f("ck_staged_probes_owner_sha256_hex"),
        ),
        sa.PrimaryKeyConstraint("key_sha256", name=op.f("pk_staged_probes")),
    )
    op.create_index(
        op.f("ix_staged_probes_owner_sha256"), "staged_probes", ["owner_sha256"], unique=False
    )
    op.create_index(
        op.f("ix_staged_probes_expires_at"), "staged_probes", ["expires_at"], unique=False
    )
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("last_seen_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("last_seen_at")
    op.drop_index(op.f("ix_staged_probes_expires_at"), table_name="staged_probes")
    op.drop_index(op.f("ix_staged_probes_owner_sha256"), table_name="staged_probes")
    op.drop_table("staged_probes")
    op.drop_table("server_secrets")
    op.drop_index("ix_failed_guesses_kind_subject_failed_at", table_name="failed_guesses")
    op.drop_table("failed_guesses")
