"""`candor todo` and the lists it points to, at the terminal and as JSON: counts of what
waits, oldest first, a page at a time, filtered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.workflow.accounts import login
from tests.agency import PASSWORD, Agency, make_agency
from tests.worklist_rows import add_search

pytestmark = pytest.mark.xdist_group("workflow")


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(tmp_path_factory.mktemp("todo"))
    late = add_search(made, "ana", "2026-OLD", days_ago=9)
    made.ids = {  # type: ignore[attr-defined]
        "late": late,
        "lists": [add_search(made, "ana", f"2026-N-{n}", days_ago=2 - n / 10) for n in range(4)],
        "waiting": add_search(made, "ana", "2026-N-1", status="pending_approval", earlier=late),
    }
    yield made
    made.workflow.close()


def cli(agency: Agency, user: str, *args: str) -> tuple[int, str, str]:
    home = agency.workflow.workspace.home
    save_token(home, login(agency.workflow, user, PASSWORD).token)
    result = CliRunner().invoke(app, list(args), env={"CANDOR_HOME": str(home), "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def as_json(agency: Agency, user: str, *args: str) -> dict[str, Any]:
    code, out, err = cli(agency, user, *args, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert isinstance(payload, dict)
    return payload


def test_todo_counts_what_waits_for_an_examiner(agency: Agency) -> None:
    code, out, _ = cli(agency, "eve", "todo")
    assert code == 0
    assert "What waits for eve" in out
    assert "5 candidate lists wait for your review" in out
    assert "1 candidate list waiting for you is unreviewed past the policy's 7 days" in out
    payload = as_json(agency, "eve", "todo")
    entries = {entry["kind"]: entry for entry in payload["entries"]}
    assert entries["reviews"]["count"] == 5 and entries["overdue_reviews"]["count"] == 1
    oldest = entries["reviews"]["oldest"][0]
    assert (oldest["ref"], oldest["overdue"]) == (agency.ids["late"], True)  # type: ignore[attr-defined]
    assert payload["waiting"] == 5


def test_todo_for_a_supervisor_and_the_approvals_list(agency: Agency) -> None:
    code, out, _ = cli(agency, "sam", "todo")
    assert code == 0 and "1 approval waits for you" in out
    listed = as_json(agency, "sam", "approvals", "--limit", "1")
    assert (listed["total"], listed["next_offset"]) == (1, None)
    card = listed["items"][0]
    assert card["search_id"] == agency.ids["waiting"]  # type: ignore[attr-defined]
    assert card["earlier"]["case_number"] == "2026-OLD"
    code, out, _ = cli(agency, "sam", "approvals")
    assert "Requests waiting for approval: 1-1 of 1" in out and "2026-OLD" in out


def test_reviews_and_requests_page_oldest_first(agency: Agency) -> None:
    ids = agency.ids  # type: ignore[attr-defined]
    first = as_json(agency, "eli", "reviews", "--limit", "2")
    assert [item["search_id"] for item in first["items"]] == [ids["late"], ids["lists"][0]]
    assert (first["total"], first["next_offset"]) == (5, 2)
    assert first["items"][0]["overdue"] is True
    code, out, _ = cli(agency, "eli", "reviews", "--limit", "2", "--offset", "2")
    assert code == 0 and "3-4 of 5" in out and "next page: --offset 4" in out
    overdue = as_json(agency, "eli", "reviews", "--overdue")
    assert [item["search_id"] for item in overdue["items"]] == [ids["late"]]
    mine = as_json(agency, "ana", "requests", "--case", "2026-N-1")
    assert [item["status"] for item in mine["items"]] == ["completed", "pending_approval"]
    code, _, err = cli(agency, "ana", "requests", "--status", "finished")
    assert code == 1 and "status 'finished' is not one of" in err
    code, _, err = cli(agency, "ana", "requests", "--limit", "500")
    assert code != 0 and "--limit" in err
