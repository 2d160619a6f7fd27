"""Revision 0005: the index the repeat-search check reads search requests through."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from candor.store import Base, Workspace
from candor.store.database import _alembic_config, current_revision, head_revision

INDEX = "ix_search_requests_kind_created_at"


def _indexes(workspace: Workspace) -> dict[str, list[str | None]]:
    return {
        index["name"]: index["column_names"]
        for index in inspect(workspace.engine).get_indexes("search_requests")
        if index["name"] is not None
    }


def test_upgrade_from_0004_adds_the_index_and_matches_the_models(tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path / "ws")
    assert _indexes(workspace)[INDEX] == ["kind", "created_at"]
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0004_recipe_scores")
    assert current_revision(workspace.engine) == "0004_recipe_scores"
    assert INDEX not in _indexes(workspace)
    workspace.close()

    reopened = Workspace.open(workspace.home, upgrade=True)
    try:
        assert current_revision(reopened.engine) == head_revision()
        assert _indexes(reopened)[INDEX] == ["kind", "created_at"]
        with reopened.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        reopened.close()


@pytest.mark.sqlite_only(reason="SQLite's EXPLAIN QUERY PLAN")
def test_the_repeat_check_query_uses_the_index(tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path / "ws")
    try:
        with workspace.engine.connect() as connection:
            plan = connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM search_requests "
                    "WHERE kind = 'search' AND created_at >= '2026-01-01' "
                    "AND status IN ('approved', 'completed') ORDER BY id DESC"
                )
            ).all()
        assert any(INDEX in str(row) for row in plan), plan
    finally:
        workspace.close()
