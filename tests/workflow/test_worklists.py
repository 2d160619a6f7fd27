"""What waits for each person: lists oldest first, paged and filtered, overdue reviews,
the counts `todo` gives each role, the approval card and who decided a request.

Requests are written straight into the store here (no face engine): these tests are about
which rows each list shows, not about searching.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import delete, select

from candor.store import (
    Approval,
    AuditEntry,
    Candidate,
    LeadOutcome,
    Release,
    SearchRequest,
    Verdict,
)
from candor.workflow import PermissionDeniedError, WorkflowError, decide_approval
from candor.workflow.accounts import request_user
from candor.workflow.audit_ops import checkpoint_now
from candor.workflow.governed import pending_approvals
from candor.workflow.paging import PageRequest
from candor.workflow.worklists import (
    approval_probes,
    my_requests,
    overdue_reviews,
    request_status,
    review_queue,
    todo,
    todo_label,
)
from tests.agency import Agency, make_agency, new_user, policy_file
from tests.worklist_rows import add_search, judge, photo, release

pytestmark = pytest.mark.xdist_group("workflow")


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(tmp_path_factory.mktemp("worklists"))
    made.add_user(new_user("aud", "auditor"))
    made.add_user(new_user("vic", "supervisor", unit="Fraud"))
    made.add_user(new_user("sue", "supervisor", "analyst"))
    made.add_user(new_user("ed", "examiner"))
    yield made
    made.workflow.close()


@pytest.fixture
def fresh(agency: Agency) -> Agency:
    """The module's agency with no requests: each test sees only the rows it adds (making
    an agency per test cost seconds of password hashing each)."""
    with agency.workflow.workspace.session() as session, session.begin():
        for table in (LeadOutcome, Release, Verdict, Approval, Candidate, SearchRequest):
            session.execute(delete(table))
    return agency


def test_the_review_queue_is_oldest_first_and_pages_past_fifty(fresh: Agency) -> None:
    # The fault: the queue showed the 50 newest lists, so the 51st oldest dropped out of
    # sight for good. Now the oldest comes first and every list is reachable by paging.
    oldest = add_search(fresh, "ana", "OLD-1", days_ago=30)
    newer = [add_search(fresh, "ana", f"NEW-{n}", days_ago=1 - n / 100) for n in range(55)]
    first = review_queue(fresh.workflow, fresh["eve"], PageRequest(limit=50))
    assert first.total == 56
    assert first.items[0].search_id == oldest
    assert first.items[0].overdue and not first.items[1].overdue
    assert first.next_offset == 50
    rest = review_queue(fresh.workflow, fresh["eve"], PageRequest(limit=50, offset=50))
    assert [item.search_id for item in rest.items] == newer[49:]
    assert rest.next_offset is None
    assert first.describe() == "1-50 of 56" and rest.describe() == "51-56 of 56"


def test_lists_leave_the_queue_as_their_review_finishes(fresh: Agency) -> None:
    untouched = add_search(fresh, "ana", "C-0", days_ago=6)
    partly = add_search(fresh, "ana", "C-1", days_ago=5)
    by_eve = add_search(fresh, "ana", "C-2", days_ago=4)
    settled = add_search(fresh, "ana", "C-3", days_ago=3)
    released = add_search(fresh, "ana", "C-4", days_ago=2)
    own = add_search(fresh, "eve", "C-5", days_ago=1)
    judge(fresh, partly, "eve", 1)
    judge(fresh, by_eve, "eve", 1, 2)
    judge(fresh, settled, "eve", 1)
    judge(fresh, settled, "eli", 2)
    release(fresh, released, 1)

    def queue(name: str) -> list[int]:
        return [i.search_id for i in review_queue(fresh.workflow, fresh[name]).items]

    # eve reviewed C-1 and C-2 (the policy wants two examiners: they wait for another),
    # C-3 has its two examiners, C-4 a released lead, and C-5 is eve's own request.
    assert queue("eve") == [untouched]
    assert queue("eli") == [untouched, partly, by_eve, own]
    # A supervisor who does not review sees every list still under review.
    assert queue("sam") == [untouched, partly, by_eve, own]
    assert review_queue(fresh.workflow, fresh["sam"]).items[1].reviewed_by_me == 0


def test_a_disagreement_waits_for_whoever_settles_it(fresh: Agency, tmp_path: Path) -> None:
    # Lists without a disagreement are the same under this policy: the others' tests are
    # unaffected by it.
    fresh.set_policy(
        policy_file(
            tmp_path,
            "two-reviewers",
            source_type="evaluation",
            reviewers_to_release='reviewers_to_release = 2\nresolve_disagreement_by = "examiner"',
        )
    )
    split = add_search(fresh, "ana", "R-1")
    judge(fresh, split, "eve", 1)
    judge(fresh, split, "eli", 1, verdict="not_a_match")

    def queue(name: str) -> list[int]:
        return [i.search_id for i in review_queue(fresh.workflow, fresh[name]).items]

    assert (queue("eve"), queue("eli"), queue("ed")) == ([], [], [split])
    judge(fresh, split, "ed", 1, verdict="not_a_match", resolves=True)
    assert queue("ed") == [] and queue("sam") == []


def test_a_supervisor_who_settles_disagreements_finds_them_in_her_queue(
    fresh: Agency, tmp_path: Path
) -> None:
    # A policy may name a reviewing supervisor to settle disagreements. A split list has
    # its two examiners, so it waits for no examiner: it must wait for her, in her queue
    # and in her todo, until she settles it. Two not_a_matches are no disagreement.
    resolving = policy_file(
        tmp_path,
        "two-reviewers",
        source_type="evaluation",
        supervisor='supervisor = ["search.approve", "reports.read", "candidate.review"]',
        reviewers_to_release='reviewers_to_release = 2\nresolve_disagreement_by = "supervisor"',
    )
    fresh.set_policy(resolving)
    try:
        split = add_search(fresh, "ana", "R-2", days_ago=2)
        ruled_out = add_search(fresh, "ana", "R-3", days_ago=1)
        judge(fresh, split, "eve", 1)
        judge(fresh, split, "eli", 1, verdict="not_a_match")
        judge(fresh, ruled_out, "eve", 1, verdict="not_a_match")
        judge(fresh, ruled_out, "eli", 1, verdict="not_a_match")

        def queue(name: str) -> list[int]:
            return [i.search_id for i in review_queue(fresh.workflow, fresh[name]).items]

        assert (queue("sam"), queue("ed"), queue("eve")) == ([split], [], [])
        reviews = next(e for e in todo(fresh.workflow, fresh["sam"]).entries if e.kind == "reviews")
        assert (reviews.count, [item.ref for item in reviews.oldest]) == (1, [split])
        judge(fresh, split, "sam", 1, resolves=True)
        assert queue("sam") == [] and queue("vic") == []
    finally:
        fresh.set_policy(policy_file(tmp_path, "two-reviewers", source_type="evaluation"))


def test_the_review_queue_filters_by_case_and_overdue(fresh: Agency) -> None:
    late = add_search(fresh, "ana", "2026-7", days_ago=9)
    add_search(fresh, "ana", "2026-8", days_ago=2)
    add_search(fresh, "ana", "2026-7", days_ago=1)
    overdue = review_queue(fresh.workflow, fresh["eli"], overdue=True)
    assert [i.search_id for i in overdue.items] == [late] and overdue.total == 1
    by_case = review_queue(fresh.workflow, fresh["eli"], case=" 2026-7 ")
    assert [i.case_number for i in by_case.items] == ["2026-7", "2026-7"]
    assert by_case.items[0].due_by == by_case.items[0].ran_at + timedelta(days=7)  # type: ignore[operator]
    everyone = overdue_reviews(fresh.workflow, fresh["sam"])
    assert [i.search_id for i in everyone.items] == [late]
    with pytest.raises(PermissionDeniedError):
        review_queue(fresh.workflow, fresh["ana"])


def test_my_requests_oldest_first_filtered_and_paged(fresh: Agency) -> None:
    ids = [add_search(fresh, "ana", f"K-{n % 3}", days_ago=60 - n) for n in range(60)]
    waiting = add_search(fresh, "ana", "K-9", status="approved", days_ago=0.5)
    add_search(fresh, "eli", "K-1")
    first = my_requests(fresh.workflow, fresh["ana"])
    assert (first.total, len(first.items), first.items[0].search_id) == (61, 50, ids[0])
    assert first.items[0].candidates == 2
    second = my_requests(fresh.workflow, fresh["ana"], PageRequest(limit=50, offset=50))
    assert second.items[-1].search_id == waiting
    approved = my_requests(fresh.workflow, fresh["ana"], status="approved")
    assert [r.search_id for r in approved.items] == [waiting]
    case = my_requests(fresh.workflow, fresh["ana"], PageRequest(limit=5), case="K-1")
    assert case.total == 20 and [r.search_id for r in case.items] == ids[1:15:3]
    with pytest.raises(WorkflowError, match="status 'done' is not one of denied"):
        my_requests(fresh.workflow, fresh["ana"], status="done")


def test_approvals_oldest_first_with_the_earlier_search_and_never_ones_own(
    fresh: Agency,
) -> None:
    earlier = add_search(fresh, "ana", "E-1", days_ago=10)
    first = add_search(fresh, "ana", "E-2", status="pending_approval", days_ago=3, earlier=earlier)
    second = add_search(fresh, "ana", "E-3", status="pending_approval", days_ago=2)
    owns = add_search(fresh, "sue", "E-4", status="pending_approval", days_ago=1)
    waiting = pending_approvals(fresh.workflow, fresh["sue"])
    assert [p.search_id for p in waiting.items] == [first, second]
    card = waiting.items[0]
    assert card.earlier is not None
    assert (card.earlier.search_id, card.earlier.case_number) == (earlier, "E-1")
    assert (card.earlier.requester, card.earlier.status) == ("ana", "completed")
    assert waiting.items[1].earlier is None
    assert [p.search_id for p in pending_approvals(fresh.workflow, fresh["sam"]).items] == [
        first,
        second,
        owns,
    ]
    paged = pending_approvals(fresh.workflow, fresh["sam"], PageRequest(limit=1, offset=1))
    assert (paged.total, [p.search_id for p in paged.items]) == (3, [second])
    by_case = pending_approvals(fresh.workflow, fresh["sam"], case="E-3")
    assert [p.search_id for p in by_case.items] == [second]


def test_the_request_page_says_who_decided_and_why(fresh: Agency) -> None:
    earlier = add_search(fresh, "ana", "D-1", days_ago=4)
    waiting = add_search(fresh, "ana", "D-1", status="pending_approval", earlier=earlier)
    decide_approval(fresh.workflow, fresh["sam"], waiting, approve=True, reason="new witness")
    status = request_status(fresh.workflow, fresh["ana"], waiting)
    assert status.approval is not None
    assert (status.approval.decision, status.approval.supervisor) == ("approved", "sam")
    assert status.approval.reason == "new witness"
    assert status.earlier is not None and status.earlier.search_id == earlier
    assert request_status(fresh.workflow, fresh["ana"], earlier).approval is None


def test_the_approval_card_shows_the_probe_and_records_that(fresh: Agency) -> None:
    held = add_search(fresh, "ana", "P-1", status="pending_approval", probe=photo())
    gone = add_search(fresh, "ana", "P-2", status="pending_approval")
    shown = approval_probes(fresh.workflow, fresh["sam"], [held, gone])
    assert shown[gone] is None
    thumbnail = Image.open(io.BytesIO(shown[held] or b""))
    assert max(thumbnail.size) == 240
    with fresh.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    entries = [json.loads(body) for body in bodies][-2:]
    assert [e["action"] for e in entries] == ["approval.probe_viewed"] * 2
    assert [e["details"]["probe_shown"] for e in entries] == [True, False]
    with pytest.raises(PermissionDeniedError):
        approval_probes(fresh.workflow, fresh["eve"], [held])
    with pytest.raises(WorkflowError, match="not waiting for approval"):
        approval_probes(fresh.workflow, fresh["sam"], [add_search(fresh, "ana", "P-3")])


def test_todo_counts_what_waits_for_each_role(fresh: Agency) -> None:
    agency = fresh
    late = add_search(agency, "ana", "T-1", days_ago=12)
    add_search(agency, "ana", "T-2", days_ago=1)
    add_search(agency, "ana", "T-3", status="approved")
    add_search(agency, "ana", "T-4", status="pending_approval")
    led = add_search(agency, "ana", "T-5", days_ago=2)
    release(agency, led, 1)
    told = add_search(agency, "ana", "T-6", days_ago=2)
    release(agency, told, 1, outcome="excluded")
    request_user(agency.workflow, agency["admin2"], new_user("new", "analyst"))

    def counts(name: str) -> dict[str, int]:
        return {e.kind: e.count for e in todo(agency.workflow, agency[name]).entries}

    assert counts("ana") == {"approved_to_run": 1, "leads_without_outcome": 1}
    eve = todo(agency.workflow, agency["eve"])
    assert {e.kind: e.count for e in eve.entries} == {
        "approved_to_run": 0,
        "leads_without_outcome": 0,
        "reviews": 2,
        "overdue_reviews": 1,
    }
    reviews = eve.entry("reviews")
    assert reviews is not None and reviews.oldest[0].ref == late and reviews.oldest[0].overdue
    overdue = eve.entry("overdue_reviews")
    assert overdue is not None
    assert overdue.label == (
        "1 candidate list waiting for you is unreviewed past the policy's 7 days"
    )
    assert counts("sam") == {"approvals": 1, "overdue_reviews": 1}
    assert counts("vic") == {"approvals": 1, "overdue_reviews": 0}  # another unit
    assert counts("aud") == {"overdue_reviews": 1}
    # admin2 asked for the new user: only admin1 may confirm it.
    assert counts("admin1") == {"changes": 1, "jobs_failed": 0, "jobs_running": 0}
    assert counts("admin2")["changes"] == 0
    assert todo(agency.workflow, agency["sam"]).waiting == 1
    checkpoint_now(agency.workflow, agency["aud"])
    auditor = todo(agency.workflow, agency["aud"])
    assert auditor.checkpoint_age_hours is not None and 0 <= auditor.checkpoint_age_hours < 1


def test_todo_labels_say_counts_in_words() -> None:
    assert todo_label("approvals", 2) == "2 approvals wait for you"
    assert todo_label("approvals", 1) == "1 approval waits for you"
    assert todo_label("approvals", 0) == "No approvals wait for you"
    assert (
        todo_label("overdue_reviews", 3, days=7, scope="unit")
        == "3 candidate lists in your unit are unreviewed past the policy's 7 days"
    )
