"""Casework as people use it: what came of each released lead, a senior examiner's verdict
that settles a disagreement, a password an admin reset (to be changed at next login), an
Idempotency-Key per requester so a retried request is one request, and expungement as an
admin change a second admin confirms. The audit log's entries gain copies of their action,
actor, search and case (from the hashed body, filled for the entries already there) so the
audit browser filters the log in SQL.

Revision ID: 0010_casework
Revises: 0009_jobs
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from alembic import op

from candor.store.errors import WorkspaceError
from candor.store.models import UTCDateTime

revision = "0010_casework"
down_revision: str | None = "0009_jobs"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

# Frozen here: the kinds at 0009 and at this revision.
OLD_KINDS = ("create_user", "grant_role", "revoke_role", "enable_user", "change_policy")
NEW_KINDS = (*OLD_KINDS, "expunge_subject")
LEAD_OUTCOMES = ("pending", "confirmed_by_other_evidence", "excluded", "no_action")
# The audit browser's columns and their indexes, each newest first by seq.
AUDIT_COLUMNS = ("action", "actor", "search_id", "case_number")
AUDIT_INDEXES = {
    "ix_audit_entries_action_seq": ["action", "seq"],
    "ix_audit_entries_actor_seq": ["actor", "seq"],
    "ix_audit_entries_search_id_seq": ["search_id", "seq"],
    "ix_audit_entries_case_number_seq": ["case_number", "seq"],
    "ix_audit_entries_created_at": ["created_at"],
}
# Frozen here, as candor.store.audit_log.entry_columns reads them at this revision.
MAX_SEARCH_ID = 2**31 - 1
BACKFILL_BATCH = 5000


def _kinds_check(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite 3.35 and later drop columns too): a batch
    # rebuild of users would drop a table others reference.
    op.add_column(
        "users",
        sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "verdicts", sa.Column("resolves", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "search_requests", sa.Column("idempotency_key", sa.String(length=100), nullable=True)
    )
    op.create_index(
        "ix_search_requests_requester_id_idempotency_key",
        "search_requests",
        ["requester_id", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "lead_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "outcome IN (" + ", ".join(f"'{o}'" for o in LEAD_OUTCOMES) + ")",
            name=op.f("ck_lead_outcomes_outcome_known"),
        ),
        sa.CheckConstraint("length(trim(note)) > 0", name=op.f("ck_lead_outcomes_note_not_blank")),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_lead_outcomes_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_lead_outcomes_recorded_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_outcomes")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_lead_outcomes_release_id_id", "lead_outcomes", ["release_id", "id"], unique=False
    )
    _replace_kinds_check(NEW_KINDS)
    _add_audit_columns()


def downgrade() -> None:
    for name in AUDIT_INDEXES:
        op.drop_index(name, table_name="audit_entries")
    for column in AUDIT_COLUMNS:
        op.drop_column("audit_entries", column)
    _replace_kinds_check(OLD_KINDS)
    op.drop_index("ix_lead_outcomes_release_id_id", table_name="lead_outcomes")
    op.drop_table("lead_outcomes")
    op.drop_index("ix_search_requests_requester_id_idempotency_key", table_name="search_requests")
    op.drop_column("search_requests", "idempotency_key")
    op.drop_column("verdicts", "resolves")
    op.drop_column("users", "must_change_password")


def _replace_kinds_check(kinds: tuple[str, ...]) -> None:
    name = "ck_admin_changes_kind_known"
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(name), "admin_changes", type_="check")
        op.create_check_constraint(op.f(name), "admin_changes", _kinds_check(kinds))
        return
    _rebuild_admin_changes(bind, name, _kinds_check(kinds))


def _rebuild_admin_changes(bind: sa.Connection, name: str, check: str) -> None:
    """SQLite cannot alter a CHECK, so the table is rebuilt from its own CREATE statement
    with only that CHECK replaced; its key keeps the form revision 0006 gave it, so a
    downgrade past 0006 still finds it. Nothing references admin_changes, so dropping the
    old copy cascades nowhere, and its AUTOINCREMENT sequence is carried over so that no
    change id is ever given twice."""
    table_sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'admin_changes'")
    ).scalar_one()
    pattern = re.compile(rf"CONSTRAINT\s+\"?{name}\"?\s+CHECK\s*\(kind IN \([^)]*\)\)")
    new_sql, replaced = pattern.subn(f"CONSTRAINT {name} CHECK ({check})", str(table_sql))
    if replaced != 1:
        raise WorkspaceError(f"table admin_changes does not have the CHECK {name} Candor made")
    new_sql, renamed = re.subn(
        r"^CREATE TABLE\s+\"?admin_changes\"?", "CREATE TABLE admin_changes_0010", new_sql
    )
    if renamed != 1:
        raise WorkspaceError("table admin_changes does not have the form Candor made")
    indexes = bind.execute(
        sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'admin_changes' "
            "AND sql IS NOT NULL"
        )
    ).scalars()
    index_sql = [str(sql) for sql in indexes]
    sequence = bind.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'admin_changes'")
    ).scalar()
    bind.execute(sa.text(new_sql))
    bind.execute(sa.text("INSERT INTO admin_changes_0010 SELECT * FROM admin_changes"))
    bind.execute(sa.text("DROP TABLE admin_changes"))
    bind.execute(sa.text("ALTER TABLE admin_changes_0010 RENAME TO admin_changes"))
    for sql in index_sql:
        bind.execute(sa.text(sql))
    if sequence is not None:
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'admin_changes'"))
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('admin_changes', :seq)"),
            {"seq": int(sequence)},
        )


def _add_audit_columns() -> None:
    op.add_column("audit_entries", sa.Column("action", sa.Text(), nullable=True))
    op.add_column("audit_entries", sa.Column("actor", sa.Text(), nullable=True))
    op.add_column("audit_entries", sa.Column("search_id", sa.Integer(), nullable=True))
    op.add_column("audit_entries", sa.Column("case_number", sa.Text(), nullable=True))
    _fill_audit_columns(op.get_bind())
    for name, columns in AUDIT_INDEXES.items():
        op.create_index(name, "audit_entries", columns, unique=False)


def _fill_audit_columns(bind: sa.Connection) -> None:
    """Copy each existing entry's action, actor, search and case out of its body, in
    batches (a log may hold millions of entries)."""
    update = sa.text(
        "UPDATE audit_entries SET action = :action, actor = :actor, search_id = :search_id, "
        "case_number = :case_number WHERE seq = :seq"
    )
    select = sa.text(
        "SELECT seq, body FROM audit_entries WHERE seq > :after ORDER BY seq LIMIT :batch"
    )
    after = 0
    while True:
        rows = bind.execute(select, {"after": after, "batch": BACKFILL_BATCH}).all()
        if not rows:
            return
        bind.execute(update, [_audit_columns(int(seq), bytes(body)) for seq, body in rows])
        after = int(rows[-1][0])


def _audit_columns(seq: int, body: bytes) -> dict[str, object]:
    try:
        entry = json.loads(body)
    except ValueError:
        # A damaged body stays findable by seq alone; verification reports it.
        entry = {}
    if not isinstance(entry, dict):
        entry = {}
    objects = entry.get("objects")
    objects = objects if isinstance(objects, dict) else {}
    search = objects.get("search")
    case = objects.get("case")
    action, actor = entry.get("action"), entry.get("actor")
    return {
        "seq": seq,
        "action": action if isinstance(action, str) else None,
        "actor": actor if isinstance(actor, str) else None,
        "search_id": search
        if isinstance(search, int) and not isinstance(search, bool) and 1 <= search <= MAX_SEARCH_ID
        else None,
        "case_number": case if isinstance(case, str) else None,
    }
