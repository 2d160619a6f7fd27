"""A scripted month of casework whose every figure the tests know in advance.

Real workflow calls (requests, policy decisions, approvals, runs, reviews, releases,
expungement, retention) on a few lfw-dev photos, dated by a scripted clock so that days,
weeks and hours are fixed. The expected figures below are written out by hand from the
script, not computed by any report code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from candor.reports import (
    TransparencyReport,
    UsageQuery,
    UsageReport,
    transparency_report,
    usage_report,
)
from candor.store import Provenance
from candor.workflow import (
    EnrolmentRequest,
    RequestForm,
    decide_approval,
    enrol_files,
    expunge_subject,
    record_lead_outcome,
    record_verdict,
    release_lead,
    request_search,
    request_verify,
    run_approved,
    run_retention,
    view_candidates,
)
from candor.workflow.audit_ops import checkpoint_now, verifier_key
from tests.agency import Agency, make_agency, new_user, policy_file
from tests.support import copy_workspace, people_with_photos, photos_of

HOME = "Example Regional Investigation Unit"
SHERIFF = "Neighbouring County Sheriff"
PROVENANCE = Provenance(
    source_type="evaluation",
    source_ref="lfw-dev (report tests)",
    legal_basis="research use under the LFW terms",
    collected_on=date(2024, 1, 1),
    retain_until=date(2030, 1, 1),
)
PERIOD = UsageQuery(date(2027, 1, 1), date(2027, 1, 31))
CASES = [f"RPT-2027-{n:04d}" for n in range(1, 10)]
USERNAMES = ("ana", "bob", "eve", "eli", "sam", "admin1", "admin2")


class ScriptedClock:
    """The time the script says; each reading moves on one second, as real time would."""

    def __init__(self) -> None:
        self.moment = datetime(2027, 1, 3, 9, 0, tzinfo=UTC)

    def set(self, year: int, month: int, day: int, hour: int, minute: int = 0) -> None:
        self.moment = datetime(year, month, day, hour, minute, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


@dataclass
class Scenario:
    """The agency after the script, and the reports made from it."""

    agency: Agency
    home: Path
    search_ids: dict[str, int] = field(default_factory=dict)
    subject_refs: list[str] = field(default_factory=list)
    before_purge_copy: Path | None = None
    usage: UsageReport | None = None
    usage_after_purge: UsageReport | None = None
    transparency: TransparencyReport | None = None
    key: str = ""


def form(case: int, *, unit: str, agency: str = HOME, **changes: str) -> RequestForm:
    base = RequestForm(
        case_number=CASES[case - 1],
        offence_category="robbery",
        purpose="investigative_lead",
        requesting_agency=agency,
        requesting_unit=unit,
        probe_kind="still_photo",
    )
    return replace(base, **changes)


def build(root: Path, faces_dir: Path) -> Scenario:
    agency = make_agency(root)
    clock = ScriptedClock()
    workflow = agency.workflow
    workflow.clock = clock
    agency.add_user(new_user("bob", "analyst", unit="Burglary"))
    clock.set(2027, 1, 2, 12)
    # Three a day, so that ana's fourth request on Monday meets the daily quota.
    agency.set_policy(
        policy_file(root, "two-reviewers", source_type="evaluation",
                    per_user_per_day="per_user_per_day = 3")
    )  # fmt: skip
    people = people_with_photos(faces_dir, 5)
    clock.set(2027, 1, 3, 9)
    enrol_files(
        workflow,
        agency["admin1"],
        [EnrolmentRequest(photos_of(person)[0], person.name) for person in people[:4]],
        PROVENANCE,
    )
    probe = [photos_of(person)[1] for person in people]
    scenario = Scenario(agency=agency, home=workflow.workspace.home)
    scenario.subject_refs = [person.name for person in people]
    ids = scenario.search_ids
    ana, bob, eve, eli, sam = (agency[n] for n in ("ana", "bob", "eve", "eli", "sam"))

    # Monday 2027-01-04 (ISO week 2027-W01): ana, all within working hours.
    clock.set(2027, 1, 4, 9)
    ids["S1"] = request_search(workflow, ana, probe[0], form(1, unit="Robbery")).search_id
    clock.set(2027, 1, 4, 9, 30)
    ids["S2"] = request_search(workflow, ana, probe[0], form(2, unit="Robbery")).search_id
    clock.set(2027, 1, 4, 10)
    decide_approval(workflow, sam, ids["S2"], approve=True, reason="new still in the file")
    clock.set(2027, 1, 4, 10, 5)
    run_approved(workflow, ana, ids["S2"])
    clock.set(2027, 1, 4, 11)
    outside = form(3, unit="Robbery", agency=SHERIFF)
    ids["S3"] = request_search(workflow, ana, probe[1], outside).search_id
    clock.set(2027, 1, 4, 12)
    ids["S4"] = request_search(workflow, ana, probe[0], form(4, unit="Robbery")).search_id
    # bob: Tuesday 22:30 and Saturday are unusual hours.
    clock.set(2027, 1, 5, 22, 30)
    bad = form(5, unit="Burglary", offence_category="shoplifting", purpose="curiosity")
    ids["S5"] = request_search(workflow, bob, probe[2], bad).search_id
    clock.set(2027, 1, 9, 10)
    ids["S6"] = request_search(workflow, bob, probe[3], form(6, unit="Burglary")).search_id
    # Monday 2027-01-11 (2027-W02).
    clock.set(2027, 1, 11, 8)
    ids["S7"] = request_search(workflow, bob, probe[0], form(7, unit="Burglary")).search_id
    clock.set(2027, 1, 11, 9)
    decide_approval(workflow, sam, ids["S7"], approve=False, reason="nothing new")
    clock.set(2027, 1, 11, 23)
    ids["S8"] = request_search(workflow, bob, probe[2], form(8, unit="Burglary")).search_id
    clock.set(2027, 1, 12, 10)
    verify_form = form(9, unit="Robbery")
    ids["S9"] = request_verify(
        workflow, eve, photos_of(people[4])[0], probe[4], verify_form
    ).search_id
    # Review: S6 released by two examiners, S1 reviewed and not a match.
    clock.set(2027, 1, 12, 11)
    view_candidates(workflow, eve, ids["S6"])
    record_verdict(workflow, eve, ids["S6"], 1, "possible_match", "ear and jaw agree")
    record_verdict(workflow, eli, ids["S6"], 1, "possible_match", "scar agrees")
    release_lead(workflow, eve, ids["S6"], 1, "two examiners agree")
    # bob, who asked for S6, records what came of its lead: excluded, then confirmed.
    clock.set(2027, 1, 13, 9)
    record_lead_outcome(workflow, bob, ids["S6"], 1, "excluded", "alibi at first sight")
    record_lead_outcome(
        workflow, bob, ids["S6"], 1, "confirmed_by_other_evidence", "the alibi fell; DNA agrees"
    )
    clock.set(2027, 1, 12, 12)
    view_candidates(workflow, eli, ids["S1"])
    record_verdict(workflow, eli, ids["S1"], 1, "not_a_match", "different nose")
    # Ten days later: checkpoint, so S2, S3 and S8 are a week overdue for review.
    clock.set(2027, 1, 22, 9)
    checkpoint_now(workflow, agency["admin1"])
    scenario.key = verifier_key(workflow)
    scenario.usage = usage_report(workflow.workspace, scenario.key, PERIOD)

    # A copy before anything is purged, for the tampering tests.
    workflow.workspace.engine.dispose()
    scenario.before_purge_copy = root / "copy"
    copy_workspace(workflow.workspace.home, scenario.before_purge_copy)

    # Expunge one person; retention purges every probe and search record (1 day each).
    clock.set(2027, 1, 25, 9)
    expunge_subject(workflow, agency["admin1"], people[3].name)
    agency.set_policy(
        policy_file(root, "two-reviewers", source_type="evaluation",
                    per_user_per_day="per_user_per_day = 3", probe_days="probe_days = 1",
                    search_record_days="search_record_days = 1")
    )  # fmt: skip
    clock.set(2027, 1, 26, 9)
    run_retention(workflow, agency["admin1"], now=datetime(2027, 1, 26, 9, tzinfo=UTC))
    clock.set(2027, 1, 26, 10)
    checkpoint_now(workflow, agency["admin1"])
    scenario.usage_after_purge = usage_report(workflow.workspace, scenario.key, PERIOD)
    scenario.transparency = transparency_report(workflow.workspace, scenario.key, 2027)
    return scenario
