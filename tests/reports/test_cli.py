"""`candor report usage|transparency`: permission, output forms, and the audit entry."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.store import AuditEntry
from candor.workflow.accounts import login
from tests.agency import PASSWORD
from tests.reports.scenario import SHERIFF, Scenario

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("reports")]


def run_as(scenario: Scenario, user: str, *args: str) -> tuple[int, str]:
    token = login(scenario.agency.workflow, user, PASSWORD).token
    save_token(scenario.home, token)
    result = CliRunner().invoke(app, list(args), env={"CANDOR_HOME": str(scenario.home)})
    return result.exit_code, result.stdout


def last_entry(scenario: Scenario) -> dict[str, object]:
    with scenario.agency.workflow.workspace.session() as session:
        body = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq.desc())).first()
    assert body is not None
    entry: dict[str, object] = json.loads(body)
    return entry


def test_usage_report_writes_every_form_and_is_audited(scenario: Scenario, tmp_path: Path) -> None:
    page, table = tmp_path / "usage.html", tmp_path / "usage.csv"
    code, out = run_as(
        scenario, "sam", "report", "usage", "--from", "2027-01-01", "--to", "2027-01-31",
        "--html", str(page), "--csv", str(table), "--json",
    )  # fmt: skip
    assert code == 0, out
    document = json.loads(out)
    assert document["report"]["totals"]["requested"] == 9
    assert "3 users requested 9 searches" in page.read_text()
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert next(r for r in rows if r["breakdown"] == "total")["requested"] == "9"
    entry = last_entry(scenario)
    assert entry["action"] == "report.generated"
    assert entry["actor"] == "sam"
    assert entry["details"] == {
        "kind": "usage",
        "period": {"from": "2027-01-01", "to": "2027-01-31"},
        "checkpoint": document["report"]["as_of"]["checkpoint_size"],
    }


def test_usage_report_prints_tables_at_the_terminal(scenario: Scenario) -> None:
    code, out = run_as(
        scenario, "sam", "report", "usage", "--from", "2027-01-01", "--to", "2027-01-31",
        "--user", "bob",
    )  # fmt: skip
    assert code == 0, out
    assert "bob requested 4 searches between 2027-01-01 and 2027-01-31" in out
    assert "By user" in out and "Burglary" in out
    assert "searches at unusual hours" in out
    for section in ("Flags, ranked", "This period against the previous one", "Sparing use",
                    "Repeat searches: who decided", "Denials by reason, per user",
                    "Examiner agreement", "Time to review", "What came of each lead",
                    "Candidate lists overdue for review: 1"):  # fmt: skip
        assert section in out, section


def test_transparency_report_json_and_audit(scenario: Scenario, tmp_path: Path) -> None:
    page = tmp_path / "public.html"
    code, out = run_as(
        scenario, "sam", "report", "transparency", "--year", "2027", "--html", str(page), "--json"
    )
    assert code == 0, out
    assert json.loads(out)["report"]["searches"] == 9
    assert "fewer than 5 were denied" in page.read_text()
    entry = last_entry(scenario)
    assert entry["action"] == "report.generated"
    assert entry["details"]["period"] == {"year": 2027}  # type: ignore[index]


def test_transparency_report_published_for_the_public(scenario: Scenario) -> None:
    code, out = run_as(
        scenario, "sam", "report", "transparency", "--year", "2027", "--publish", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["published"] is True
    entry = last_entry(scenario)
    assert entry["action"] == "report.published"
    details: Any = entry["details"]
    assert details["period"] == {"year": 2027}
    assert details["document"]["searches"] == 9
    assert details["document"]["outside_agencies"] == {SHERIFF: "<5"}


def test_an_analyst_may_not_read_reports(scenario: Scenario) -> None:
    code, out = run_as(
        scenario, "ana", "report", "usage", "--from", "2027-01-01", "--to", "2027-01-31", "--json"
    )
    assert code == 1
    assert "may not reports.read" in json.loads(out)["error"]


def test_a_reversed_period_is_refused(scenario: Scenario) -> None:
    code, out = run_as(
        scenario, "sam", "report", "usage", "--from", "2027-02-01", "--to", "2027-01-01", "--json"
    )
    assert code == 1
    assert "before it starts" in json.loads(out)["error"]
