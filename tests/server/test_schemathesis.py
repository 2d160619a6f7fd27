"""Generated requests against the OpenAPI description: no server error, whoever calls.

Bounded for speed: a few examples per operation, once with no credentials and once as an
admin, on a workspace of its own (two admins and a policy), so that whatever the
generated calls request changes nothing another test relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema, Case
from schemathesis.openapi import from_asgi

from candor.server.app import create_app
from candor.workflow import Workflow
from candor.workflow.accounts import bootstrap, login
from candor.workflow.workspaces import create_workspace
from tests.agency import PASSWORD, Agency, new_user, policy_file

pytestmark = pytest.mark.xdist_group("server")
EXAMPLES = 8


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


def exercise(schema: BaseSchema, headers: dict[str, str] | None) -> None:
    """Every operation, EXAMPLES generated calls each; fails on the first server error.

    Driven by hand rather than through schemathesis' pytest plugin, which this pytest
    version does not load.
    """
    for result in schema.get_all_operations():
        operation = result.ok()
        if headers and operation.path == "/api/logout":
            continue  # would end the admin's session for every later example

        @SETTINGS
        @given(case=operation.as_strategy())
        def no_server_error(case: Case) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            )

        no_server_error()


def test_no_server_error_without_credentials(fuzzed: tuple[BaseSchema, str]) -> None:
    exercise(fuzzed[0], None)


def test_no_server_error_as_an_admin(fuzzed: tuple[BaseSchema, str]) -> None:
    schema, token = fuzzed
    exercise(schema, {"Authorization": f"Bearer {token}"})


def test_the_description_is_there(tmp_path: Path) -> None:
    workflow = Workflow(create_workspace(tmp_path / "ws", purpose="demo"))
    paths = create_app(workflow).openapi()["paths"]
    assert "/api/searches" in paths and "/api/audit/export" in paths
    workflow.close()
