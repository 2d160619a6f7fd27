"""The `candor` command line as a user meets it: exit codes, one-line errors, --json."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from candor.cli.app import app

runner = CliRunner()

PROVENANCE = [
    "--source",
    "evaluation",
    "--source-ref",
    "lfw-dev (tests)",
    "--legal-basis",
    "research use under the LFW terms",
    "--collected",
    "2007-01-01",
    "--retain-until",
    "2099-01-01",
]


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args], env={"CANDOR_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def test_init_makes_a_workspace_and_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    code, out, _ = run(home, "init", "--purpose", "evaluation", "--json")
    assert code == 0
    assert json.loads(out)["purpose"] == "evaluation"

    code, out, err = run(home, "init", "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False
    assert "not empty" in err


def test_commands_refuse_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    code, out, err = run(tmp_path / "plain", "subjects")
    assert code == 1
    assert "not a Candor workspace" in err
    assert "candor init" in err
    assert out == ""
    assert list((tmp_path / "plain").iterdir()) == []


def test_bad_date_and_no_login_are_one_line_errors(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    run(home, "init", "--purpose", "evaluation")
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"not a photo")
    code, _, err = run(
        home,
        "enrol",
        str(photo),
        "--subject",
        "S1",
        *PROVENANCE[:6],
        "--collected",
        "yesterday",
        "--retain-until",
        "2099-01-01",
    )
    assert code == 1
    assert "--collected 'yesterday' is not a date" in err
    code, out, err = run(home, "enrol", str(photo), "--subject", "S1", *PROVENANCE, "--json")
    assert code == 1
    assert "candor login" in json.loads(out)["error"]


def test_expunge_needs_confirmation(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    run(home, "init", "--purpose", "evaluation")
    code, _, err = run(home, "expunge", "S1")
    assert code == 1
    assert "--yes" in err
