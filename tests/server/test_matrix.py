"""Authorisation as a matrix: every route x every role, generated from the app's routes.

A route added without a rule in candor.server.rules fails here, and so does a rule left
behind for a route that no longer exists. For each role the route refuses, the server's
route table must refuse (403, X-Candor-Refused-By: route-rule) before the route runs;
for each role it serves, the table must let the call through to the workflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from candor.server.app import create_app
from candor.server.auth import SESSION_COOKIE
from candor.server.errors import REFUSED_BY_HEADER
from candor.server.rules import ROLES, RULES
from candor.server.security import token_digest
from tests.server.support import DemoServer

pytestmark = pytest.mark.xdist_group("server")

PERSON = {
    "analyst": "ana",
    "examiner": "eve",
    "supervisor": "sam",
    "auditor": "ada",
    "admin": "admin1",
}
# Path values that name nothing: a call the table lets through reaches the workflow,
# which refuses it, so the matrix changes nothing in the workspace.
PATH_VALUES = {
    "search_id": "999999",
    "rank": "1",
    "change_id": "999999",
    "seq": "999999",
    "username": "nobody-here",
    "role": "analyst",
    "subject_ref": "NO-SUCH-SUBJECT",
    "year": "2026",
    "job_id": "999999",
    "name": "no-such-model",
}
# These end the session they are called with: each gets a fresh login.
ENDS_SESSION = {("POST", "/api/logout"), ("POST", "/logout")}


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, through included routers (FastAPI keeps those as their own nodes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method, route.path_format) for route in api_routes(app.routes) for method in route.methods
    }


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def test_every_route_has_a_rule_and_every_rule_a_route(demo: DemoServer) -> None:
    routes = route_table(demo.app)
    assert routes - set(RULES) == set(), "routes without a rule in candor.server.rules"
    assert set(RULES) - routes == set(), "rules for routes that do not exist"
    documented = {
        (method.upper(), path)
        for path, operations in demo.client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    api = {(method, path) for method, path in routes if path.startswith("/api/")}
    assert documented == api, "the OpenAPI description must cover every API route, and only those"


def test_a_route_without_a_rule_is_refused_to_everybody(demo: DemoServer) -> None:
    app = create_app(demo.agency.workflow)

    @app.get("/api/unruled")
    def unruled() -> dict[str, str]:
        return {"leak": "yes"}

    from fastapi.testclient import TestClient

    assert ("GET", "/api/unruled") in route_table(app)
    answer = TestClient(app).get("/api/unruled")
    assert answer.status_code == 403
    assert answer.headers[REFUSED_BY_HEADER] == "no-rule"
    assert "unruled" not in {path for _, path in RULES}


def call(demo: DemoServer, method: str, path: str, role: str | None) -> tuple[int, str | None]:
    client = demo.client
    client.cookies.clear()
    headers: dict[str, str] = {}
    data: dict[str, str] = {}
    if role is not None:
        name = PERSON[role]
        if (method, path) in ENDS_SESSION:
            demo.tokens.pop(name, None)
        token = demo.token(name)
        if path.startswith("/api/"):
            headers["Authorization"] = f"Bearer {token}"
        else:
            client.cookies.set(SESSION_COOKIE, token)
            data["csrf"] = demo.app.state.candor.guard.csrf_for("session:" + token_digest(token))
    if method == "GET":
        answer = client.get(concrete(path), headers=headers, follow_redirects=False)
    elif method == "DELETE":
        answer = client.delete(concrete(path), headers=headers)
    else:
        answer = client.request(
            method, concrete(path), headers=headers, data=data or None, follow_redirects=False
        )
    client.cookies.clear()
    if (method, path) in ENDS_SESSION and role is not None:
        demo.tokens.pop(PERSON[role], None)
    return answer.status_code, answer.headers.get(REFUSED_BY_HEADER)


MATRIX = [
    (method, path, role)
    for (method, path), rule in sorted(RULES.items())
    if not rule.public
    for role in ROLES
]


@pytest.mark.parametrize(("method", "path", "role"), MATRIX, ids=lambda v: str(v))
def test_role_by_route(shared_demo: DemoServer, method: str, path: str, role: str) -> None:
    status, refused_by = call(shared_demo, method, path, role)
    if role in RULES[(method, path)].roles:
        assert refused_by is None, f"{role} was refused {method} {path} ({status})"
        assert status not in (401, 500), f"{role} {method} {path} -> {status}"
    else:
        assert (status, refused_by) == (403, "route-rule"), f"{role} {method} {path} -> {status}"


@pytest.mark.parametrize(
    ("method", "path"),
    sorted(key for key, rule in RULES.items() if not rule.public),
    ids=lambda v: str(v),
)
def test_nobody_logged_in_is_sent_to_log_in(
    shared_demo: DemoServer, method: str, path: str
) -> None:
    status, _ = call(shared_demo, method, path, None)
    assert status == (401 if path.startswith("/api/") else 303)
