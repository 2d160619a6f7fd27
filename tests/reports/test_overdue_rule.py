"""One definition of "overdue for review": the usage report (from the log, as of its
checkpoint) and the review queue's SQL (the store) name the same candidate lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from candor.store import Workspace
from candor.store.requests import overdue_review_lists
from candor.store.review_state import candidate_unsettled, list_under_review
from tests.reports.scenario import Scenario

# The scenario's checkpoint (scenario.py: 22 January 2027, 09:00) and its policy's review
# settings: two examiners to release, 7 days to review, nobody named to settle.
CHECKPOINT = datetime(2027, 1, 22, 9, tzinfo=UTC)
REVIEWERS, DAYS = 2, 7


def test_the_report_and_the_review_queue_count_the_same_overdue_lists(
    scenario: Scenario, copy: Path
) -> None:
    # The copy is the workspace as it was at the report's checkpoint.
    with Workspace.open(copy) as workspace, workspace.session() as session:
        queue = overdue_review_lists(
            session,
            reviewers_required=REVIEWERS,
            ran_before=CHECKPOINT - timedelta(days=DAYS),
            resolving=False,
        )
    report = scenario.usage.overdue
    assert [row.search_id for row in report] == [search_id for search_id, *_ in queue]
    # S1 (one examiner of two) is overdue in both, S6 (released) in neither.
    ids = scenario.search_ids
    assert ids["S1"] in {row.search_id for row in report}
    assert ids["S6"] not in {row.search_id for row in report}
    assert len(report) == 4


@pytest.mark.parametrize(
    ("verdicts", "unsettled"),
    [
        ([], False),
        ([("possible_match", False)], False),
        ([("not_a_match", False), ("not_a_match", False)], False),
        ([("possible_match", False), ("not_a_match", False)], True),
        ([("possible_match", False), ("not_a_match", False), ("not_a_match", True)], False),
    ],
)
def test_a_disagreement_is_possible_match_against_not_a_match_until_settled(
    verdicts: list[tuple[str, bool]], unsettled: bool
) -> None:
    assert candidate_unsettled(verdicts) is unsettled


def test_a_list_is_under_review_until_released_or_enough_examiners_and_settled() -> None:
    def under(**changed: object) -> bool:
        facts: dict[str, object] = {
            "candidates": 10,
            "released": False,
            "blind_examiners": 1,
            "unsettled": False,
            "reviewers_required": 2,
            "resolving": True,
        }
        facts.update(changed)
        return list_under_review(**facts)  # type: ignore[arg-type]

    assert under()
    assert not under(blind_examiners=2)
    assert under(blind_examiners=2, unsettled=True)
    assert not under(blind_examiners=2, unsettled=True, resolving=False)
    assert not under(released=True)
    assert not under(candidates=0)
