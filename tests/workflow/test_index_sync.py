"""Each search uses an index in step with the committed gallery, whoever changed it.

A running server and `candor enrol` (or `candor expunge`) are two processes with two
Workflows on one workspace; here they are two Workflow objects, which share nothing
but the folder, as two processes do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import AuditEntry, Workspace
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    RequestForm,
    Workflow,
    enrol_files,
    expunge_subject,
    request_search,
    view_candidates,
)
from candor.workflow.demo_photos import probe_variants, save_photos
from tests.agency import Agency, make_agency
from tests.support import evaluation_provenance

pytestmark = pytest.mark.xdist_group("workflow")

FORM = RequestForm(
    case_number="2026-000777",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
PROVENANCE = evaluation_provenance()


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    # collins-00, hopper-01, collins-02, hopper-03, collins-04, hopper-05
    return save_photos(probe_variants(6), tmp_path / "photos")


def enrol(workflow: Workflow, agency: Agency, photo: Path, subject_ref: str) -> int:
    summary = enrol_files(
        workflow, agency["admin1"], [EnrolmentRequest(photo, subject_ref)], PROVENANCE
    )
    (outcome,) = summary.outcomes
    assert outcome.status is EnrolmentStatus.ENROLLED, outcome.reason
    assert outcome.template_id is not None
    return outcome.template_id


def another_workflow(agency: Agency) -> Workflow:
    """A second Workflow on the same folder: what another process opens."""
    return Workflow(Workspace.open(agency.workflow.workspace.home))


def search(agency: Agency, photo: Path) -> tuple[list[str | None], int]:
    """The candidates' subject references, best first, and the gallery size searched."""
    outcome = request_search(agency.workflow, agency["ana"], photo, FORM)
    assert outcome.status == "completed", outcome.decision
    review = view_candidates(agency.workflow, agency["eve"], outcome.search_id)
    return [candidate.subject_ref for candidate in review.candidates], gallery_size(
        agency, outcome.search_id
    )


def gallery_size(agency: Agency, search_id: int) -> int:
    with agency.workflow.workspace.session() as session:
        for body in session.scalars(select(AuditEntry.body)):
            entry = json.loads(body)
            if entry["action"] == "search.run" and entry["objects"] == {"search": search_id}:
                return int(entry["details"]["gallery_size"])
    raise AssertionError(f"search {search_id} has no search.run entry")


def test_a_search_sees_a_template_another_workflow_enrolled(
    agency: Agency, photos: dict[str, Path]
) -> None:
    enrol(agency.workflow, agency, photos["collins-00.jpg"], "COLLINS")
    assert search(agency, photos["collins-02.jpg"]) == (["COLLINS"], 1)

    other = another_workflow(agency)
    try:
        enrol(other, agency, photos["hopper-01.jpg"], "HOPPER")
    finally:
        other.close()

    candidates, size = search(agency, photos["hopper-03.jpg"])
    assert (candidates[0], size) == ("HOPPER", 2)


def test_a_template_another_workflow_expunged_is_never_searched(
    agency: Agency, photos: dict[str, Path]
) -> None:
    enrol(agency.workflow, agency, photos["collins-00.jpg"], "COLLINS")
    hopper = enrol(agency.workflow, agency, photos["hopper-01.jpg"], "HOPPER")
    other = another_workflow(agency)
    try:
        # The other Workflow holds the index folder: this one's index is in memory,
        # where no scrub of the folder's files can reach it.
        assert len(other.index) == 2
        candidates, size = search(agency, photos["hopper-03.jpg"])
        assert (candidates[0], size) == ("HOPPER", 2)
        assert agency.workflow.index.folder is None

        expunge_subject(other, agency["admin1"], "HOPPER")
    finally:
        other.close()

    assert search(agency, photos["collins-04.jpg"]) == (["COLLINS"], 1)
    assert hopper not in agency.workflow.index


def test_a_reopened_index_catches_up_from_the_change_it_recorded(
    agency: Agency, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    collins = enrol(agency.workflow, agency, photos["collins-00.jpg"], "COLLINS")
    folder = agency.workflow.index_folder(agency.workflow.engine.model)
    assert list(agency.workflow.index.ids) == [collins]
    agency.workflow.close()

    # Changed while no index was open: an enrolment, and an expungement.
    other = another_workflow(agency)
    try:
        hopper = enrol(other, agency, photos["hopper-01.jpg"], "HOPPER")
        expunge_subject(other, agency["admin1"], "COLLINS")
    finally:
        other.close()

    def no_full_reconcile(*_: object) -> None:
        raise AssertionError("the index was reconciled in full, not caught up")

    monkeypatch.setattr(Workflow, "_reconcile", no_full_reconcile)
    agency.workflow = another_workflow(agency)
    index = agency.workflow.index
    assert index.folder == folder
    assert list(index.ids) == [hopper]
    assert json.loads((folder / "meta.json").read_text())["change_seq"] == index.change_seq


def test_an_index_folder_that_records_no_change_is_reconciled_in_full(
    agency: Agency, photos: dict[str, Path]
) -> None:
    collins = enrol(agency.workflow, agency, photos["collins-00.jpg"], "COLLINS")
    folder = agency.workflow.index_folder(agency.workflow.engine.model)
    assert len(agency.workflow.index) == 1
    agency.workflow.close()
    # As an index folder written before the change log existed.
    meta = json.loads((folder / "meta.json").read_text())
    del meta["change_seq"]
    (folder / "meta.json").write_text(json.dumps(meta))

    other = another_workflow(agency)
    try:
        hopper = enrol(other, agency, photos["hopper-01.jpg"], "HOPPER")
    finally:
        other.close()

    agency.workflow = another_workflow(agency)
    assert sorted(agency.workflow.index.ids) == sorted([collins, hopper])
