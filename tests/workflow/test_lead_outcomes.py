"""Lead outcomes: the requester (only) records what came of each released lead; audited,
the newest stands, the history is kept, reconciliation checks the rows, reports count them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import AuditEntry
from candor.store.outcomes import NOT_RECORDED, lead_outcome_counts
from candor.workflow import (
    EnrolmentRequest,
    PermissionDeniedError,
    WorkflowError,
    enrol_files,
    record_lead_outcome,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
)
from candor.workflow.audit_ops import verify_log
from tests.agency import Agency, make_agency, new_user
from tests.support import people_with_photos, photos_of, raw_sql
from tests.workflow.test_governed import FORM, PROVENANCE

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Agency]:
    """A search by ana whose first candidate two examiners released as a lead."""
    agency = make_agency(tmp_path_factory.mktemp("outcomes"))
    agency.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    people = people_with_photos(faces_dir, 3)
    requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
    enrol_files(agency.workflow, agency["admin1"], requests, PROVENANCE)
    outcome = request_search(agency.workflow, agency["ana"], photos_of(people[1])[1], FORM)
    search_id = outcome.search_id
    record_verdict(agency.workflow, agency["eve"], search_id, 1, "possible_match", "ears")
    record_verdict(agency.workflow, agency["eli"], search_id, 1, "possible_match", "scar")
    release_lead(agency.workflow, agency["eve"], search_id, 1, "two agree")
    agency.search_id = search_id  # type: ignore[attr-defined]
    yield agency
    agency.workflow.close()


def _entries(agency: Agency, action: str) -> list[dict[str, object]]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [e for e in map(json.loads, bodies) if e["action"] == action]


def test_the_requester_records_outcomes_and_the_newest_stands(released: Agency) -> None:
    search_id = released.search_id  # type: ignore[attr-defined]
    first = record_lead_outcome(
        released.workflow, released["ana"], search_id, 1, "pending", "awaiting CCTV"
    )
    assert first.current is not None and first.current.outcome == "pending"
    later = record_lead_outcome(
        released.workflow,
        released["ana"],
        search_id,
        1,
        "confirmed_by_other_evidence",
        "fingerprints on the bag",
    )
    assert later.current is not None
    assert later.current.outcome == "confirmed_by_other_evidence"
    assert [(r.outcome, r.recorded_by) for r in later.history][-2:] == [
        ("pending", "ana"),
        ("confirmed_by_other_evidence", "ana"),
    ]
    leads = released_leads(released.workflow, released["ana"], search_id)
    assert leads.candidates[0].outcome == "confirmed_by_other_evidence"
    assert [o["note"] for o in leads.candidates[0].outcomes][-2:] == [
        "awaiting CCTV",
        "fingerprints on the bag",
    ]
    recorded = _entries(released, "lead.outcome_recorded")
    assert [e["details"]["outcome"] for e in recorded][-2:] == [  # type: ignore[index]
        "pending",
        "confirmed_by_other_evidence",
    ]
    assert all(e["actor"] == "ana" for e in recorded)

    now = released.workflow.now()
    counts = lead_outcome_counts_now(released, now)
    assert counts["confirmed_by_other_evidence"] == 1
    assert counts["pending"] == 0  # superseded
    assert counts[NOT_RECORDED] == 0


def lead_outcome_counts_now(agency: Agency, now: object) -> dict[str, int]:
    with agency.workflow.workspace.session() as session:
        return lead_outcome_counts(
            session,
            now - timedelta(days=1),
            now + timedelta(days=1),  # type: ignore[operator]
        )


@pytest.mark.parametrize("who", ["eve", "sam", "eli"])
def test_only_the_requester_records_an_outcome(released: Agency, who: str) -> None:
    search_id = released.search_id  # type: ignore[attr-defined]
    before = len(_entries(released, "lead.outcome_recorded"))
    with pytest.raises(PermissionDeniedError, match="only the requester"):
        record_lead_outcome(released.workflow, released[who], search_id, 1, "excluded", "x")
    assert len(_entries(released, "lead.outcome_recorded")) == before


@pytest.mark.parametrize(
    ("rank", "outcome", "note", "message"),
    [
        (1, "identified", "x", "unknown outcome 'identified'"),
        (1, "excluded", "  ", "needs a note"),
        (2, "excluded", "x", "was not released"),
        (99, "excluded", "x", "no candidate at rank 99"),
    ],
)
def test_bad_outcomes_are_refused_in_one_line(
    released: Agency, rank: int, outcome: str, note: str, message: str
) -> None:
    search_id = released.search_id  # type: ignore[attr-defined]
    with pytest.raises(WorkflowError, match=message):
        record_lead_outcome(released.workflow, released["ana"], search_id, rank, outcome, note)


def test_reconciliation_checks_the_outcome_rows(released: Agency) -> None:
    search_id = released.search_id  # type: ignore[attr-defined]
    record_lead_outcome(released.workflow, released["ana"], search_id, 1, "no_action", "closed")
    report = verify_log(released.workflow, released["ada"])
    assert report.ok, report
    home = released.workflow.workspace.home
    raw_sql(home, "UPDATE lead_outcomes SET outcome = 'excluded' WHERE note = 'closed'")
    tampered = verify_log(released.workflow, released["ada"])
    assert not tampered.ok
    store = tampered.store  # type: ignore[attr-defined]
    [difference] = [d for d in store.differences if d.table == "lead_outcomes"]
    assert (difference.column, difference.log, difference.store) == (
        "outcome",
        "no_action",
        "excluded",
    )
    raw_sql(home, "UPDATE lead_outcomes SET outcome = 'no_action' WHERE note = 'closed'")
