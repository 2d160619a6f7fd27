"""Encryption at rest: a data key per subject, probe and index, wrapped under the workspace's
key-encryption key (whose path and fingerprint are recorded, never the key), and templates
that may be sealed (their stored length is the float32 bytes plus the seal's 32 bytes).

The migration makes no key: `candor upgrade` makes the KEK, records it and seals the
workspace's plaintext files and templates (candor.workflow.upkeep), after this has run.

Revision ID: 0011_protection
Revises: 0010_casework
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

from candor.store.errors import WorkspaceError
from candor.store.models import UTCDateTime

revision = "0011_protection"
down_revision: str | None = "0010_casework"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

# Frozen here: a sealed blob's overhead at this revision (header, nonce, tag).
SEAL_OVERHEAD = 32
PLAIN = "length(vector) = 4 * dimension"
PLAIN_OR_SEALED = f"{PLAIN} OR length(vector) = 4 * dimension + {SEAL_OVERHEAD}"


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('subject', 'probe', 'index')", name=op.f("ck_data_keys_kind_known")
        ),
        sa.CheckConstraint(
            "(kind = 'subject' AND subject_id IS NOT NULL AND owner IS NULL) OR "
            "(kind <> 'subject' AND subject_id IS NULL AND owner IS NOT NULL)",
            name=op.f("ck_data_keys_one_owner"),
        ),
        sa.CheckConstraint("length(wrapped) = 40", name=op.f("ck_data_keys_wrapped_length")),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_data_keys_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
        sa.UniqueConstraint("kind", "owner", name=op.f("uq_data_keys_kind_owner")),
        sa.UniqueConstraint("subject_id", name=op.f("uq_data_keys_subject_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "key_encryption_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_key_encryption_key_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_encryption_key")),
    )
    _replace_vector_check(PLAIN, PLAIN_OR_SEALED)


def downgrade() -> None:
    _replace_vector_check(PLAIN_OR_SEALED, PLAIN)
    op.drop_table("key_encryption_key")
    op.drop_table("data_keys")


def _replace_vector_check(old: str, new: str) -> None:
    name = "ck_face_templates_vector_length"
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(name), "face_templates", type_="check")
        op.create_check_constraint(op.f(name), "face_templates", new)
        return
    _rebuild_face_templates(bind, name, old, new)


def _rebuild_face_templates(bind: sa.Connection, name: str, old: str, new: str) -> None:
    """SQLite cannot alter a CHECK, so the table is rebuilt from its own CREATE statement
    with only that CHECK replaced (as revision 0010 did for admin_changes). No table
    references face_templates, so dropping the old copy cascades nowhere; its indexes and
    triggers are made again and its AUTOINCREMENT sequence is carried over, so that no
    template id is ever given twice."""
    table_sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'face_templates'")
    ).scalar_one()
    pattern = re.compile(rf"CONSTRAINT\s+\"?{name}\"?\s+CHECK\s*\({re.escape(old)}\)")
    new_sql, replaced = pattern.subn(f"CONSTRAINT {name} CHECK ({new})", str(table_sql))
    if replaced != 1:
        raise WorkspaceError(f"table face_templates does not have the CHECK {name} Candor made")
    new_sql, renamed = re.subn(
        r"^CREATE TABLE\s+\"?face_templates\"?", "CREATE TABLE face_templates_0011", new_sql
    )
    if renamed != 1:
        raise WorkspaceError("table face_templates does not have the form Candor made")
    # Its indexes and its triggers (revision 0007's gallery change log) go with the old copy.
    dependents = bind.execute(
        sa.text(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = 'face_templates' AND sql IS NOT NULL ORDER BY type"
        )
    ).scalars()
    index_sql = [str(sql) for sql in dependents]
    sequence = bind.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'face_templates'")
    ).scalar()
    bind.execute(sa.text(new_sql))
    bind.execute(sa.text("INSERT INTO face_templates_0011 SELECT * FROM face_templates"))
    bind.execute(sa.text("DROP TABLE face_templates"))
    bind.execute(sa.text("ALTER TABLE face_templates_0011 RENAME TO face_templates"))
    for sql in index_sql:
        bind.execute(sa.text(sql))
    if sequence is not None:
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'face_templates'"))
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('face_templates', :seq)"),
            {"seq": int(sequence)},
        )
