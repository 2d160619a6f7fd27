"""Another process holding the database's write lock past the wait is a 503, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from candor.server.app import create_app
from candor.server.security import LOCKOUT_FAILURES
from candor.store import Workspace
from candor.workflow import Workflow
from tests.agency import PASSWORD, Agency
from tests.server.support import CASE
from tests.store.test_write_lock import write_lock_held

pytestmark = pytest.mark.sqlite_only(reason="SQLite's write lock held by another process")


BUSY = "the workspace database stayed busy for 0.2 s: another Candor process is writing; try again"


def test_a_search_while_another_process_writes_too_long_answers_503(
    demo_home: tuple[Agency, dict[str, Path]],
) -> None:
    agency, photos = demo_home
    home = agency.workflow.workspace.home
    with Workflow(Workspace.open(home, busy_timeout_ms=200)) as workflow:
        client = TestClient(create_app(workflow))
        login = client.post("/api/login", json={"username": "ana", "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        probe = photos["collins-probe.jpg"]
        with write_lock_held(home / "candor.db"):
            answer = client.post(
                "/api/searches",
                headers=headers,
                data={**CASE, "case_number": "2026-BUSY-1"},
                files={"probe": (probe.name, probe.read_bytes(), "image/jpeg")},
            )
        assert answer.status_code == 503
        assert answer.json()["detail"] == BUSY
        assert answer.headers["Retry-After"] == "1"


def test_logins_refused_while_the_database_is_busy_lock_nobody_out(
    demo_home: tuple[Agency, dict[str, Path]],
) -> None:
    agency, _ = demo_home
    home = agency.workflow.workspace.home
    credentials = {"username": "eli", "password": PASSWORD}
    with Workflow(Workspace.open(home, busy_timeout_ms=200)) as workflow:
        client = TestClient(create_app(workflow))
        with write_lock_held(home / "candor.db"):
            for _ in range(LOCKOUT_FAILURES + 1):
                refused = client.post("/api/login", json=credentials)
                assert (refused.status_code, refused.json()["detail"]) == (503, BUSY)
        assert client.post("/api/login", json=credentials).status_code == 200
