"""`candor init --database URL`: a workspace whose database is a PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from candor.cli.app import app

runner = CliRunner()


def run(home: Path, *args: str, **env: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args], env={"CANDOR_HOME": str(home), **env})
    return result.exit_code, result.stdout, result.stderr


def test_init_with_a_database_records_it_and_later_commands_use_it(
    tmp_path: Path, postgres_url: str
) -> None:
    home = tmp_path / "ws"
    code, out, err = run(home, "init", "--database", postgres_url, "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made["database_url"].startswith("postgresql+psycopg://candor@/")
    assert not (home / "candor.db").exists()
    # A command that opens the workspace reaches the same database through the marker.
    code, out, err = run(home, "subjects", "--json")
    assert code == 1
    assert "not a Candor workspace" not in err
    assert "log in" in err.lower() or "login" in err.lower(), err


def test_init_refuses_a_password_in_the_url(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    code, _, err = run(home, "init", "--database", "postgresql://candor:secret@db/candor")
    assert code == 1
    assert ".pgpass" in err and "PGPASSWORD" in err
    assert "secret" not in err
    assert not home.exists()


def test_init_takes_the_database_from_the_variable(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "ws"
    code, out, err = run(home, "init", "--json", CANDOR_DATABASE_URL=postgres_url)
    assert code == 0, err
    assert json.loads(out)["database_url"] is not None


def test_init_help_names_the_database_option() -> None:
    result = runner.invoke(app, ["init", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--database" in result.stdout
    assert "PostgreSQL" in result.stdout
