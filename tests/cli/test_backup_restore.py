"""`candor backup DEST` and `candor restore BACKUP --home DIR` as an operator runs them:
an admin backs up (audited), the restore checks every hash before writing, rebuilds the
workspace on SQLite or into an empty PostgreSQL database, and `candor audit verify` and
`candor check` pass there; refusals are one line and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from candor.cli.app import app
from candor.store import Workspace
from candor.store.audit_log import entry_bodies
from candor.store.data_keys import KEK_FILE_VARIABLE
from candor.workflow.audit_trail import KEY_ENV
from tests.agency import PASSWORD, make_agency, new_user
from tests.postgres import ThrowawayCluster

runner = CliRunner()


def run(*args: str) -> tuple[int, dict[str, Any], str]:
    done = runner.invoke(app, [*args, "--json"])
    return done.exit_code, json.loads(done.stdout or "{}"), done.stderr


@pytest.fixture(autouse=True)
def _no_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEK_FILE_VARIABLE, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)


def _agency(folder: Path, database_url: str | None = None) -> Path:
    """An agency's workspace (no faces: users, a policy, the log) with a password file."""
    agency = make_agency(folder, database_url=database_url)
    agency.add_user(new_user("aud", "auditor"))
    agency.workflow.close()
    (folder / "password").write_text(PASSWORD)
    return folder / "ws"


def _login(home: Path, name: str, password: Path | None = None) -> None:
    password = password or home.parent / "password"
    code, _, err = run(
        "login", "--home", str(home), "--user", name, "--password-file", str(password)
    )
    assert code == 0, err


def _entries(home: Path) -> list[bytes]:
    with Workspace.open(home) as workspace, workspace.session() as session:
        return entry_bodies(session)


def _round_trip(tmp_path: Path, home: Path, *restore_options: str) -> None:
    _login(home, "admin1")
    code, made, err = run("backup", str(tmp_path / "backup"), "--home", str(home))
    assert code == 0, err
    assert made["files"] >= 4 and len(made["manifest_sha256"]) == 64
    entries = _entries(home)
    backed_up = json.loads(entries[made["audit_seq"] - 1])
    assert backed_up["action"] == "workspace.backed_up"
    assert backed_up["details"]["manifest_sha256"] == made["manifest_sha256"]

    restored = tmp_path / "restored"
    key = home / "keys" / "audit-signing.key"
    code, done, err = run(
        "restore", str(tmp_path / "backup"), "--home", str(restored), "--signing-key", str(key),
        "--no-later-log", *restore_options,
    )  # fmt: skip
    assert code == 0, err
    assert done["checked"] and done["check_ok"] and done["audit_ok"]
    # Without a later log: a warning naming the backup's date and the KEK rotation, and
    # the restore's own entry after the backup's log saying so.
    made_at = json.loads((tmp_path / "backup" / "manifest.json").read_text())["made_at"]
    (warning,) = [line for line in err.splitlines() if line.startswith("candor: warning:")]
    assert made_at in warning and "candor keys rotate --kek" in warning
    assert done["later_log"] is False and done["made_at"] == made_at
    *copied, last = _entries(restored)
    assert copied == entries[: made["log_size"]]
    assert json.loads(last)["action"] == "workspace.restored"
    assert json.loads(last)["details"]["later_log"] is False
    _login(restored, "aud", home.parent / "password")
    verified = runner.invoke(app, ["audit", "verify", "--home", str(restored)])
    assert verified.exit_code == 0, verified.output
    checked = runner.invoke(app, ["check", "--home", str(restored)])
    assert checked.exit_code == 0, checked.output


def test_backup_and_restore_on_sqlite(tmp_path: Path) -> None:
    _round_trip(tmp_path, _agency(tmp_path / "agency"))


def test_backup_and_restore_on_postgres(tmp_path: Path, postgres_cluster: ThrowawayCluster) -> None:
    # pg_dump and pg_restore come with Debian's postgresql package, as the cluster does.
    home = _agency(tmp_path / "agency", database_url=postgres_cluster.new_database())
    _round_trip(tmp_path, home, "--database", postgres_cluster.new_database())


def test_refusals_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    home = _agency(tmp_path / "agency")
    _login(home, "ana")
    code, refused, _ = run("backup", str(tmp_path / "backup"), "--home", str(home))
    assert code == 1 and "may not policy.manage" in refused["error"]
    assert not (tmp_path / "backup").exists()

    _login(home, "admin1")
    code, refused, err = run("backup", str(home / "images" / "b"), "--home", str(home))
    assert code == 1 and "inside the workspace" in refused["error"]
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (home / "images" / "b").exists()

    code, _, err = run("backup", str(tmp_path / "backup"), "--home", str(home))
    assert code == 0, err
    # Saying nothing of a later audit log is refused: it would bring back, unsaid, anyone
    # expunged after the backup.
    code, refused, err = run("restore", str(tmp_path / "backup"), "--home", str(tmp_path / "r"))
    assert code == 1 and "--expunged-since EXPORT" in refused["error"]
    assert "--no-later-log" in refused["error"] and "nothing was written" in refused["error"]
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    marker = tmp_path / "backup" / "candor-workspace.json"
    marker.write_text(marker.read_text().replace("evaluation", "operational"))
    code, refused, err = run(
        "restore", str(tmp_path / "backup"), "--home", str(tmp_path / "r"), "--no-later-log"
    )
    assert code == 1 and "candor-workspace.json is" in refused["error"]
    assert not (tmp_path / "r").exists()


def test_a_restore_without_the_keys_says_what_to_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _agency(tmp_path / "agency")
    _login(home, "admin1")
    code, _, err = run("backup", str(tmp_path / "backup"), "--home", str(home))
    assert code == 0, err
    monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "not-here.kek"))
    done = runner.invoke(
        app,
        [
            "restore",
            str(tmp_path / "backup"),
            "--home",
            str(tmp_path / "restored"),
            "--no-later-log",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "not in the restored audit log" in done.stderr
    assert "audit signing key" in done.stdout and "key-encryption key file" in done.stdout
    assert "candor check --fix" in done.stdout
    assert (tmp_path / "restored" / "candor-workspace.json").is_file()
    assert not (tmp_path / "restored" / "keys" / "audit-signing.key").exists()
