"""Accountable search end to end: every rule of the path from request to released lead."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Connection, event, func, select

from candor.store import AuditCheckpoint, AuditEntry, Provenance, SearchRequest
from candor.store import Candidate as CandidateRow
from candor.store.vault import probe_template_context
from candor.workflow import (
    EnrolmentRequest,
    PermissionDeniedError,
    RequestForm,
    audit_trail,
    decide_approval,
    enrol_files,
    governed,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
    request_verify,
    run_approved,
    view_candidates,
)
from candor.workflow.accounts import active_policy
from candor.workflow.audit_ops import verify_log
from candor.workflow.governed import RequestStateError
from candor.workflow.probes import probe_for
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


def test_a_search_allowed_at_once_commits_once(agency: Agency) -> None:
    engine = agency.workflow.workspace.engine
    commits: list[Connection] = []

    def count(connection: Connection) -> None:
        commits.append(connection)

    event.listen(engine, "commit", count)
    try:
        outcome = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    finally:
        event.remove(engine, "commit", count)
    assert outcome.status == "completed"
    assert outcome.candidates_found == 6
    assert len(commits) == 1
    entries = actions(agency)
    assert [e["action"] for e in entries[-3:]] == [
        "search.requested",
        "policy.decided",
        "search.run",
    ]
    assert [e["objects"] for e in entries[-3:]] == [
        {"search": outcome.search_id, "case": FORM.case_number},
        {"search": outcome.search_id},
        {"search": outcome.search_id},
    ]


def _written(agency: Agency) -> dict[str, int]:
    with agency.workflow.workspace.session() as session:
        return {
            table.__name__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (SearchRequest, CandidateRow, AuditEntry, AuditCheckpoint)
        }


def _failing_owners(*args: object) -> dict[int, tuple[int, int]]:
    raise RuntimeError("failed after the request and its decision were written")


@pytest.mark.parametrize("where", ["candidates", "run entry"])
def test_a_failed_run_leaves_no_trace_of_its_request(
    agency: Agency, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    agency.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    before = _written(agency)
    if where == "candidates":
        monkeypatch.setattr(governed, "_template_owners", _failing_owners)
    else:
        real_record = audit_trail.record

        def failing_record(*args: Any, **kwargs: Any) -> int:
            if args[3] == "search.run":
                raise RuntimeError("failed after the request and its decision were written")
            return real_record(*args, **kwargs)

        monkeypatch.setattr(governed, "record", failing_record)
    with pytest.raises(RuntimeError, match="failed after"):
        request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    assert _written(agency) == before
    monkeypatch.undo()
    # Had the request or its decision survived, the same photo would now be a repeat.
    again = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    assert again.status == "completed"
    assert verify_log(agency.workflow, agency["ada"]).ok


def test_the_same_face_in_other_bytes_is_a_repeat(agency: Agency, tmp_path: Path) -> None:
    first = request_search(agency.workflow, agency["ana"], probe(agency), FORM)
    lossless = tmp_path / "same-pixels.png"
    Image.open(probe(agency)).save(lossless)  # same pixels, so the same template
    again = request_search(agency.workflow, agency["ana"], lossless, FORM)
    assert again.status == "pending_approval"
    assert again.decision["earlier_search_id"] == first.search_id


def test_the_repeat_check_takes_the_latest_near_probe_of_its_model(agency: Agency) -> None:
    workflow = agency.workflow
    found = probe_for(workflow, probe(agency), None)
    policy = active_policy(workflow)
    assert policy is not None
    vector = found.template.vector
    now = workflow.now()
    rows = [  # oldest first
        ("a" * 64, "search", found.template.model.key, vector * 2.0, 0),
        ("b" * 64, "search", found.template.model.key, -vector, 1),
        ("c" * 64, "search", found.template.model.key, np.zeros_like(vector), 2),
        ("d" * 64, "search", "another-model", vector, 3),
        ("e" * 64, "verify", found.template.model.key, vector, 4),
        (found.image.sha256, "search", None, None, policy.repeat.window_days * 24 + 5),
    ]
    ids: list[int] = []
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        for sha256, kind, model_key, plain, hours_ago in rows:
            blob = None
            if plain is not None and model_key is not None:
                key = workspace.keys.probe_key(session, sha256, create=True)
                context = probe_template_context(sha256, model_key)
                blob = workspace.vault.encode_template(plain, key, context)
            row = SearchRequest(
                kind=kind,
                requester_id=agency["ana"].user_id,
                case_number="2026-000999",
                offence_category="robbery",
                purpose="investigative_lead",
                requesting_agency="Example Regional Investigation Unit",
                requesting_unit="Robbery",
                probe_kind="still_photo",
                probe_edited=False,
                requested_top=5,
                status="approved",
                decision={"outcome": "allow", "reasons": []},
                policy_sha256=policy.sha256,
                probe_sha256=sha256,
                second_probe_sha256="f" * 64 if kind == "verify" else None,
                probe_model_key=model_key,
                probe_template=blob,
                created_at=now - timedelta(hours=hours_ago),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    with workflow.workspace.session() as session:
        earlier = governed._earlier_search(session, workflow, "search", [found], policy, now)
        # Newest first: the zero template (no direction) and the opposite face are not
        # repeats, another model's template is not compared, a verify is another kind and
        # the same photo outside the window is forgotten; the scaled copy is a repeat.
        assert earlier == ids[0]
        again = governed._earlier_search(session, workflow, "verify", [found], policy, now)
        assert again == ids[4]


def test_the_review_queue_reads_a_fixed_number_of_queries(agency: Agency) -> None:
    # Lazy loads made it one query per candidate and two more per verdict list and
    # release: seconds for a queue of fifty lists under load.
    from candor.workflow.worklists import review_queue

    for person in (2, 3, 4):
        request_search(agency.workflow, agency["ana"], probe(agency, person), FORM)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = agency.workflow.workspace.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        queue = review_queue(agency.workflow, agency["eve"]).items
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(queue) == 3
    assert sum(item.candidates for item in queue) > 3
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 6, reads
