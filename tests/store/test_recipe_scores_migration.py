"""Migration 0004: calibrations say which score they tabulate; candidates keep both scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from candor.store import Base, Workspace
from candor.store.database import _alembic_config, current_revision, head_revision


@pytest.mark.sqlite_only(reason="SQL of SQLite (integer booleans, PRAGMA table_info)")
def test_calibrations_from_before_recipes_become_cosine_calibrations(tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path / "ws")
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0003_report_cards")
    with workspace.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO calibrations (model_key, dataset, dataset_sha256, impostor_pairs, "
                "points, templates, created_at, active) VALUES ('m/1/x', 'lfw', :digest, 10, "
                "'[[0.1, 0.9]]', 5, '2026-01-01 00:00:00.000000', 1)"
            ),
            {"digest": "a" * 64},
        )
    workspace.close()

    reopened = Workspace.open(workspace.home, upgrade=True)
    try:
        assert current_revision(reopened.engine) == head_revision()
        with reopened.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            row = connection.execute(text("SELECT score, active FROM calibrations")).one()
            assert tuple(row) == ("cosine", 1)
            columns = connection.execute(text("PRAGMA table_info(candidates)")).all()
            assert "normalised_score" in {column[1] for column in columns}
    finally:
        reopened.close()
