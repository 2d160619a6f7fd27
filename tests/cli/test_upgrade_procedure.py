"""The upgrade procedure of docs/deploy.md ("Upgrading"), walked on the release fixture.

tests/fixtures/workspace-95e4ed1.tar.gz is a workspace an earlier release left (schema
0005, photos in the clear, no KEK). The steps, as an operator takes them: back up (that
release has no `candor backup`: by hand, as the upgrade steps say, the key folder,
SQLite's backup API, the vault and the marker), stop (nothing runs here), install (this
checkout is the new release), `candor upgrade`, `candor audit verify`, `candor check`,
start `candor serve`; then a user logs in over the API and the release's searches name
the same people. And when a step fails: the backup restores the release's workspace as
it was, and the upgrade can be run again on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.cli.app import app
from candor.store.database import head_revision

pytestmark = pytest.mark.sqlite_only(reason="the release fixture is a SQLite workspace")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workspace-95e4ed1.tar.gz"
RELEASE_REVISION = "0005_repeat_search_index"
VAULT = ("images", "crops", "probes", "pending")
runner = CliRunner()


def candor(environment: dict[str, str], *args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"], env=environment)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict) and answer["ok"] is True, answer
    return answer


def password(root: Path, name: str) -> str:
    return (root / "secrets" / f"{name}.password").read_text().rstrip("\n")


def login(environment: dict[str, str], root: Path, name: str) -> None:
    secret = root / "secrets" / f"{name}.password"
    candor(environment, "login", "--user", name, "--password-file", str(secret))


def named_in_searches(database: Path) -> dict[int, list[tuple[int, str | None]]]:
    """Each search's candidates as (rank, subject reference; None once expunged), read
    from the database file itself."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT c.search_id, c.rank, s.external_ref FROM candidates c "
            "LEFT JOIN subjects s ON s.id = c.subject_id ORDER BY c.search_id, c.rank"
        ).fetchall()
    finally:
        connection.close()
    found: dict[int, list[tuple[int, str | None]]] = {}
    for search_id, rank, reference in rows:
        found.setdefault(search_id, []).append((rank, reference))
    return found


def revision(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        (found,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        connection.close()
    return str(found)


def back_up(home: Path, backup: Path) -> None:
    """By hand, as docs/deploy.md ("Upgrading", step 1) says for a release without
    `candor backup`: the key folder, the database (SQLite's backup API, as `sqlite3
    candor.db ".backup ..."`), the vault and the marker."""
    backup.mkdir(mode=0o700)
    shutil.copytree(home / "keys", backup / "keys")
    source, target = sqlite3.connect(home / "candor.db"), sqlite3.connect(backup / "candor.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    for folder in VAULT:
        if (home / folder).is_dir():
            shutil.copytree(home / folder, backup / folder)
    shutil.copy2(home / "candor-workspace.json", backup / "candor-workspace.json")


def restore(backup: Path, home: Path) -> None:
    """The restore by hand of "Backups and restore": everything back, no index (rebuilt)."""
    shutil.copytree(backup, home)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def call(port: int, path: str, body: dict[str, str] | None = None, token: str = "") -> object:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def wait_until_serving(port: int, server: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 180  # a loaded machine; not a timing assertion
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.5)
    return False


def test_the_documented_upgrade_keeps_every_record(tmp_path: Path) -> None:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    home = tmp_path / "workspace"
    kek = tmp_path / "etc" / "candor" / "kek"  # outside the workspace, as on a server
    environment = {"CANDOR_HOME": str(home), "CANDOR_KEK_FILE": str(kek)}
    assert revision(home / "candor.db") == RELEASE_REVISION
    named_before = named_in_searches(home / "candor.db")
    assert named_before[2] == [(1, "DEMO-0001"), (2, None)]  # the second person was expunged

    # 1. Back up.  2. Stop the service (none runs).  3. Install the new release (this one).
    backup = tmp_path / "backup"
    back_up(home, backup)

    # 4. Upgrade: the schema, then the photos sealed under a KEK made at CANDOR_KEK_FILE.
    upgraded = candor(environment, "upgrade")
    assert revision(home / "candor.db") == head_revision()
    assert upgraded["key_encryption_key"] == str(kek) and kek.is_file()

    # 5. Verify: the log is whole, and vault, keys, index and log agree.
    login(environment, tmp_path, "ada")
    assert candor(environment, "audit", "verify")["ok"] is True
    checked = candor(environment, "check")
    assert checked["found"] and checked["fixed"] is False

    # 6. Start: the server answers, a user logs in and sees the release's records.
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "candor", "serve", "--port", str(port)],
            env={**os.environ, **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped with its job runner
        )
    try:
        assert wait_until_serving(port, server), log.read_text()
        session = call(
            port, "/api/login", {"username": "eve", "password": password(tmp_path, "eve")}
        )
        assert isinstance(session, dict)
        for search_id in (2, 3):  # the release's completed searches
            listing = call(port, f"/api/requests/{search_id}/candidates", token=session["token"])
            assert isinstance(listing, dict)
            named = [(row["rank"], row["subject_ref"]) for row in listing["candidates"]]
            assert named == named_before[search_id], search_id
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode is not None

    # When a step fails: the backup is the release's workspace as it was (its schema, its
    # records), and the upgrade runs on the restored copy as it did here.
    restored = tmp_path / "restored"
    restore(backup, restored)
    assert revision(restored / "candor.db") == RELEASE_REVISION
    assert named_in_searches(restored / "candor.db") == named_before
    again = {"CANDOR_HOME": str(restored), "CANDOR_KEK_FILE": str(tmp_path / "kek-restored")}
    assert candor(again, "upgrade")["sealed"] == upgraded["sealed"]
    login(again, tmp_path, "ada")
    assert candor(again, "audit", "verify")["ok"] is True
