"""What a server process does as it starts: request threads no more than its database pool
serves, the gallery index caught up, the CSRF key read; and a pool with no free connection
answers 503, never 500."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, Router

from candor.server.app import create_app
from candor.store import Workspace, database
from candor.workflow import Workflow
from candor.workflow import server_state as stored
from tests.agency import Agency

# Requests made at once: more than the small pool below can serve side by side.
REQUESTS = 6


def _probe_routes(workflow: Workflow) -> Router:
    """Routes outside the app's own (no login needed): one holds two pooled connections
    as a workflow call at most does, the other meets a pool with none free."""
    engine = workflow.workspace.engine

    def hold(_request: Request) -> PlainTextResponse:
        with engine.connect():
            # Long enough that the other requests take their first connection meanwhile
            # when nothing keeps them waiting for a thread.
            time.sleep(0.3)
            with engine.connect():
                return PlainTextResponse("held")

    def exhausted(_request: Request) -> PlainTextResponse:
        raise PoolTimeoutError("QueuePool limit of size 1 overflow 2 reached")

    return Router(routes=[Route("/hold", hold), Route("/exhausted", exhausted)])


def test_more_requests_than_the_pool_serves_wait_for_a_thread_not_a_connection(
    demo_home: tuple[Agency, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    agency, _ = demo_home
    # A pool of 3 connections that gives up after 1 s (the default is 15 and 30 s).
    monkeypatch.setattr(database, "POOL_SIZE", 1)
    monkeypatch.setattr(database, "POOL_MAX_OVERFLOW", 2)
    monkeypatch.setattr(database, "POOL_TIMEOUT_SECONDS", 1.0)
    with Workflow(Workspace.open(agency.workflow.workspace.home)) as workflow:
        assert database.pool_connections(workflow.workspace.engine) == 3
        app = create_app(workflow)
        app.mount("/api/test-pool", _probe_routes(workflow))
        with (
            TestClient(app, raise_server_exceptions=False) as client,
            ThreadPoolExecutor(REQUESTS) as pool,
        ):
            answers = list(pool.map(lambda _: client.get("/api/test-pool/hold"), range(REQUESTS)))
    assert [answer.status_code for answer in answers] == [200] * REQUESTS


def test_a_pool_with_no_free_connection_is_a_503(
    demo_home: tuple[Agency, dict[str, Path]],
) -> None:
    agency, _ = demo_home
    app = create_app(agency.workflow)
    app.mount("/api/test-pool", _probe_routes(agency.workflow))
    answer = TestClient(app, raise_server_exceptions=False).get("/api/test-pool/exhausted")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["detail"] == (
        "the workspace database had no free connection for 30 s (the server is busy); try again"
    )


def test_the_index_is_caught_up_as_the_server_starts(
    demo_home: tuple[Agency, dict[str, Path]],
) -> None:
    agency, _ = demo_home
    # A node that was down while the gallery was enrolled: a workflow of its own.
    with Workflow(Workspace.open(agency.workflow.workspace.home)) as node:
        app = create_app(node)
        assert not node.index_loaded
        with TestClient(app):
            assert node.index_loaded
            caught_up = sorted(node.index.ids.tolist())
    assert caught_up == sorted(agency.workflow.index.ids.tolist())
    assert caught_up  # both portraits


def test_the_csrf_key_is_read_when_the_app_is_made(
    demo_home: tuple[Agency, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    agency, _ = demo_home
    reads: list[object] = []
    read_key = stored.csrf_key

    def counted(workflow: Workflow) -> bytes:
        reads.append(workflow)
        return read_key(workflow)

    monkeypatch.setattr(stored, "csrf_key", counted)
    state = create_app(agency.workflow, one_lock=True).state.candor
    assert len(reads) == 1
    # Forms then never read it again (so never on the event loop under the one lock).
    assert state.guard.csrf_ok("a session", state.guard.csrf_for("a session"))
    assert len(reads) == 1
