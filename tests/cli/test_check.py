"""`candor check` finds vault files that no record names, and removes them with --fix.

Issue 12, fault 8: a kill -9 during enrolment left image and crop files with no row,
and nothing ever found them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from candor.cli.app import app
from candor.store import Workspace

runner = CliRunner()
SHA = hashlib.sha256(b"a photo whose row never committed").hexdigest()


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args], env={"CANDOR_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def _plant_orphans(home: Path) -> list[Path]:
    """Files as an enrolment killed before its commit leaves them, with no record of them
    (a workspace made before Candor kept such records)."""
    planted = []
    for folder, data in (("images", b"photo"), ("crops", b"crop"), ("probes", b"probe")):
        path = home / folder / SHA[:2] / SHA[2:4] / SHA
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        planted.append(path)
    return planted


def test_check_reports_files_no_record_names_and_fix_erases_them(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert run(home, "init", "--purpose", "evaluation")[0] == 0
    planted = _plant_orphans(home)

    code, out, err = run(home, "check", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["found"]["orphan_images"] == [SHA]
    assert report["found"]["orphan_probes"] == [SHA]
    assert "candor check --fix" in err
    assert all(path.exists() for path in planted)  # only reported

    code, out, err = run(home, "check", "--fix", "--json")
    assert code == 0, err
    assert json.loads(out)["fixed"] is True
    assert not any(path.exists() for path in planted)
    for folder in ("images", "crops", "probes"):
        assert list((home / folder).iterdir()) == []

    code, out, _ = run(home, "check")
    assert code == 0
    assert "nothing is left over" in out


def test_check_fix_leaves_files_alone_while_another_process_has_the_workspace(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ws"
    run(home, "init")
    planted = _plant_orphans(home)
    with Workspace.open(home):
        code, out, err = run(home, "check", "--fix", "--json")
    assert code == 1
    assert json.loads(out)["fixed"] is False
    assert "another process has this workspace open" in err
    assert all(path.exists() for path in planted)
