"""Another process holding the database's write lock past the wait: one line, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.cli.app import app
from candor.store import Workspace
from tests.agency import PASSWORD, make_agency
from tests.store.test_write_lock import write_lock_held

BUSY = "the workspace database stayed busy for 0.2 s: another Candor process is writing; try again"


def test_a_command_that_cannot_get_the_write_lock_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agency = make_agency(tmp_path)
    home = agency.workflow.workspace.home
    agency.workflow.close()
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    real_open = Workspace.open

    def impatient_open(folder: Path, **options: object) -> Workspace:
        return real_open(folder, **{**options, "busy_timeout_ms": 200})  # type: ignore[arg-type]

    monkeypatch.setattr(Workspace, "open", impatient_open)
    with write_lock_held(home / "candor.db"):
        result = CliRunner().invoke(
            app,
            ["login", "--user", "ana", "--password-file", str(password), "--json"],
            env={"CANDOR_HOME": str(home)},
        )
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"ok": False, "error": BUSY}
    assert result.stderr == f"candor: error: {BUSY}\n"
