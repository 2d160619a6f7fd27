"""Generated requests against the OpenAPI description: no server error, whoever calls,
and (logged in, through the declared bearer scheme) no answer that breaks the schema it
declares: status, content type and body.

Bounded for speed: a few examples per operation, once with no credentials and once as an
admin, on a workspace of its own (two admins and a policy), so that whatever the
generated calls request changes nothing another test relies on. Stateless: each call
stands alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema, Case
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from candor.server.app import create_app
from candor.workflow import Workflow
from candor.workflow.accounts import bootstrap, login
from candor.workflow.workspaces import create_workspace
from tests.agency import PASSWORD, Agency, new_user, policy_file

pytestmark = pytest.mark.xdist_group("server")
EXAMPLES = 5


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaseSchema, str]]:
    home = tmp_path_factory.mktemp("fuzz")
    workflow = Workflow(create_workspace(home / "ws", purpose="demo"))
    bootstrap(workflow, new_user("admin1", "admin"), new_user("admin2", "admin"))
    agency = Agency(workflow)
    agency.log_in("admin1")
    agency.log_in("admin2")
    agency.set_policy(policy_file(home, "two-reviewers", source_type="demo"))
    app = create_app(workflow)
    # A login made outside the server is valid there too: sessions live in the database.
    result = login(workflow, "admin1", PASSWORD)
    yield from_asgi("/openapi.json", app), result.token
    workflow.close()


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


# What every answer is checked for: no 5xx; a status the operation declares; and a
# content type and body that its declared response (a model, or a Problem) allows.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# These end or change the admin's own session for every later example.
SKIPPED_LOGGED_IN = {"/api/logout", "/api/password"}


def exercise(schema: BaseSchema, headers: dict[str, str] | None) -> None:
    """Every operation, EXAMPLES generated calls each; fails on the first answer that is a
    server error or does not conform to the description.

    Driven by hand rather than through schemathesis' pytest plugin, which this pytest
    version does not load.
    """
    for result in schema.get_all_operations():
        operation = result.ok()
        if headers and operation.path in SKIPPED_LOGGED_IN:
            continue

        @SETTINGS
        @given(case=operation.as_strategy())
        def conforms(case: Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        conforms()


def test_no_server_error_without_credentials(fuzzed: tuple[BaseSchema, str]) -> None:
    exercise(fuzzed[0], None)


def test_no_server_error_as_an_admin(fuzzed: tuple[BaseSchema, str]) -> None:
    schema, token = fuzzed
    exercise(schema, {"Authorization": f"Bearer {token}"})


def test_the_description_is_there(tmp_path: Path) -> None:
    workflow = Workflow(create_workspace(tmp_path / "ws", purpose="demo"))
    described = create_app(workflow).openapi()
    paths = described["paths"]
    assert "/api/searches" in paths and "/api/audit/export" in paths
    # The bearer scheme the logged-in run above uses is the one the description declares.
    assert described["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/api/me"]["get"]["security"] == [{"bearer": []}]
    workflow.close()
