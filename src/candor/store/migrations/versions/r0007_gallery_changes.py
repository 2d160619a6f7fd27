"""The gallery's change log: every template added or removed, in commit order.

Each process holds its own copy of the gallery index; before a search it applies the
changes committed since its copy was last brought in step (see candor.store.changes).
Triggers on face_templates write the log, in the transaction that changes the template,
whatever the path: an insert is 'added', a delete (cascades included) 'removed', and a
change of a template's id, model or vector both. Existing templates get no rows: an
index that records no change seq is reconciled with the store in full, once.

A later migration that rebuilds face_templates (SQLite alters a table by copying it)
drops these triggers with the old table and must create them again:
tests/workflow/test_index_sync.py checks that they fire at head.

On SQLite writers take turns (one write lock), so seq order is commit order. On
PostgreSQL a sequence's order is not: a reader could see seq n+1 committed while n is
still to come, and skip n for good. There the trigger function first takes a
transaction-scoped advisory lock, held until commit, so writers of templates take turns
too and a seq is drawn only after every earlier one has committed.

Revision ID: 0007_gallery_changes
Revises: 0006_never_reuse_ids
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_gallery_changes"
down_revision: str | None = "0006_never_reuse_ids"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_ADDED = """
CREATE TRIGGER gallery_changes_added AFTER INSERT ON face_templates
BEGIN
    INSERT INTO gallery_changes (template_id, model_key, kind)
    VALUES (NEW.id, NEW.model_key, 'added');
END
"""
_REMOVED = """
CREATE TRIGGER gallery_changes_removed AFTER DELETE ON face_templates
BEGIN
    INSERT INTO gallery_changes (template_id, model_key, kind)
    VALUES (OLD.id, OLD.model_key, 'removed');
END
"""
# Re-enrolment gives a new row its id with an UPDATE after the INSERT.
_REPLACED = """
CREATE TRIGGER gallery_changes_replaced
AFTER UPDATE OF id, model_key, dimension, vector ON face_templates
BEGIN
    INSERT INTO gallery_changes (template_id, model_key, kind)
    VALUES (OLD.id, OLD.model_key, 'removed');
    INSERT INTO gallery_changes (template_id, model_key, kind)
    VALUES (NEW.id, NEW.model_key, 'added');
END
"""
TRIGGERS = ("gallery_changes_added", "gallery_changes_removed", "gallery_changes_replaced")

# The advisory lock's key (7262726001) is a constant no other part of Candor takes.
# Its neighbour 7262726002 is the audit log's head (candor.store.audit_log.AUDIT_LOG_LOCK):
# an audited writer takes this one first, then that one, so the two never deadlock.
_PG_FUNCTION = """
CREATE FUNCTION candor_log_gallery_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7262726001);
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO gallery_changes (template_id, model_key, kind)
        VALUES (OLD.id, OLD.model_key, 'removed');
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO gallery_changes (template_id, model_key, kind)
        VALUES (NEW.id, NEW.model_key, 'added');
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = {
    "gallery_changes_added": "AFTER INSERT",
    "gallery_changes_removed": "AFTER DELETE",
    "gallery_changes_replaced": "AFTER UPDATE OF id, model_key, dimension, vector",
}


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "gallery_changes",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "kind IN ('added', 'removed')", name=op.f("ck_gallery_changes_kind_known")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_gallery_changes")),
        sqlite_autoincrement=True,
    )
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(_PG_FUNCTION)
        for name, when in _PG_TRIGGERS.items():
            bind.exec_driver_sql(
                f"CREATE TRIGGER {name} {when} ON face_templates "
                "FOR EACH ROW EXECUTE FUNCTION candor_log_gallery_change()"
            )
    elif bind.dialect.name == "sqlite":
        for trigger in (_ADDED, _REMOVED, _REPLACED):
            bind.exec_driver_sql(trigger)
    else:
        raise RuntimeError(f"no gallery change triggers for the {bind.dialect.name} database")


def downgrade() -> None:
    bind = op.get_bind()
    for name in TRIGGERS:
        on = " ON face_templates" if bind.dialect.name == "postgresql" else ""
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}{on}")
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS candor_log_gallery_change()")
    op.drop_table("gallery_changes")
