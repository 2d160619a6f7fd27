"""The audit browser: the log filtered by case, user, action and time, newest first, paged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from candor.workflow import PermissionDeniedError
from candor.workflow.audit_ops import (
    EntryFilter,
    checkpoint_now,
    list_entries,
    log_actions,
    prove_entry,
    verify_log,
)
from candor.workflow.audit_trail import record
from candor.workflow.context import system_clock
from candor.workflow.errors import WorkflowError
from candor.workflow.paging import PageRequest
from tests.agency import Agency, make_agency, new_user

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def plant(agency: Agency, at: datetime, actor: str, action: str, objects: dict[str, object]) -> int:
    """One entry as a governed action writes it, at a chosen time."""
    workflow = agency.workflow
    workflow.clock = lambda: at
    with workflow.workspace.session() as session, session.begin():
        return record(session, workflow, actor, action, objects, {})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(Path(tmp_path_factory.mktemp("browser")))
    made.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    # Case C-7: a search by ana, viewed by eve; case C-8: a search by ana the next day.
    plant(made, START, "ana", "search.requested", {"search": 7, "case": "C-7"})
    plant(made, START + timedelta(minutes=1), None, "policy.decided", {"search": 7})
    plant(made, START + timedelta(hours=2), "eve", "candidates.viewed", {"search": 7})
    plant(made, START + timedelta(days=1), "ana", "search.requested", {"search": 8, "case": "C-8"})
    plant(made, START + timedelta(days=1, hours=1), "eve", "candidates.viewed", {"search": 8})
    yield made
    made.workflow.close()


def browse(agency: Agency, page: PageRequest | None = None, **chosen: object) -> list[str]:
    found = list_entries(
        agency.workflow,
        agency["ada"],
        EntryFilter(**chosen),
        page or PageRequest(),  # type: ignore[arg-type]
    )
    return [f"{entry.action}:{entry.objects.get('search')}" for entry in found.items]


def test_a_case_finds_its_request_and_every_entry_about_its_search(agency: Agency) -> None:
    assert browse(agency, case_number="C-7") == [
        "candidates.viewed:7",
        "policy.decided:7",
        "search.requested:7",
    ]
    assert browse(agency, case_number="C-9") == []


def test_user_action_and_time_filters_combine(agency: Agency) -> None:
    assert browse(agency, actor="eve") == [
        "candidates.viewed:8",
        "candidates.viewed:7",
        "auth.login:None",
    ]
    assert browse(agency, actor="ana", action="search.requested") == [
        "search.requested:8",
        "search.requested:7",
    ]
    first_day = {"since": START, "until": START + timedelta(days=1)}
    assert browse(agency, action="candidates.viewed", **first_day) == ["candidates.viewed:7"]
    assert "candidates.viewed" in log_actions(agency.workflow, agency["ada"])


def test_pages_run_newest_first_with_the_total(agency: Agency) -> None:
    case = EntryFilter(case_number="C-7")
    first = list_entries(agency.workflow, agency["ada"], case, PageRequest(limit=2))
    assert [entry.action for entry in first.items] == ["candidates.viewed", "policy.decided"]
    assert (first.total, first.next_offset, first.describe()) == (3, 2, "1-2 of 3")
    second = list_entries(agency.workflow, agency["ada"], case, PageRequest(limit=2, offset=2))
    assert [entry.action for entry in second.items] == ["search.requested"]
    assert second.next_offset is None
    everything = list_entries(agency.workflow, agency["ada"], EntryFilter(), PageRequest(limit=1))
    oldest = list_entries(
        agency.workflow,
        agency["ada"],
        EntryFilter(),
        PageRequest(limit=1, offset=everything.total - 1),
    )
    assert [entry.seq for entry in oldest.items] == [1]


def test_each_listed_entry_proves_against_a_checkpoint(agency: Agency) -> None:
    entry = list_entries(
        agency.workflow, agency["ada"], EntryFilter(case_number="C-8"), PageRequest()
    ).items[-1]
    checkpoint_now(agency.workflow, agency["ada"])
    proof = prove_entry(agency.workflow, agency["ada"], entry.seq)
    assert proof.leaf_hash == entry.leaf_hash


def test_only_readers_of_the_log_browse_it_and_bad_ranges_are_refused(agency: Agency) -> None:
    with pytest.raises(PermissionDeniedError):
        list_entries(agency.workflow, agency["ana"], EntryFilter(), PageRequest())
    with pytest.raises(WorkflowError, match="must come before"):
        browse(agency, since=START, until=START)
    with pytest.raises(WorkflowError, match="time zone"):
        browse(agency, since=datetime(2026, 3, 2))


def test_a_column_changed_behind_candors_back_fails_verification(tmp_path: Path) -> None:
    made = make_agency(tmp_path)
    try:
        made.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
        # An action no table depends on, so only the browser's columns are in question.
        seq = plant(made, START, "ana", "case.noted", {"case": "C-9"})
        made.workflow.clock = system_clock
        assert verify_log(made.workflow, made["ada"]).ok
        # Whoever holds the database moves the entry out of the case's filter.
        with made.workflow.workspace.engine.begin() as connection:
            connection.execute(
                text("UPDATE audit_entries SET case_number = 'C-1' WHERE seq = :seq"),
                {"seq": seq},
            )
        report = verify_log(made.workflow, made["ada"])
        assert not report.ok and report.first_bad_seq == seq
        assert report.problem == (
            f"entry {seq}'s browser columns (case_number) disagree with its bytes: "
            "the audit browser's filters could miss entries"
        )
    finally:
        made.workflow.close()
