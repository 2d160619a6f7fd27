"""Ids are never given twice: every table whose rows are named by id elsewhere (in other
rows, in the audit log) takes its ids from SQLite's AUTOINCREMENT, and each table's
sequence starts above the highest id any record has ever named.

Before this revision SQLite gave max(id) + 1, so after an expungement the next person
enrolled took the expunged person's subject, image and template ids, and old candidate
lists and audit entries named the newcomer. PostgreSQL's SERIAL and IDENTITY sequences
never go back, so there is nothing to do there.

Revision ID: 0006_never_reuse_ids
Revises: 0005_repeat_search_index
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from alembic import op

from candor.store.errors import WorkspaceError

revision = "0006_never_reuse_ids"
down_revision: str | None = "0005_repeat_search_index"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

# Frozen: the tables at 0005, parents before children. user_roles keeps its composite key;
# it is rebuilt only because it references users (see _rebuild).
TABLES: tuple[tuple[str, bool], ...] = (
    ("users", True),
    ("user_roles", False),
    ("auth_sessions", True),
    ("admin_changes", True),
    ("policies", True),
    ("calibrations", True),
    ("report_cards", True),
    ("subjects", True),
    ("gallery_images", True),
    ("face_templates", True),
    ("search_requests", True),
    ("approvals", True),
    ("candidates", True),
    ("verdicts", True),
    ("releases", True),
    ("audit_checkpoints", True),
)
AUTOINCREMENTED = tuple(table for table, autoincrement in TABLES if autoincrement)

# Ids held in plain integer columns, without a foreign key that would keep the row alive.
PLAIN_REFERENCES: tuple[tuple[str, str], ...] = (
    ("subjects", "SELECT max(subject_id) FROM candidates"),
    ("gallery_images", "SELECT max(image_id) FROM candidates"),
    ("face_templates", "SELECT max(template_id) FROM candidates"),
    (
        "policies",
        "SELECT max(CAST(json_extract(payload, '$.policy_id') AS INTEGER)) FROM admin_changes",
    ),
)

# What the audit log's entries name by id, under which key, up to 0005.
AUDIT_OBJECTS = {
    "subject": "subjects",
    "first_subject": "subjects",
    "last_subject": "subjects",
    "image": "gallery_images",
    "template": "face_templates",
    "search": "search_requests",
    "candidate": "candidates",
    "user": "users",
    "session": "auth_sessions",
    "change": "admin_changes",
    "report_card": "report_cards",
    "calibration": "calibrations",
}
AUDIT_DETAILS = {
    "images": "gallery_images",
    "image_ids": "gallery_images",
    "image_subjects": "subjects",
    "subjects_removed": "subjects",
    "templates": "face_templates",
    "old_templates": "face_templates",
    "new_templates": "face_templates",
    "searches": "search_requests",
    "earlier_search": "search_requests",
    "policy_id": "policies",
}

_PLAIN_KEY = re.compile(r'PRIMARY KEY\s*\(\s*"?id"?\s*\)', re.IGNORECASE)
_AUTOINCREMENT = re.compile(r"\s+AUTOINCREMENT\b", re.IGNORECASE)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    _refuse_dangling_references(bind)
    _rebuild(bind, _with_autoincrement)
    _seed_sequences(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    _rebuild(bind, _without_autoincrement)
    for table in AUTOINCREMENTED:
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :name"), {"name": table})


def _with_autoincrement(table: str, sql: str) -> str:
    if _AUTOINCREMENT.search(sql):
        return sql
    changed, count = _PLAIN_KEY.subn("PRIMARY KEY (id AUTOINCREMENT)", sql)
    if count != 1:
        raise WorkspaceError(f"table {table} does not have the primary key (id) Candor made")
    return changed


def _without_autoincrement(table: str, sql: str) -> str:
    return _AUTOINCREMENT.sub("", sql, count=1)


def _rebuild(bind: sa.Connection, key_of: Callable[[str, str], str]) -> None:
    """Recreate every table of TABLES with its primary key changed by `key_of`.

    SQLite cannot change a key in place. Alembic's batch mode copies a table, drops it and
    renames the copy, but the migrations run in one transaction with foreign keys on (the
    pragma cannot change inside a transaction), and there DROP TABLE first deletes every
    row, which cascades into the children: rebuilding subjects that way would delete every
    gallery image. So the old tables are renamed out of the way first (SQLite points the
    children's foreign keys at the renamed tables), the new ones are made from the stored
    definitions (whose foreign keys name the new tables), rows are copied parents first,
    and the old tables dropped children first, when nothing new refers to them.
    """
    names = [table for table, _ in TABLES]
    _refuse_outside_children(bind, names)
    stored = sa.text(
        "SELECT sql FROM sqlite_master WHERE type = :kind AND tbl_name = :name "
        "AND sql IS NOT NULL ORDER BY name"
    )
    definitions = {
        name: bind.execute(stored, {"kind": "table", "name": name}).scalar_one() for name in names
    }
    indexes = {
        name: bind.execute(stored, {"kind": "index", "name": name}).scalars().all()
        for name in names
    }
    # Renames must rewrite the children's references (the default since SQLite 3.26).
    bind.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
    for name in names:
        bind.exec_driver_sql(f'ALTER TABLE "{name}" RENAME TO "_old_{name}"')
    for name, changes_key in TABLES:
        sql = definitions[name]
        bind.exec_driver_sql(key_of(name, sql) if changes_key else sql)
    for name in names:
        columns = ", ".join(
            f'"{row[1]}"' for row in bind.exec_driver_sql(f'PRAGMA table_info("{name}")')
        )
        # Names from TABLES and the table's own columns, never from outside.
        copy = f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "_old_{name}"'  # noqa: S608
        bind.exec_driver_sql(copy)
    for name in reversed(names):
        bind.exec_driver_sql(f'DROP TABLE "_old_{name}"')
    for name in names:
        for sql in indexes[name]:
            bind.exec_driver_sql(sql)


def _refuse_outside_children(bind: sa.Connection, names: list[str]) -> None:
    # A table left out would keep pointing at a dropped table, or lose its rows to a cascade.
    rebuilt = set(names)
    for (other,) in bind.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ):
        if other in rebuilt:
            continue
        for row in bind.exec_driver_sql(f'PRAGMA foreign_key_list("{other}")'):
            if row[2] in rebuilt:
                raise WorkspaceError(
                    f"table {other} refers to {row[2]}, which this migration rebuilds; "
                    "it must be rebuilt with it"
                )


def _refuse_dangling_references(bind: sa.Connection) -> None:
    # Copying a row that points at a missing one would fail half-way with a bare
    # "FOREIGN KEY constraint failed"; say where instead (such rows come from edits
    # made outside Candor, with foreign keys off).
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise WorkspaceError(
            f"the database has {len(broken)} row(s) that refer to missing rows, the first "
            f"in table {table} (row {rowid}, referring to {parent}): it was changed outside "
            "Candor, and the upgrade changed nothing; restore it from a backup"
        )


def _seed_sequences(bind: sa.Connection) -> None:
    """Start each table's ids above the highest id any row or audit entry has named."""
    floors = {table: 0 for table in AUTOINCREMENTED}
    for table in AUTOINCREMENTED:
        highest = bind.exec_driver_sql(f'SELECT max(id) FROM "{table}"')  # noqa: S608
        floors[table] = _larger(floors[table], highest.scalar())
    for table, query in PLAIN_REFERENCES:
        floors[table] = _larger(floors[table], bind.exec_driver_sql(query).scalar())
    for (body,) in bind.exec_driver_sql("SELECT body FROM audit_entries"):
        for table, named in _audit_ids(body):
            floors[table] = max(floors[table], named)
    for table, floor in floors.items():
        parameters = {"name": table, "floor": floor}
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :floor WHERE name = :name AND seq < :floor"),
            parameters,
        )
        bind.execute(
            sa.text(
                "INSERT INTO sqlite_sequence (name, seq) SELECT :name, :floor "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = :name)"
            ),
            parameters,
        )


def _larger(floor: int, value: object) -> int:
    return max(floor, value) if isinstance(value, int) and not isinstance(value, bool) else floor


def _audit_ids(body: bytes | str) -> Iterable[tuple[str, int]]:
    # An entry that does not parse is left to `candor audit verify` to report.
    try:
        entry = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(entry, dict):
        return
    for field, kinds in (("objects", AUDIT_OBJECTS), ("details", AUDIT_DETAILS)):
        named = entry.get(field)
        if not isinstance(named, dict):
            continue
        for key, table in kinds.items():
            value = named.get(key)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, int) and not isinstance(item, bool):
                    yield table, item
