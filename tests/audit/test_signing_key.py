"""Issue 12, fault 3: a missing signing key is an error, never silently replaced (for
rotation see test_key_rotation.py). Also, from fault 10, unusable export folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.audit import SigningKey
from candor.cli.app import app
from candor.workflow import WorkflowError
from candor.workflow.audit_ops import checkpoint_now, export_log, verify_log

from .conftest import Log

runner = CliRunner()


def test_a_deleted_key_stops_every_signing_action_and_is_not_replaced(
    log: Log, tmp_path: Path
) -> None:
    log.key.unlink()
    for attempt in (
        lambda: checkpoint_now(log.workflow, log["admin1"]),
        lambda: export_log(log.workflow, log["ada"], tmp_path / "export"),
        lambda: log.add_entries(6),  # an automatic checkpoint falls due
    ):
        with pytest.raises(WorkflowError, match=f"signing key {log.key} does not exist"):
            attempt()
        assert not log.key.exists()
    # Reading the log needs no private key.
    assert verify_log(log.workflow, log["ada"]).ok


def test_a_mistyped_key_path_names_the_path_and_makes_nothing(
    log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "keys" / "audit-signing.kye"
    monkeypatch.setenv("CANDOR_AUDIT_KEY", str(typo))
    with pytest.raises(WorkflowError, match=f"{typo} does not exist.*CANDOR_AUDIT_KEY"):
        checkpoint_now(log.workflow, log["admin1"])
    assert not typo.parent.exists()


def test_another_logs_key_is_refused(log: Log, tmp_path: Path) -> None:
    log.key.unlink()
    SigningKey.generate(log.key, json.loads(log.witness.read_text())["keys"][0].split("+")[0])
    with pytest.raises(WorkflowError, match="is not the key this log signs with"):
        checkpoint_now(log.workflow, log["admin1"])


@pytest.mark.parametrize("kind", ["file", "full folder", "parent is a file", "read-only"])
def test_an_unusable_export_folder_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    expected = {
        "file": "exists and is not a folder",
        "full folder": "is not empty",
        "parent is a file": "is not a folder",
        "read-only": "not writable",
    }[kind]
    if kind == "file":
        target.write_text("root:x:0:0::/root:/bin/sh\n")
    elif kind == "full folder":
        target.mkdir()
        (target / "x").write_text("x")
    elif kind == "parent is a file":
        (tmp_path / "plain").write_text("x")
        target = tmp_path / "plain" / "export"
    else:
        import os

        if os.geteuid() == 0:
            pytest.skip("root may write anywhere")
        (tmp_path / "locked").mkdir(mode=0o500)
        target = tmp_path / "locked" / "export"
    done = runner.invoke(app, ["audit", "export", str(target), "--home", str(tmp_path)])
    assert done.exit_code == 1
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert expected in done.stderr and "Traceback" not in done.output
    assert len(done.stderr.strip().splitlines()) == 1


def test_exporting_over_etc_passwd_is_a_clear_error(tmp_path: Path) -> None:
    done = runner.invoke(app, ["audit", "export", "/etc/passwd", "--home", str(tmp_path)])
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit)
    assert "/etc/passwd exists and is not a folder" in done.stderr
