"""The issue's acceptance: on a simulated quarter (475 searches, 25 staff, planted misuse),
the usage report's top flags name the planted users first, and it answers the board.

Slow-ish (one simulation for the module, about a minute); every other report test runs
on hand-counted fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher, Type

from candor.reports import UsageQuery, UsageReport, usage_report
from candor.simulation.activity import SimulationSettings, SimulationSummary, run_simulation
from candor.store import Workspace
from candor.store.audit_log import lock_log_head
from candor.workflow import Workflow
from candor.workflow import accounts as accounts_module
from candor.workflow.audit_ops import verifier_key
from candor.workflow.audit_trail import make_checkpoint
from candor.workflow.workspaces import create_workspace

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simulation")]

# The simulation's kind of planted misuse -> the flag that should name its user.
EXPECTED_FLAG = {
    "volume": "high_volume",
    "re_runs": "repeats",
    "outside_agencies": "outside_agency",
    "night": "unusual_hours",
    "expired_certificate": "expired_certificate",
}


@pytest.fixture(scope="module")
def quarter(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SimulationSummary, UsageReport]]:
    home = tmp_path_factory.mktemp("quarter") / "ws"
    create_workspace(home, purpose="simulation").close()
    with pytest.MonkeyPatch.context() as patch:
        # Argon2 at its cheapest: every simulated account logs in weekly, at its cost.
        patch.setattr(
            accounts_module,
            "PASSWORD_HASHER",
            PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
        )
        with Workflow(Workspace.open(home)) as workflow:
            settings = SimulationSettings(weeks=13, searches=475, staff=25, gallery=300)
            summary = run_simulation(workflow, settings)
            # Sign what the simulation wrote last, so that the report counts all of it.
            with workflow.workspace.session() as session, session.begin():
                lock_log_head(session)
                make_checkpoint(session, workflow)
            zone = workflow.workspace.zone
            query = UsageQuery(
                summary.start.astimezone(zone).date(), summary.end.astimezone(zone).date()
            )
            report = usage_report(workflow.workspace, verifier_key(workflow), query)
    yield summary, report


def test_the_top_flags_name_the_planted_users_first(
    quarter: tuple[SimulationSummary, UsageReport],
) -> None:
    summary, report = quarter
    planted = dict(summary.planted)
    assert sorted(planted.values()) == sorted(EXPECTED_FLAG)
    # The first flags name the planted users and nobody else, until every one is named.
    named: list[str] = []
    for flag in report.flags:
        if set(named) == set(planted):
            break
        assert flag.user in planted, (flag.kind, flag.user, flag.explanation)
        if flag.user not in named:
            named.append(flag.user)
    assert set(named) == set(planted)
    # The rule broken comes first; each planted user is flagged for what they did.
    assert report.flags[0].kind == "expired_certificate"
    flagged = {(flag.user, flag.kind) for flag in report.flags}
    for user, kind in planted.items():
        assert (user, EXPECTED_FLAG[kind]) in flagged, (user, kind)
    # No flag fits everyone: most requesters are not flagged at all.
    assert len({flag.user for flag in report.flags}) < report.users / 2


def test_the_report_answers_each_board_question(
    quarter: tuple[SimulationSummary, UsageReport],
) -> None:
    _, report = quarter
    assert report.totals.requested == 475
    # Distinct cases per user and searches per case.
    assert sum(row.requests for row in report.cases_by_user) == 475
    assert report.distinct_cases > 0 and report.searches_per_case is not None
    # Each repeat with who decided it and why.
    decided = [row for row in report.repeats if row.decision in ("approved", "rejected")]
    assert decided and all(row.approver and row.reason for row in decided)
    # Denials by reason per user.
    assert report.denials_by_user
    # Examiner agreement and time to review.
    assert report.agreement is not None and report.agreement.pairs > 0
    assert report.agreement.rate is not None
    assert all(
        timing.count > 0 and timing.median_hours is not None for timing in report.review_times
    )
    # What came of each lead: every lead released is counted under one outcome.
    assert sum(count for _, count in report.lead_outcomes) == report.totals.leads_released > 0
    # This period against the previous one (before the simulation: nothing).
    change = {c.name: c for c in report.comparison}
    assert change["requested"].current == 475 and change["requested"].previous == 0
