"""Two apps over two workflows on one workspace are two nodes (or two workers) of one
service: what one node remembers between requests, the other sees. On SQLite and on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from candor.server.app import create_app
from candor.server.auth import PRE_LOGIN_COOKIE, SESSION_COOKIE
from candor.server.errors import RefusedError
from candor.server.state import ServerState
from candor.store import Workspace
from candor.workflow import Workflow
from candor.workflow.accounts import NotAuthenticatedError, session_view
from tests.agency import PASSWORD, Agency, make_agency

pytestmark = pytest.mark.xdist_group("server")


@dataclass
class Node:
    workflow: Workflow
    app: FastAPI
    client: TestClient

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.candor
        return state


def _node(workflow: Workflow, **options: object) -> Node:
    app = create_app(workflow, **options)  # type: ignore[arg-type]
    return Node(workflow, app, TestClient(app))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Agency, Workflow]]:
    """One workspace and a second workflow opened on it (the other node's)."""
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_cluster").new_database()
    agency = make_agency(tmp_path_factory.mktemp(f"nodes-{request.param}"), database_url=url)
    other = Workflow(Workspace.open(agency.workflow.workspace.home))
    yield agency, other
    other.close()
    agency.workflow.close()


@pytest.fixture
def nodes(service: tuple[Agency, Workflow]) -> tuple[Node, Node]:
    agency, other = service
    return _node(agency.workflow), _node(other)


def _login(node: Node, username: str) -> str:
    answer = node.client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def _me(node: Node, token: str) -> int:
    return node.client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_failures_on_one_node_count_towards_the_lock_out_on_the_other(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    wrong = {"username": "eli", "password": "x" * 12}
    for node in (a, b, a, b, a):
        assert node.client.post("/api/login", json=wrong).status_code == 401
    right = b.client.post("/api/login", json={"username": "eli", "password": PASSWORD})
    assert right.status_code == 429
    assert 0 < int(right.headers["Retry-After"]) <= 15 * 60
    # Another username is not locked out by eli's failures.
    assert a.client.post("/api/login", json={"username": "eve", "password": PASSWORD}).is_success


def test_a_success_clears_the_failures_on_every_node(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    for _ in range(4):
        a.state.guard.login_failed("sam")
    _login(b, "sam")
    for _ in range(4):
        a.state.guard.login_failed("Sam")  # the same username in capitals
    assert (a.state.guard.locked_out("sam"), b.state.guard.locked_out("sam")) == (0, 0)
    b.state.guard.login_failed("sam")
    assert a.state.guard.locked_out("sam") > 0
    b.state.guard.login_succeeded("sam")  # later tests log in as sam


def test_a_login_on_one_node_is_valid_on_the_other_and_a_logout_ends_it_everywhere(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    token = _login(a, "ana")
    assert (_me(a, token), _me(b, token)) == (200, 200)
    assert b.client.post("/api/logout", headers={"Authorization": f"Bearer {token}"}).is_success
    assert (_me(a, token), _me(b, token)) == (401, 401)


def test_a_form_shown_by_one_node_is_accepted_by_the_other(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    page = a.client.get("/login")
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    csrf = page.text[start : page.text.index('"', start)]
    b.client.cookies.set(PRE_LOGIN_COOKIE, page.cookies[PRE_LOGIN_COOKIE])
    answer = b.client.post(
        "/login",
        data={"username": "ana", "password": PASSWORD, "csrf": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    # The page session made on B is a session on A too.
    a.client.cookies.set(SESSION_COOKIE, answer.cookies[SESSION_COOKIE])
    assert a.client.get("/home", follow_redirects=False).status_code == 200
    # A forged token is refused by both.
    for node in (a, b):
        node.client.cookies.set(PRE_LOGIN_COOKIE, "another-nonce")
        forged = node.client.post(
            "/login", data={"username": "ana", "password": PASSWORD, "csrf": csrf}
        )
        assert forged.status_code == 403


def test_a_probe_staged_through_one_node_is_taken_once_through_the_other(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    ana, sam = _login(a, "ana"), _login(b, "sam")
    key = a.state.stage(ana, "probe.jpg", b"photo bytes")
    with pytest.raises(RefusedError):
        b.state.take_staged(sam, key)  # another session's photo
    held = b.state.take_staged(ana, key)
    assert (held.filename, held.data) == ("probe.jpg", b"photo bytes")
    with pytest.raises(RefusedError):
        a.state.take_staged(ana, key)  # taken once
    dropped = a.state.stage(ana, "other.jpg", b"more bytes")
    b.state.drop_staged_of(ana)  # a logout on B drops what A staged
    with pytest.raises(RefusedError):
        a.state.take_staged(ana, dropped)


def test_an_idle_session_ends_on_both_nodes(
    service: tuple[Agency, Workflow], monkeypatch: pytest.MonkeyPatch
) -> None:
    agency, other = service
    now = [datetime.now(UTC)]
    for workflow in (agency.workflow, other):
        monkeypatch.setattr(workflow, "clock", lambda: now[0])
    a, b = _node(agency.workflow, idle_seconds=120), _node(other, idle_seconds=120)
    token = _login(a, "eve")
    for _ in range(3):  # used through B only: not idle on A either
        now[0] += timedelta(seconds=100)
        assert _me(b, token) == 200
    assert _me(a, token) == 200
    key = a.state.stage(token, "probe.jpg", b"photo bytes")
    now[0] += timedelta(seconds=121)
    assert _me(b, token) == 401
    assert _me(a, token) == 401
    # Ended in the workflow (a logout, audited), and its staged photo is gone.
    with pytest.raises(NotAuthenticatedError, match="ended"):
        session_view(agency.workflow, token)
    with pytest.raises(RefusedError):
        a.state.take_staged(token, key)
