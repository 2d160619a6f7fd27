"""Migration 0010: entries already in the log get the audit browser's columns from their body."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from candor.store import Base, Workspace
from candor.store.database import _alembic_config, current_revision, head_revision

BODIES = [
    {"action": "search.requested", "actor": "ana", "objects": {"search": 7, "case": "C-7"}},
    {"action": "policy.decided", "actor": None, "objects": {"search": 7}},
    {"action": "gallery.enrolled", "actor": "admin1", "objects": {"subject": 3}},
    {"action": "odd.entry", "actor": "x", "objects": {"search": 2**40, "case": 5}},
]


def test_entries_from_before_0010_are_found_by_action_actor_search_and_case(
    tmp_path: Path,
) -> None:
    workspace = Workspace.create(tmp_path / "ws")
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0009_jobs")
    with workspace.engine.begin() as connection:
        for seq, body in enumerate(BODIES, start=1):
            connection.execute(
                text(
                    "INSERT INTO audit_entries (seq, body, leaf_hash, created_at) "
                    "VALUES (:seq, :body, :leaf, :at)"
                ),
                {
                    "seq": seq,
                    "body": json.dumps({**body, "seq": seq}).encode(),
                    "leaf": "0" * 64,
                    "at": "2026-01-01 00:00:00.000000",
                },
            )
    workspace.close()

    reopened = Workspace.open(workspace.home, upgrade=True)
    try:
        assert current_revision(reopened.engine) == head_revision()
        with reopened.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            rows = connection.execute(
                text("SELECT action, actor, search_id, case_number FROM audit_entries ORDER BY seq")
            ).all()
    finally:
        reopened.close()
    assert [tuple(row) for row in rows] == [
        ("search.requested", "ana", 7, "C-7"),
        ("policy.decided", None, 7, None),
        ("gallery.enrolled", "admin1", None, None),
        # A search id beyond the column and a case that is not text are not copied.
        ("odd.entry", "x", None, None),
    ]
