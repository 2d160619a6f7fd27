"""The usage report of the scripted scenario: every figure equal to what the script did."""

from __future__ import annotations

import csv
import io
import json

import pytest

from candor.reports import Counts, UsageReport, usage_csv, usage_json, week_label
from tests.reports.scenario import HOME, SHERIFF, Scenario

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("reports")]

MEASURES = (
    "requested",
    "denied",
    "needed_approval",
    "approved",
    "rejected",
    "run",
    "reviewed",
    "leads_released",
    "repeat_searches",
    "outside_agency",
    "quota_reached",
)


def counts(*values: int) -> dict[str, int]:
    assert len(values) == len(MEASURES)
    return dict(zip(MEASURES, values, strict=True))


# Written out from the script in scenario.py (S1..S9), not computed.
#                  req den appr? appd rej run rev lead rep out quota
TOTAL = counts(9, 2, 2, 1, 1, 6, 2, 1, 3, 1, 1)
BY_USER = {
    "ana": ("Robbery", counts(4, 1, 1, 1, 0, 3, 1, 0, 2, 1, 1)),
    "bob": ("Burglary", counts(4, 1, 1, 0, 1, 2, 1, 1, 1, 0, 0)),
    "eve": ("Robbery", counts(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0)),
}
BY_USER_UNIT = {
    "Robbery": counts(5, 1, 1, 1, 0, 4, 1, 0, 2, 1, 1),
    "Burglary": counts(4, 1, 1, 0, 1, 2, 1, 1, 1, 0, 0),
}
BY_WEEK = {
    "2026-W53": counts(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "2027-W01": counts(6, 2, 1, 1, 0, 4, 2, 1, 2, 1, 1),
    "2027-W02": counts(3, 0, 1, 0, 1, 2, 0, 0, 1, 0, 0),
    "2027-W03": counts(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "2027-W04": counts(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
}
REQUESTED = {
    "by_requesting_unit": {"Robbery": 5, "Burglary": 4},
    "by_agency": {HOME: 8, SHERIFF: 1},
    "by_offence": {"robbery": 8, "shoplifting": 1},
    "by_purpose": {"investigative_lead": 8, "curiosity": 1},
    "by_kind": {"search": 8, "verify": 1},
}
DENIAL_REASONS = {"quota_per_day": 1, "offence_not_allowed": 1, "purpose_not_allowed": 1}
OUTCOMES = {
    "denied": 2,
    "rejected": 1,
    "undecided": 0,
    "awaiting_approval": 0,
    "not_run": 0,
    "run_no_candidates": 1,
    "run_not_reviewed": 3,
    "run_reviewed": 1,
    "run_lead_released": 1,
}
HEADLINE = (
    "3 users requested 9 searches between 2027-01-01 and 2027-01-31; 2 were denied and 6 were run."
)


def flags_of(report: UsageReport, scenario: Scenario) -> set[tuple[str, str, tuple[int, ...]]]:
    return {(flag.kind, flag.user, flag.search_ids) for flag in report.flags}


def expected_flags(scenario: Scenario) -> set[tuple[str, str, tuple[int, ...]]]:
    # bob made 3 of his 4 requests at unusual hours, against a median of 0 among the
    # three requesters; ana's 2 repeats of 4 are no flag beside bob's 1 of 4 (the
    # median), and the unreviewed lists are in the overdue section, not flags.
    s = scenario.search_ids
    return {("unusual_hours", "bob", (s["S5"], s["S6"], s["S8"]))}


def as_dict(value: Counts) -> dict[str, int]:
    return value.as_dict()


@pytest.mark.parametrize("which", ["usage", "usage_after_purge"])
def test_every_figure_equals_the_script(scenario: Scenario, which: str) -> None:
    report = getattr(scenario, which)
    assert report is not None
    assert report.headline == HEADLINE
    assert report.users == 3
    assert as_dict(report.totals) == TOTAL
    assert {row.key: (row.unit, as_dict(row.counts)) for row in report.by_user} == BY_USER
    assert {row.key: as_dict(row.counts) for row in report.by_user_unit} == BY_USER_UNIT
    assert {row.key: as_dict(row.counts) for row in report.by_week} == BY_WEEK
    assert [row.key for row in report.by_week] == list(BY_WEEK)
    for name, expected in REQUESTED.items():
        assert {row.key: row.counts.requested for row in getattr(report, name)} == expected
    assert dict(report.denial_reasons) == DENIAL_REASONS
    assert dict(report.outcomes) == OUTCOMES
    assert dict(report.weekly_by_user)["2027-W01"] == (("ana", 4), ("bob", 2))
    assert flags_of(report, scenario) == expected_flags(scenario)


@pytest.mark.parametrize("which", ["usage", "usage_after_purge"])
def test_the_board_questions_equal_the_script(scenario: Scenario, which: str) -> None:
    report = getattr(scenario, which)
    assert report is not None
    s = scenario.search_ids
    # Every request has a case of its own.
    assert report.distinct_cases == 9 and report.searches_per_case == 1.0
    assert {row.user: (row.requests, row.cases) for row in report.cases_by_user} == {
        "ana": (4, 4), "bob": (4, 4), "eve": (1, 1)
    }  # fmt: skip
    # S2 approved by sam, S4 denied (quota), S7 rejected by sam.
    repeats = [(r.search_id, r.requester, r.decision, r.approver, r.reason) for r in report.repeats]
    assert repeats == [
        (s["S2"], "ana", "approved", "sam", "new still in the file"),
        (s["S4"], "ana", "denied by the policy", None, None),
        (s["S7"], "bob", "rejected", "sam", "nothing new"),
    ]  # fmt: skip
    assert report.repeats[0].earlier_search_id == s["S1"]
    assert dict(report.denials_by_user) == {
        "ana": (("quota_per_day", 1),),
        "bob": (("offence_not_allowed", 1), ("purpose_not_allowed", 1)),
    }
    # S6: eve and eli both "possible match" on candidate 1; S1 had one verdict only.
    agreement = report.agreement
    assert agreement is not None
    assert (agreement.candidates, agreement.pairs, agreement.agreed, agreement.rate) == (
        1, 1, 1, 1.0
    )  # fmt: skip
    times = {t.name: t for t in report.review_times}
    # S1 ran Mon 4th 09:00, first verdict Tue 12th 12:00 (195 h); S6 ran Sat 9th 10:00,
    # verdict and release Tue 12th 11:00 (73 h).
    assert times["first_verdict"].count == 2
    assert times["first_verdict"].median_hours == pytest.approx(134, abs=0.05)
    assert times["first_verdict"].p90_hours == pytest.approx(195, abs=0.05)
    assert times["release"].count == 1
    assert times["release"].median_hours == pytest.approx(73, abs=0.05)
    # bob recorded "excluded", then "confirmed by other evidence": the newest stands.
    assert dict(report.lead_outcomes) == {
        "pending": 0, "confirmed_by_other_evidence": 1, "excluded": 0, "no_action": 0
    }  # fmt: skip
    # The review queue's definition: S1 has one examiner's verdict of the policy's two, so
    # it is still under review (and overdue) like S2, S3 and S8, which have none.
    assert [row.search_id for row in report.overdue] == [s["S1"], s["S2"], s["S3"], s["S8"]]
    assert {row.limit_days for row in report.overdue} == {7}
    # December 2026 had nothing: every figure is new.
    change = {c.name: (c.current, c.previous, c.change) for c in report.comparison}
    assert change["requested"] == (9, 0, 9)
    assert change["agreement_rate"] == (1.0, None, None)


def test_purges_are_reconciled_and_change_no_figure(scenario: Scenario) -> None:
    before, after = scenario.usage, scenario.usage_after_purge
    assert before is not None and after is not None
    assert after.as_of.checkpoint_size > before.as_of.checkpoint_size

    # Days waiting for review are counted to the checkpoint, which moved on; the rest holds.
    def held(report: UsageReport) -> list[str]:
        return [line for line in usage_csv(report).splitlines() if "days_waiting" not in line]

    assert held(after) == held(before)


def test_the_report_states_its_checkpoint(scenario: Scenario) -> None:
    report = scenario.usage
    assert report is not None
    sentence = report.as_of.sentence()
    assert f"entries 1 to {report.as_of.checkpoint_size:,}" in sentence
    assert report.as_of.root_hash[:16] in sentence
    assert report.as_of.checkpoint_time.isoformat().startswith("2027-01-22T09:00")


def test_filters_by_unit_and_user(scenario: Scenario) -> None:
    from candor.reports import UsageQuery, usage_report
    from tests.reports.scenario import PERIOD

    workspace = scenario.agency.workflow.workspace
    burglary = usage_report(
        workspace, scenario.key, UsageQuery(PERIOD.date_from, PERIOD.date_to, unit="Burglary")
    )
    assert as_dict(burglary.totals) == BY_USER_UNIT["Burglary"]
    assert burglary.headline.startswith("In unit Burglary, 1 user requested 4 searches")
    ana = usage_report(
        workspace, scenario.key, UsageQuery(PERIOD.date_from, PERIOD.date_to, user="ana")
    )
    assert as_dict(ana.totals) == BY_USER["ana"][1]
    assert ana.headline.startswith("ana requested 4 searches")
    # A period that ends before the first request counts nothing.
    early = usage_report(workspace, scenario.key, UsageQuery(PERIOD.date_from, PERIOD.date_from))
    assert early.totals.requested == 0
    assert early.headline.startswith("0 users requested 0 searches")


def test_csv_and_json_carry_the_same_figures(scenario: Scenario) -> None:
    report = scenario.usage
    assert report is not None
    rows = list(csv.DictReader(io.StringIO(usage_csv(report))))
    total = next(row for row in rows if row["breakdown"] == "total")
    assert {name: int(total[name]) for name in MEASURES} == TOTAL
    users = {row["key"]: row for row in rows if row["breakdown"] == "user"}
    assert {name: (row["user_unit"], {m: int(row[m]) for m in MEASURES})
            for name, row in users.items()} == BY_USER  # fmt: skip
    reasons = {
        row["key"]: int(row["denied"]) for row in rows if row["breakdown"] == "denial_reason"
    }
    assert reasons == DENIAL_REASONS
    document = json.loads(json.dumps(usage_json(report)))
    assert document["headline"] == HEADLINE
    assert document["totals"] == TOTAL
    assert document["outcomes"] == OUTCOMES
    assert {flag["kind"] for flag in document["flags"]} == {"unusual_hours"}
    assert set(document["flag_rules"]) == {
        "expired_certificate", "high_volume", "repeats", "denials", "unusual_hours",
        "outside_agency", "searches_per_case",
    }  # fmt: skip
    assert [row["search_id"] for row in document["overdue"]] == [
        scenario.search_ids[name] for name in ("S1", "S2", "S3", "S8")
    ]
    assert document["agreement"]["rate"] == 1.0
    assert document["lead_outcomes"] == {"pending": 0, "confirmed_by_other_evidence": 1,
                                         "excluded": 0, "no_action": 0}  # fmt: skip


def test_week_labels_follow_iso_weeks() -> None:
    from datetime import date

    assert week_label(date(2027, 1, 1)) == "2026-W53"
    assert week_label(date(2027, 1, 4)) == "2027-W01"
    assert week_label(date(2027, 1, 10)) == "2027-W01"
