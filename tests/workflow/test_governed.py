"""Accountable search end to end: every rule of the path from request to released lead."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import AuditEntry, Provenance
from candor.workflow import (
    EnrolmentRequest,
    PermissionDeniedError,
    RequestForm,
    decide_approval,
    enrol_files,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
    request_verify,
    run_approved,
    view_candidates,
)
from candor.workflow.governed import RequestStateError
from tests.agency import Agency, make_agency, new_user
from tests.support import people_with_photos, photos_of

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

FORM = RequestForm(
    case_number="2026-000123",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
PROVENANCE = Provenance(
    source_type="evaluation",
    source_ref="lfw-dev (tests)",
    legal_basis="research use under the LFW terms",
    collected_on=date(2024, 1, 1),
    retain_until=date(2030, 1, 1),
)


@pytest.fixture
def agency(tmp_path: Path, faces_dir: Path) -> Agency:
    made = make_agency(tmp_path)
    people = people_with_photos(faces_dir, 6)
    requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
    enrol_files(made.workflow, made["admin1"], requests, PROVENANCE)
    made.people = people  # type: ignore[attr-defined]
    yield made
    made.workflow.close()


def probe(agency: Agency, person: int = 2, photo: int = 1) -> Path:
    return photos_of(agency.people[person])[photo]  # type: ignore[attr-defined]


def actions(agency: Agency) -> list[dict[str, object]]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [json.loads(body) for body in bodies]


def test_search_for_an_outside_agency_is_denied_under_the_moratorium(
    tmp_path: Path, faces_dir: Path
) -> None:
    agency = make_agency(tmp_path, example="moratorium")
    outside = replace(FORM, requesting_agency="Neighbouring County Sheriff")
    outcome = request_search(agency.workflow, agency["ana"], probe_path(faces_dir), outside)
    assert outcome.status == "denied"
    assert [r["code"] for r in outcome.decision["reasons"]] == ["outside_agency"]
    entries = actions(agency)
    assert [e["action"] for e in entries[-2:]] == ["search.requested", "policy.decided"]
    assert entries[-1]["details"]["decision"]["outcome"] == "deny"


def probe_path(faces_dir: Path) -> Path:
    return photos_of(people_with_photos(faces_dir, 1)[0])[1]


def test_repeat_search_needs_a_supervisor_then_runs_once(agency: Agency) -> None:
    first = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    assert first.status == "completed"
    assert first.candidates_found == 6

    again = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    assert again.status == "pending_approval"
    assert again.decision["earlier_search_id"] == first.search_id
    assert [r["code"] for r in again.decision["reasons"]] == ["repeat_search"]

    with pytest.raises(RequestStateError, match="pending_approval"):
        run_approved(agency.workflow, agency["ana"], again.search_id)
    with pytest.raises(PermissionDeniedError):
        decide_approval(agency.workflow, agency["ana"], again.search_id, approve=True, reason="me")
    approved = decide_approval(
        agency.workflow, agency["sam"], again.search_id, approve=True, reason="new lead"
    )
    assert approved.status == "approved"
    with pytest.raises(PermissionDeniedError):
        run_approved(agency.workflow, agency["sam"], again.search_id)  # not the requester
    ran = run_approved(agency.workflow, agency["ana"], again.search_id)
    assert ran.status == "completed"
    with pytest.raises(RequestStateError):
        run_approved(agency.workflow, agency["ana"], again.search_id)
    names = [e["action"] for e in actions(agency)]
    assert names[-2:] == ["search.approved", "search.run"]


def test_two_examiners_release_a_lead_and_the_requester_cannot_review(agency: Agency) -> None:
    outcome = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    with pytest.raises(PermissionDeniedError):
        view_candidates(agency.workflow, agency["ana"], outcome.search_id)
    listing = view_candidates(agency.workflow, agency["eve"], outcome.search_id)
    top = listing.candidates[0]
    assert top.subject_ref == agency.people[2].name  # type: ignore[attr-defined]

    record_verdict(agency.workflow, agency["eve"], outcome.search_id, 1, "possible_match", "ears")
    with pytest.raises(RequestStateError, match="cannot be released"):
        release_lead(agency.workflow, agency["eve"], outcome.search_id, 1, "one is not enough")
    record_verdict(agency.workflow, agency["eli"], outcome.search_id, 1, "possible_match", "scar")
    with pytest.raises(RequestStateError, match="already"):
        record_verdict(agency.workflow, agency["eli"], outcome.search_id, 1, "not_a_match", "x")
    released = release_lead(agency.workflow, agency["eve"], outcome.search_id, 1, "agreed")
    assert released.released

    leads = released_leads(agency.workflow, agency["ana"], outcome.search_id)
    assert [lead.rank for lead in leads.candidates] == [1]
    assert "not identifications" in leads.notice
    names = [e["action"] for e in actions(agency)]
    assert names.count("candidate.verdict") == 2
    assert names[-2:] == ["lead.released", "leads.viewed"]


def test_an_examiner_cannot_review_their_own_search(agency: Agency) -> None:
    outcome = request_search(agency.workflow, agency["eve"], probe(agency, 3), FORM)
    with pytest.raises(PermissionDeniedError, match="your own"):
        record_verdict(agency.workflow, agency["eve"], outcome.search_id, 1, "possible_match", "x")
    with pytest.raises(PermissionDeniedError):
        view_candidates(agency.workflow, agency["eve"], outcome.search_id)


def test_disagreement_blocks_release(agency: Agency) -> None:
    outcome = request_search(agency.workflow, agency["ana"], probe(agency, 4), FORM)
    record_verdict(agency.workflow, agency["eve"], outcome.search_id, 1, "possible_match", "nose")
    record_verdict(agency.workflow, agency["eli"], outcome.search_id, 1, "not_a_match", "jaw")
    agency.add_user(new_user("ezra", "examiner"))
    record_verdict(agency.workflow, agency["ezra"], outcome.search_id, 1, "possible_match", "eyes")
    with pytest.raises(RequestStateError, match="disagree"):
        release_lead(agency.workflow, agency["eve"], outcome.search_id, 1, "two agree")


def test_expired_certificate_blocks_searching(agency: Agency) -> None:
    expired = agency.add_user(new_user("old", "analyst", expires=date.today() - timedelta(days=1)))
    outcome = request_search(agency.workflow, expired, probe(agency), FORM)
    assert outcome.status == "denied"
    assert "no_certificate" in [r["code"] for r in outcome.decision["reasons"]]


def test_verify_is_a_governed_request(agency: Agency) -> None:
    person = agency.people[1]  # type: ignore[attr-defined]
    outcome = request_verify(
        agency.workflow, agency["ana"], photos_of(person)[0], photos_of(person)[1], FORM
    )
    assert outcome.status == "completed"
    assert outcome.verification is not None
    assert set(outcome.verification) >= {"score", "passed", "threshold"}
    assert [e["action"] for e in actions(agency)][-3:] == [
        "verify.requested",
        "policy.decided",
        "verify.run",
    ]


def test_audit_entries_hold_no_subject_names(agency: Agency) -> None:
    outcome = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    view_candidates(agency.workflow, agency["eve"], outcome.search_id)
    text = "\n".join(json.dumps(e) for e in actions(agency))
    for person in agency.people:  # type: ignore[attr-defined]
        assert person.name not in text


def test_a_supervisor_cannot_approve_their_own_request(agency: Agency) -> None:
    duo = agency.add_user(new_user("duo", "analyst", "supervisor"))
    request_search(agency.workflow, duo, probe(agency, 5), FORM)
    again = request_search(agency.workflow, duo, probe(agency, 5), FORM)
    assert again.status == "pending_approval"
    with pytest.raises(PermissionDeniedError, match="your own"):
        decide_approval(agency.workflow, duo, again.search_id, approve=True, reason="mine")
    rejected = decide_approval(
        agency.workflow, agency["sam"], again.search_id, approve=False, reason="no new facts"
    )
    assert rejected.status == "rejected"
    with pytest.raises(RequestStateError):
        run_approved(agency.workflow, duo, again.search_id)
