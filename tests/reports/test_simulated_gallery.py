"""A simulated workspace's synthetic gallery reconciles with its audit log."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from candor.reports import UsageQuery, usage_report
from candor.simulation.synthetic import load_synthetic_gallery
from tests.agency import make_agency


def test_synthetic_images_are_accounted_for_in_the_log(tmp_path: Path) -> None:
    agency = make_agency(tmp_path, purpose="simulation")
    load_synthetic_gallery(agency.workflow, agency["admin1"], subjects=30)
    from candor.workflow.audit_ops import checkpoint_now, verifier_key

    checkpoint_now(agency.workflow, agency["admin1"])
    today = agency.workflow.today()
    report = usage_report(
        agency.workflow.workspace,
        verifier_key(agency.workflow),
        UsageQuery(date_from=date(today.year, 1, 1), date_to=today),
    )
    assert report is not None
    agency.workflow.close()
