"""`candor audit list`: the log at the terminal, filtered and paged, newest first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.workflow.accounts import login
from candor.workflow.audit_trail import record
from candor.workflow.context import system_clock
from tests.agency import PASSWORD, Agency, make_agency, new_user

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(Path(tmp_path_factory.mktemp("audit-list")))
    made.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    workflow = made.workflow
    planted: list[tuple[timedelta, str, str, dict[str, Any]]] = [
        (timedelta(0), "ana", "search.requested", {"search": 7, "case": "C-7"}),
        (timedelta(hours=2), "eve", "candidates.viewed", {"search": 7}),
        (timedelta(days=1), "ana", "search.requested", {"search": 8, "case": "C-8"}),
    ]
    for after, actor, action, objects in planted:
        workflow.clock = lambda moment=START + after: moment  # type: ignore[misc]
        with workflow.workspace.session() as session, session.begin():
            record(session, workflow, actor, action, objects, {"note": "[planted]"})
    workflow.clock = system_clock
    save_token(workflow.workspace.home, login(workflow, "ada", PASSWORD).token)
    yield made
    workflow.close()


def candor(agency: Agency, *arguments: str) -> Any:
    home = str(agency.workflow.workspace.home)
    return CliRunner().invoke(
        app, ["audit", "list", *arguments], env={"CANDOR_HOME": home, "COLUMNS": "200"}
    )


def listed(agency: Agency, *arguments: str) -> dict[str, Any]:
    result = candor(agency, *arguments, "--json")
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_a_case_lists_its_request_and_what_followed_on_its_search(agency: Agency) -> None:
    answer = listed(agency, "--case", "C-7")
    assert [item["action"] for item in answer["items"]] == [
        "candidates.viewed",
        "search.requested",
    ]
    assert (answer["total"], answer["next_offset"]) == (2, None)


def test_user_action_and_days_filter_and_pages_run_newest_first(agency: Agency) -> None:
    both = listed(agency, "--user", "ana", "--action", "search.requested")
    assert [item["objects"]["case"] for item in both["items"]] == ["C-8", "C-7"]
    first_day = listed(agency, "--since", "2026-03-02", "--until", "2026-03-02")
    assert [item["objects"].get("case") for item in first_day["items"]] == [None, "C-7"]
    page = listed(agency, "--limit", "1", "--offset", "1", "--user", "ana")
    assert page["items"][0]["objects"]["case"] == "C-7" and page["next_offset"] == 2


def test_the_table_prints_what_people_typed_literally(agency: Agency) -> None:
    result = candor(agency, "--case", "C-8")
    assert result.exit_code == 0, result.output
    assert "search.requested" in result.stdout and "[planted]" in result.stdout
    assert "1-1 of 1, newest first" in result.stdout


def test_a_bad_day_is_one_line(agency: Agency) -> None:
    result = candor(agency, "--since", "last tuesday")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "candor: error: --since 'last tuesday' is neither a day (2026-03-02) nor a time "
        "(2026-03-02T09:30Z)"
    ]
