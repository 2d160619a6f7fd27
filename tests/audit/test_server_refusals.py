"""The server's audit routes and pages when the log will not sign: a 4xx with the reason,
never a 500 (issue 12, faults 2 and 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from candor.server.app import create_app
from candor.server.auth import SESSION_COOKIE
from candor.server.security import token_digest
from tests.agency import PASSWORD

from .conftest import Log
from .tamper import delete_checkpoints, rewrite_and_relink


@pytest.fixture
def client(log: Log) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    """A client, bearer headers for the auditor, and the auditor's page CSRF token."""
    app = create_app(log.workflow)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/api/login", json={"username": "ada", "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        token = answer.json()["token"]
        client.cookies.set(SESSION_COOKIE, token)
        csrf = app.state.candor.guard.csrf_for("session:" + token_digest(token))
        yield client, {"Authorization": f"Bearer {token}"}, csrf


def _answers(client: TestClient, auth: dict[str, str], csrf: str) -> dict[str, tuple[int, str]]:
    found = {}
    for name, answer in {
        "api verify": client.get("/api/audit/verification", headers=auth),
        "api checkpoint": client.post("/api/audit/checkpoints", headers=auth),
        "api export": client.post("/api/audit/export", headers=auth),
        "page": client.get("/audit"),
        "page checkpoint": client.post("/audit/checkpoint", data={"csrf": csrf}),
        "page export": client.post("/audit/export", data={"csrf": csrf, "format": "zip"}),
    }.items():
        found[name] = (answer.status_code, answer.text)
    return found


def test_a_missing_key_is_a_4xx_that_names_it(
    log: Log, client: tuple[TestClient, dict[str, str], str]
) -> None:
    http, auth, csrf = client
    log.key.unlink()
    answers = _answers(http, auth, csrf)
    # Reading needs no private key; signing does.
    assert answers["api verify"][0] == 200
    for name in ("api checkpoint", "api export", "page checkpoint", "page export"):
        status, text = answers[name]
        assert 400 <= status < 500, (name, status, text)
        # (The server names files, not the folders they are in.)
        assert f"{log.key.name} does not exist" in text, name


def test_a_missing_witness_is_a_4xx(
    log: Log, client: tuple[TestClient, dict[str, str], str]
) -> None:
    http, auth, csrf = client
    log.witness.unlink()
    for name, (status, text) in _answers(http, auth, csrf).items():
        assert 400 <= status < 500, (name, status, text)
        assert "witness" in text and "is missing" in text, name


def test_a_forged_log_fails_verification_and_is_neither_signed_nor_exported(
    log: Log, client: tuple[TestClient, dict[str, str], str]
) -> None:
    http, auth, csrf = client
    log.workflow.workspace.close()
    rewrite_and_relink(log.home, 3)
    delete_checkpoints(log.home)
    answers = _answers(http, auth, csrf)
    assert answers["api verify"][0] == 200 and '"ok":false' in answers["api verify"][1]
    assert answers["page"][0] == 200
    for name in ("api checkpoint", "api export", "page checkpoint", "page export"):
        status, text = answers[name]
        assert 400 <= status < 500, (name, status, text)
        assert "does not verify" in text, name
