"""Retention purges what the policy's periods say is due, audited, leaving no copies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import AuditEntry, GalleryImage, SearchRequest, sha256_hex
from candor.workflow import EnrolmentRequest, enrol_files, request_search, run_retention
from tests.agency import Agency, make_agency
from tests.support import files_containing, people_with_photos, photos_of
from tests.workflow.test_governed import FORM, PROVENANCE

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


@pytest.fixture
def agency(tmp_path: Path) -> Agency:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def last_actions(agency: Agency, count: int) -> list[dict[str, object]]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [json.loads(body) for body in bodies[-count:]]


def test_probes_then_records_then_gallery_are_purged_when_due(
    agency: Agency, faces_dir: Path
) -> None:
    workflow = agency.workflow
    people = people_with_photos(faces_dir, 3)
    enrol_files(
        workflow,
        agency["admin1"],
        [EnrolmentRequest(photos_of(p)[0], p.name) for p in people],
        PROVENANCE,
    )
    probe = photos_of(people[0])[1]
    outcome = request_search(workflow, agency["ana"], probe, FORM)
    home = workflow.workspace.home
    probe_bytes = probe.read_bytes()
    # Sealed at rest: the photo is never in the clear; its sealed file is what must go.
    assert files_containing(home, probe_bytes) == []
    probe_sha256 = sha256_hex(probe_bytes)
    sealed_probe = workflow.workspace.vault.probe_path(probe_sha256).read_bytes()
    assert files_containing(home / "probes", sealed_probe)

    nothing = run_retention(workflow, agency["admin1"])
    assert nothing.probes_purged == ()
    assert last_actions(agency, 1)[0]["action"] == "retention.run"

    # two-reviewers: probes 90 days, search records 2555 days, gallery retain_until 2030.
    later = datetime.now(UTC) + timedelta(days=91)
    report = run_retention(workflow, agency["admin1"], now=later)
    assert report.probes_purged == (outcome.search_id,)
    assert files_containing(home, sealed_probe) == []
    with workflow.workspace.session() as session:
        # Its key is gone too: a copy of the sealed file elsewhere opens under nothing.
        assert probe_sha256 not in workflow.workspace.keys.probe_owners(session)
    with workflow.workspace.session() as session:
        row = session.get(SearchRequest, outcome.search_id)
        assert row is not None and row.probe_template is None and row.probe_purged_at

    much_later = datetime.now(UTC) + timedelta(days=2556)
    report = run_retention(workflow, agency["admin1"], now=much_later)
    assert report.search_records_purged == (outcome.search_id,)
    assert len(report.gallery_images_purged) == 3
    assert len(report.subjects_removed) == 3
    with workflow.workspace.session() as session:
        assert session.scalars(select(GalleryImage)).all() == []
    assert len(workflow.index) == 0
    actions = [entry["action"] for entry in last_actions(agency, 3)]
    assert actions == [
        "retention.search_records_purged",
        "retention.gallery_purged",
        "retention.run",
    ]
    for person in people:
        assert files_containing(home, photos_of(person)[0].read_bytes()) == []
