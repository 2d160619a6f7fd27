"""A report refuses when the log does not verify or the store disagrees with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from candor.reports import (
    LogVerificationError,
    NoCheckpointError,
    ReconciliationError,
    ReportError,
    UsageReport,
    usage_report,
)
from candor.store import AuditEntry, Workspace
from candor.workflow import PermissionDeniedError
from candor.workflow.reporting import ReportRefusedError, ReportSource, generate_report
from tests.reports.scenario import PERIOD, Scenario
from tests.support import raw_sql

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("reports")]


def tamper(home: Path, sql: str, *args: object) -> None:
    changed, _ = raw_sql(home, sql, *args)
    assert changed >= 1, "the tampering changed nothing"


def report(home: Path, key: str) -> UsageReport:
    with Workspace.open(home) as workspace:
        return usage_report(workspace, key, PERIOD)


def test_the_untouched_copy_reports(scenario: Scenario, copy: Path) -> None:
    assert report(copy, scenario.key).totals.requested == 9


def test_a_changed_status_is_refused(scenario: Scenario, copy: Path) -> None:
    s1 = scenario.search_ids["S1"]
    tamper(copy, "UPDATE search_requests SET status = 'denied' WHERE id = ?", s1)
    with pytest.raises(ReconciliationError) as caught:
        report(copy, scenario.key)
    error = caught.value
    assert (error.subject, error.field) == (f"search {s1}", "status")
    assert (error.expected, error.found) == ("completed", "denied")


def test_a_removed_search_is_refused(scenario: Scenario, copy: Path) -> None:
    s9 = scenario.search_ids["S9"]
    tamper(copy, "DELETE FROM search_requests WHERE id = ?", s9)
    with pytest.raises(ReconciliationError, match=f"search {s9}, presence"):
        report(copy, scenario.key)


def test_a_changed_lead_outcome_is_refused(scenario: Scenario, copy: Path) -> None:
    tamper(copy, "UPDATE lead_outcomes SET outcome = 'no_action' WHERE outcome = 'excluded'")
    tamper(
        copy,
        "UPDATE lead_outcomes SET outcome = 'excluded' "
        "WHERE outcome = 'confirmed_by_other_evidence'",
    )
    with pytest.raises(ReconciliationError, match="lead outcomes"):
        report(copy, scenario.key)


def test_a_removed_verdict_is_refused(scenario: Scenario, copy: Path) -> None:
    tamper(copy, "DELETE FROM verdicts WHERE verdict = 'not_a_match'")
    with pytest.raises(ReconciliationError, match="verdicts"):
        report(copy, scenario.key)


def test_a_changed_offence_is_refused(scenario: Scenario, copy: Path) -> None:
    s5 = scenario.search_ids["S5"]
    tamper(copy, "UPDATE search_requests SET offence_category = 'robbery' WHERE id = ?", s5)
    with pytest.raises(ReconciliationError, match="offence category"):
        report(copy, scenario.key)


def test_an_added_gallery_image_is_refused(scenario: Scenario, copy: Path) -> None:
    tamper(copy, "UPDATE gallery_images SET source_type = 'booking_photo' WHERE id = 1")
    with pytest.raises(ReconciliationError, match="gallery image 1"):
        report(copy, scenario.key)


def test_an_edited_log_entry_is_refused(scenario: Scenario, copy: Path) -> None:
    with Workspace.open(copy) as workspace, workspace.session() as session:
        rows = session.execute(select(AuditEntry.seq, AuditEntry.body)).all()
    seq, body = next((seq, body) for seq, body in rows if b"shoplifting" in body)
    tamper(
        copy,
        "UPDATE audit_entries SET body = ? WHERE seq = ?",
        body.replace(b"shoplifting", b"robbery!!!!"),
        seq,
    )
    with pytest.raises(LogVerificationError) as caught:
        report(copy, scenario.key)
    assert caught.value.first_bad_seq is not None


def test_a_log_without_checkpoints_is_refused(scenario: Scenario, copy: Path) -> None:
    tamper(copy, "DELETE FROM audit_checkpoints")
    with pytest.raises(NoCheckpointError):
        report(copy, scenario.key)


def test_a_refusal_is_recorded_and_raised_through_the_workflow(
    scenario: Scenario, copy: Path
) -> None:
    from candor.workflow import Workflow

    tamper(copy, "UPDATE search_requests SET status = 'approved' WHERE id = ?",
           scenario.search_ids["S3"])  # fmt: skip
    sam = scenario.agency["sam"]
    with Workflow(Workspace.open(copy)) as workflow:

        def compute(source: ReportSource) -> UsageReport:
            return usage_report(source.workspace, source.verifier_key, PERIOD)

        with pytest.raises(ReportRefusedError, match="status"):
            generate_report(workflow, sam, "usage", PERIOD.period(), compute,
                            refusals=(ReportError,))  # fmt: skip
        with workflow.workspace.session() as session:
            last = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq.desc())).first()
    assert last is not None and b'"action":"report.refused"' in last
    assert b'"from":"2027-01-01"' in last


def test_reports_need_the_reports_read_permission(scenario: Scenario, copy: Path) -> None:
    from candor.workflow import Workflow

    with Workflow(Workspace.open(copy)) as workflow, pytest.raises(PermissionDeniedError):
        generate_report(
            workflow, scenario.agency["ana"], "usage", PERIOD.period(),
            lambda source: usage_report(source.workspace, source.verifier_key, PERIOD),
            refusals=(ReportError,),
        )  # fmt: skip
