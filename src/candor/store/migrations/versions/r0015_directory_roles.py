"""Directory sign-on: accounts that log in through the directory, group-to-role mappings
(two admins) and the confirmations of directory persons given admin or auditor.

Revision ID: 0015_directory_roles
Revises: 0014_face_models
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from candor.store.models import UTCDateTime

revision = "0015_directory_roles"
down_revision: str | None = "0014_face_models"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_ROLES = "'analyst', 'examiner', 'supervisor', 'auditor', 'admin'"


def upgrade() -> None:
    op.create_table(
        "directory_accounts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("dn", sa.Text(), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(trim(dn)) > 0", name=op.f("ck_directory_accounts_dn_not_blank")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_directory_accounts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_directory_accounts")),
    )
    op.create_table(
        "directory_group_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_dn", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("withdrawn_by", sa.Integer(), nullable=True),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "length(trim(group_dn)) > 0", name=op.f("ck_directory_group_roles_group_dn_not_blank")
        ),
        sa.CheckConstraint(f"role IN ({_ROLES})", name=op.f("ck_directory_group_roles_role_known")),
        sa.CheckConstraint(
            "state IN ('pending', 'confirmed', 'rejected', 'withdrawn')",
            name=op.f("ck_directory_group_roles_state_known"),
        ),
        sa.CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state IN ('confirmed', 'rejected') AND decided_by IS NOT NULL "
            "AND decided_at IS NOT NULL) OR state = 'withdrawn'",
            name=op.f("ck_directory_group_roles_decision_complete"),
        ),
        sa.CheckConstraint(
            "(state = 'withdrawn') = (withdrawn_by IS NOT NULL AND withdrawn_at IS NOT NULL)",
            name=op.f("ck_directory_group_roles_withdrawal_complete"),
        ),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> requested_by OR state = 'rejected'",
            name=op.f("ck_directory_group_roles_second_admin_confirms"),
        ),
        sa.CheckConstraint(
            "state <> 'rejected' OR (reason IS NOT NULL AND length(trim(reason)) > 0)",
            name=op.f("ck_directory_group_roles_rejection_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_directory_group_roles_requested_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_directory_group_roles_decided_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["withdrawn_by"], ["users.id"], name=op.f("fk_directory_group_roles_withdrawn_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_group_roles")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "directory_role_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("noticed_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'auditor')",
            name=op.f("ck_directory_role_confirmations_role_needs_confirmation"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'confirmed', 'rejected')",
            name=op.f("ck_directory_role_confirmations_state_known"),
        ),
        sa.CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state <> 'pending' AND decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name=op.f("ck_directory_role_confirmations_decision_complete"),
        ),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> user_id",
            name=op.f("ck_directory_role_confirmations_not_self_decided"),
        ),
        sa.CheckConstraint(
            "state <> 'rejected' OR (reason IS NOT NULL AND length(trim(reason)) > 0)",
            name=op.f("ck_directory_role_confirmations_rejection_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_directory_role_confirmations_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_directory_role_confirmations_decided_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_role_confirmations")),
        sa.UniqueConstraint(
            "user_id", "role", name=op.f("uq_directory_role_confirmations_user_id_role")
        ),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("directory_role_confirmations")
    op.drop_table("directory_group_roles")
    op.drop_table("directory_accounts")
