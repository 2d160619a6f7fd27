"""Accountable use: users, roles, sessions, admin confirmations, policies, search requests,
candidates, approvals, verdicts, releases, calibrations, audit entries and checkpoints.

Revision ID: 0002_governance
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_governance"
down_revision: str | None = "0001_initial"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

# Frozen copies of the models' lists: a revision must not change when the models do.
ROLES = ("analyst", "examiner", "supervisor", "auditor", "admin")
ADMIN_CHANGE_KINDS = ("create_user", "grant_role", "revoke_role", "enable_user", "change_policy")
SEARCH_STATUSES = ("denied", "pending_approval", "approved", "rejected", "completed", "failed")
VERDICTS = ("possible_match", "not_a_match", "inconclusive")
USERNAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789._-"


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _hex64(column: str) -> str:
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


def _non_blank(column: str) -> str:
    return f"length(trim({column})) > 0"


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_hex64("root_hash"), name=op.f("ck_audit_checkpoints_root_hash_hex")),
        sa.CheckConstraint(_non_blank("note"), name=op.f("ck_audit_checkpoints_note_not_blank")),
        sa.CheckConstraint(
            "tree_size >= 0", name=op.f("ck_audit_checkpoints_tree_size_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("tree_size", name=op.f("uq_audit_checkpoints_tree_size")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_hex64("leaf_hash"), name=op.f("ck_audit_entries_leaf_hash_hex")),
        sa.CheckConstraint("length(body) > 0", name=op.f("ck_audit_entries_body_not_empty")),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_audit_entries_seq_positive")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("certificate_ref", sa.String(length=200), nullable=False),
        sa.Column("certificate_expires", sa.Date(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "length(username) >= 2 AND length(username) <= 64 "
            f"AND ltrim(username, '{USERNAME_CHARACTERS}') = ''",
            name=op.f("ck_users_username_form"),
        ),
        sa.CheckConstraint(
            "password_hash LIKE '$argon2id$%'", name=op.f("ck_users_password_hash_argon2id")
        ),
        sa.CheckConstraint(
            _non_blank("certificate_ref"), name=op.f("ck_users_certificate_ref_not_blank")
        ),
        sa.CheckConstraint(_non_blank("created_by"), name=op.f("ck_users_created_by_not_blank")),
        sa.CheckConstraint(
            _non_blank("display_name"), name=op.f("ck_users_display_name_not_blank")
        ),
        sa.CheckConstraint(_non_blank("unit"), name=op.f("ck_users_unit_not_blank")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "admin_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state <> 'pending' AND decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name=op.f("ck_admin_changes_decision_complete"),
        ),
        sa.CheckConstraint(
            f"kind IN ({_sql_list(ADMIN_CHANGE_KINDS)})", name=op.f("ck_admin_changes_kind_known")
        ),
        sa.CheckConstraint(
            "state <> 'confirmed' OR decided_by <> requested_by",
            name=op.f("ck_admin_changes_second_admin_confirms"),
        ),
        sa.CheckConstraint(
            f"state <> 'rejected' OR (reason IS NOT NULL AND {_non_blank('reason')})",
            name=op.f("ck_admin_changes_rejection_has_reason"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'confirmed', 'rejected')",
            name=op.f("ck_admin_changes_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_admin_changes_decided_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_admin_changes_requested_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_changes")),
    )
    op.create_index("ix_admin_changes_state_id", "admin_changes", ["state", "id"], unique=False)
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_hex64("token_sha256"), name=op.f("ck_auth_sessions_token_sha256_hex")),
        sa.CheckConstraint(
            "expires_at > created_at", name=op.f("ck_auth_sessions_expires_after_creation")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_auth_sessions_token_sha256")),
    )
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"], unique=False)
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("dataset_sha256", sa.String(length=64), nullable=False),
        sa.Column("impostor_pairs", sa.Integer(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("templates", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            _hex64("dataset_sha256"), name=op.f("ck_calibrations_dataset_sha256_hex")
        ),
        sa.CheckConstraint(
            "impostor_pairs > 0", name=op.f("ck_calibrations_impostor_pairs_positive")
        ),
        sa.CheckConstraint(_non_blank("dataset"), name=op.f("ck_calibrations_dataset_not_blank")),
        sa.CheckConstraint(
            _non_blank("model_key"), name=op.f("ck_calibrations_model_key_not_blank")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_calibrations_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
    )
    op.create_index(
        "ix_calibrations_model_key_active", "calibrations", ["model_key", "active"], unique=False
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        sa.CheckConstraint(_hex64("sha256"), name=op.f("ck_policies_sha256_hex")),
        sa.CheckConstraint(
            "(activated_at IS NULL) = (confirmed_by IS NULL)",
            name=op.f("ck_policies_activation_confirmed"),
        ),
        sa.CheckConstraint(_non_blank("name"), name=op.f("ck_policies_name_not_blank")),
        sa.CheckConstraint(_non_blank("version"), name=op.f("ck_policies_version_not_blank")),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"], name=op.f("fk_policies_added_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by"], ["users.id"], name=op.f("fk_policies_confirmed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("sha256", name=op.f("uq_policies_sha256")),
    )
    op.create_index("ix_policies_activated_at", "policies", ["activated_at"], unique=False)
    op.create_table(
        "search_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(length=200), nullable=False),
        sa.Column("offence_category", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("requesting_agency", sa.String(length=200), nullable=False),
        sa.Column("requesting_unit", sa.String(length=200), nullable=False),
        sa.Column("authorisation_ref", sa.String(length=200), nullable=True),
        sa.Column("probe_kind", sa.String(length=50), nullable=False),
        sa.Column("probe_edited", sa.Boolean(), nullable=False),
        sa.Column("edits", sa.Text(), nullable=True),
        sa.Column("requested_top", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("policy_sha256", sa.String(length=64), nullable=False),
        sa.Column("earlier_search_id", sa.Integer(), nullable=True),
        sa.Column("probe_sha256", sa.String(length=64), nullable=False),
        sa.Column("original_probe_sha256", sa.String(length=64), nullable=True),
        sa.Column("second_probe_sha256", sa.String(length=64), nullable=True),
        sa.Column("face_index", sa.Integer(), nullable=True),
        sa.Column("probe_quality", sa.JSON(), nullable=True),
        sa.Column("probe_model_key", sa.String(length=200), nullable=True),
        sa.Column("probe_template", sa.LargeBinary(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("threshold_note", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(kind = 'verify') = (second_probe_sha256 IS NOT NULL)",
            name=op.f("ck_search_requests_second_probe_only_for_verify"),
        ),
        sa.CheckConstraint(
            "kind IN ('search', 'verify')", name=op.f("ck_search_requests_kind_known")
        ),
        sa.CheckConstraint(
            _hex64("policy_sha256"), name=op.f("ck_search_requests_policy_sha256_hex")
        ),
        sa.CheckConstraint(
            _hex64("probe_sha256"), name=op.f("ck_search_requests_probe_sha256_hex")
        ),
        sa.CheckConstraint(
            f"original_probe_sha256 IS NULL OR ({_hex64('original_probe_sha256')})",
            name=op.f("ck_search_requests_original_probe_sha256_hex"),
        ),
        sa.CheckConstraint(
            f"second_probe_sha256 IS NULL OR ({_hex64('second_probe_sha256')})",
            name=op.f("ck_search_requests_second_probe_sha256_hex"),
        ),
        sa.CheckConstraint(
            "status <> 'completed' OR ran_at IS NOT NULL",
            name=op.f("ck_search_requests_completed_has_run"),
        ),
        sa.CheckConstraint(
            f"status IN ({_sql_list(SEARCH_STATUSES)})",
            name=op.f("ck_search_requests_status_known"),
        ),
        sa.CheckConstraint(
            f"NOT probe_edited OR (edits IS NOT NULL AND {_non_blank('edits')})",
            name=op.f("ck_search_requests_edits_described"),
        ),
        sa.CheckConstraint(
            "face_index IS NULL OR face_index >= 0",
            name=op.f("ck_search_requests_face_index_not_negative"),
        ),
        sa.CheckConstraint(
            _non_blank("case_number"), name=op.f("ck_search_requests_case_number_not_blank")
        ),
        sa.CheckConstraint(
            _non_blank("offence_category"),
            name=op.f("ck_search_requests_offence_category_not_blank"),
        ),
        sa.CheckConstraint(
            _non_blank("probe_kind"), name=op.f("ck_search_requests_probe_kind_not_blank")
        ),
        sa.CheckConstraint(
            _non_blank("purpose"), name=op.f("ck_search_requests_purpose_not_blank")
        ),
        sa.CheckConstraint(
            _non_blank("requesting_agency"),
            name=op.f("ck_search_requests_requesting_agency_not_blank"),
        ),
        sa.CheckConstraint(
            _non_blank("requesting_unit"), name=op.f("ck_search_requests_requesting_unit_not_blank")
        ),
        sa.CheckConstraint(
            "probe_edited OR (original_probe_sha256 IS NULL AND edits IS NULL)",
            name=op.f("ck_search_requests_unedited_has_no_original"),
        ),
        sa.CheckConstraint(
            "probe_purged_at IS NULL OR probe_template IS NULL",
            name=op.f("ck_search_requests_purged_has_no_template"),
        ),
        sa.CheckConstraint(
            "requested_top > 0", name=op.f("ck_search_requests_requested_top_positive")
        ),
        sa.ForeignKeyConstraint(
            ["earlier_search_id"],
            ["search_requests.id"],
            name=op.f("fk_search_requests_earlier_search_id_search_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["users.id"], name=op.f("fk_search_requests_requester_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_requests")),
    )
    op.create_index(
        "ix_search_requests_probe_sha256", "search_requests", ["probe_sha256"], unique=False
    )
    op.create_index(
        "ix_search_requests_requester_id_created_at",
        "search_requests",
        ["requester_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.CheckConstraint(f"role IN ({_sql_list(ROLES)})", name=op.f("ck_user_roles_role_known")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role", name=op.f("pk_user_roles")),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected')", name=op.f("ck_approvals_decision_known")
        ),
        sa.CheckConstraint(_non_blank("reason"), name=op.f("ck_approvals_reason_not_blank")),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["search_requests.id"],
            name=op.f("fk_approvals_search_id_search_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supervisor_id"], ["users.id"], name=op.f("fk_approvals_supervisor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("search_id", name=op.f("uq_approvals_search_id")),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("above_threshold", sa.Boolean(), nullable=False),
        sa.CheckConstraint("rank >= 1", name=op.f("ck_candidates_rank_positive")),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["search_requests.id"],
            name=op.f("fk_candidates_search_id_search_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("search_id", "rank", name=op.f("uq_candidates_search_id_rank")),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("released_by", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.CheckConstraint(_non_blank("label"), name=op.f("ck_releases_label_not_blank")),
        sa.CheckConstraint(_non_blank("reason"), name=op.f("ck_releases_reason_not_blank")),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_releases_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["released_by"], ["users.id"], name=op.f("fk_releases_released_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("candidate_id", name=op.f("uq_releases_candidate_id")),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("examiner_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"verdict IN ({_sql_list(VERDICTS)})", name=op.f("ck_verdicts_verdict_known")
        ),
        sa.CheckConstraint(_non_blank("rationale"), name=op.f("ck_verdicts_rationale_not_blank")),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_verdicts_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["examiner_id"], ["users.id"], name=op.f("fk_verdicts_examiner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
        sa.UniqueConstraint(
            "candidate_id", "examiner_id", name=op.f("uq_verdicts_candidate_id_examiner_id")
        ),
    )


def downgrade() -> None:
    for table in (
        "verdicts",
        "releases",
        "candidates",
        "approvals",
        "user_roles",
        "search_requests",
        "policies",
        "calibrations",
        "auth_sessions",
        "admin_changes",
        "users",
        "audit_entries",
        "audit_checkpoints",
    ):
        op.drop_table(table)
