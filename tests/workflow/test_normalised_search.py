"""Searches under a normalising recipe: cosine below the cohort size, both scores above it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from candor.faces.recipe import RECIPES
from candor.index.cohort import COHORT_SIZE, CohortNormaliser, gallery_cohort_ids, score_name
from candor.simulation.synthetic import load_synthetic_gallery
from candor.store import AuditEntry, Provenance, SearchRequest
from candor.store.vault import probe_template_context
from candor.workflow import EnrolmentRequest, RequestForm, enrol_files, request_search
from candor.workflow.governed import view_candidates
from tests.agency import Agency, make_agency
from tests.support import people_with_photos, photos_of

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

FORM = RequestForm(
    case_number="2026-000777",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)


@pytest.fixture
def agency(tmp_path: Path, faces_dir: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path, purpose="benchmark")
    made.workflow.recipe = RECIPES["cohort-norm"]
    people = people_with_photos(faces_dir, 3)
    provenance = Provenance(
        source_type="benchmark",
        source_ref="lfw-dev (tests)",
        legal_basis="research use under the LFW terms",
        collected_on=date(2024, 1, 1),
        retain_until=date(2030, 1, 1),
    )
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    enrol_files(made.workflow, made["admin1"], requests, provenance)
    made.people = people  # type: ignore[attr-defined]
    yield made
    made.workflow.close()


def search_row(agency: Agency, search_id: int) -> SearchRequest:
    with agency.workflow.workspace.session() as session:
        row = session.get(SearchRequest, search_id)
        assert row is not None
        session.expunge(row)
        return row


def decided_threshold(agency: Agency, search_id: int) -> dict[str, object]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    for body in map(json.loads, bodies):
        if body["action"] == "policy.decided" and body["objects"]["search"] == search_id:
            threshold = body["details"]["threshold"]
            assert isinstance(threshold, dict)
            return threshold
    raise AssertionError(f"no policy.decided entry for search {search_id}")


def test_a_small_gallery_scores_cosines_and_a_large_one_both(agency: Agency) -> None:
    workflow = agency.workflow
    probe = photos_of(agency.people[0])[1]  # type: ignore[attr-defined]
    small = request_search(workflow, agency["ana"], probe, FORM)
    assert small.status == "completed"
    assert search_row(agency, small.search_id).threshold_score == "cosine"
    assert decided_threshold(agency, small.search_id)["score"] == "cosine"
    small_list = view_candidates(workflow, agency["eve"], small.search_id)
    assert all(c.normalised_score is None for c in small_list.candidates)

    load_synthetic_gallery(workflow, agency["admin1"], subjects=COHORT_SIZE, seed=3)
    assert len(workflow.index) >= COHORT_SIZE
    normalised_kind = score_name(30)
    assert workflow.score_in_use == normalised_kind

    # Another person's photo: the same probe again would be a repeat search, held for approval.
    second = photos_of(agency.people[1])[1]  # type: ignore[attr-defined]
    large = request_search(workflow, agency["ana"], second, FORM, top=10)
    assert large.status == "completed"
    row = search_row(agency, large.search_id)
    assert row.threshold_score == normalised_kind
    assert decided_threshold(agency, large.search_id)["score"] == normalised_kind
    assert large.threshold is not None and large.threshold["score"] == normalised_kind
    assert row.threshold is not None
    assert "normalised score" in (large.threshold_meaning or "")

    with workflow.workspace.session() as session:
        key = workflow.workspace.keys.probe_key(session, row.probe_sha256)
    context = probe_template_context(row.probe_sha256, row.probe_model_key or "")
    query = workflow.workspace.vault.decode_template(row.probe_template or b"", 128, key, context)
    members = gallery_cohort_ids(workflow.index.ids)
    offset = CohortNormaliser(workflow.index.vectors_of(members), 30).offset(query)
    listed = view_candidates(workflow, agency["eve"], large.search_id).candidates
    assert listed[0].subject_ref == agency.people[1].name  # type: ignore[attr-defined]
    for candidate in listed:
        assert candidate.normalised_score is not None
        assert candidate.normalised_score == pytest.approx(candidate.score - offset, abs=1e-5)
        assert candidate.above_threshold == (candidate.normalised_score >= row.threshold)
    # One place per subject, best first.
    assert len({c.subject_id for c in listed}) == len(listed)
    assert [c.score for c in listed] == sorted((c.score for c in listed), reverse=True)
    assert np.isfinite(offset) and 0.0 < offset < 1.0
