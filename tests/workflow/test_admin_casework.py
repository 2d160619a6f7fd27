"""Issue 14, item 10: expungement as a two-admin change with a reason; password resets.

Faults: expungement needed one admin and took no reason; no admin could reset another
user's password (and nothing made the user choose a new one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from candor.store import AuditEntry, User, get_or_create_subject
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    PermissionDeniedError,
    SubjectNotFoundError,
    enrol_files,
    gallery_subject,
    request_expunge,
)
from candor.workflow.accounts import (
    AccountWorkflowError,
    LoginFailedError,
    NotAuthenticatedError,
    PasswordChangeRequiredError,
    SelfConfirmationError,
    WeakPasswordError,
    authenticate,
    change_password,
    confirm_change,
    login,
    pending_change_infos,
    reject_change,
    reset_password,
)
from candor.workflow.audit_ops import verify_log
from candor.workflow.gallery import gallery_subject_page
from candor.workflow.paging import PageRequest
from tests.agency import PASSWORD, Agency, make_agency, new_user
from tests.support import evaluation_provenance, people_with_photos, photos_of

TEMPORARY = "temporary-password-from-admin"
CHOSEN = "ana-chose-this-one-herself"


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def _entries(agency: Agency, action: str) -> list[dict[str, Any]]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq))
        return [entry for body in bodies if (entry := json.loads(body))["action"] == action]


@pytest.mark.faces
def test_expunge_needs_a_reason_and_a_second_admin_and_is_audited_with_both(
    agency: Agency, faces_dir: Path
) -> None:
    workflow = agency.workflow
    person = people_with_photos(faces_dir, 1)[0]
    summary = enrol_files(
        workflow,
        agency["admin1"],
        [EnrolmentRequest(photos_of(person)[0], person.name)],
        evaluation_provenance(),
    )
    assert summary.count(EnrolmentStatus.ENROLLED) == 1, summary.outcomes
    sha256 = gallery_subject(workflow, agency["admin1"], person.name).images[0].sha256

    with pytest.raises(AccountWorkflowError, match="reason"):
        request_expunge(workflow, agency["admin1"], person.name, "  ")
    with pytest.raises(SubjectNotFoundError):
        request_expunge(workflow, agency["admin1"], "nobody-here", "court order")
    change = request_expunge(workflow, agency["admin1"], person.name, "court order 14/2026")
    assert change.kind == "expunge_subject" and change.state == "pending"
    # Asked for, nothing removed; one request per subject at a time.
    assert gallery_subject(workflow, agency["admin1"], person.name).images
    with pytest.raises(AccountWorkflowError, match=f"change {change.id}"):
        request_expunge(workflow, agency["admin2"], person.name, "again")
    with pytest.raises(SelfConfirmationError):
        confirm_change(workflow, agency["admin1"], change.id)
    assert gallery_subject(workflow, agency["admin1"], person.name).images
    assert [c.id for c in pending_change_infos(workflow, agency["admin2"])] == [change.id]

    confirmed = confirm_change(workflow, agency["admin2"], change.id)
    assert confirmed.state == "confirmed" and confirmed.remaining == ()
    with pytest.raises(SubjectNotFoundError):
        gallery_subject(workflow, agency["admin1"], person.name)
    assert not workflow.workspace.vault.has_image(sha256)
    (requested,) = _entries(agency, "gallery.expunge_requested")
    assert requested["actor"] == "admin1"
    assert requested["details"]["reason"] == "court order 14/2026"
    (expunged,) = _entries(agency, "gallery.expunged")
    assert expunged["actor"] == "admin2"
    assert expunged["details"]["requested_by"] == "admin1"
    assert expunged["details"]["reason"] == "court order 14/2026"
    assert expunged["details"]["image_sha256"] == [sha256]
    assert expunged["objects"]["change"] == change.id


@pytest.mark.faces
def test_a_rejected_expungement_removes_nothing(agency: Agency, faces_dir: Path) -> None:
    workflow = agency.workflow
    person = people_with_photos(faces_dir, 1)[0]
    enrol_files(
        workflow,
        agency["admin1"],
        [EnrolmentRequest(photos_of(person)[0], person.name)],
        evaluation_provenance(),
    )
    change = request_expunge(workflow, agency["admin1"], person.name, "mistaken identity")
    reject_change(workflow, agency["admin2"], change.id, "the order was withdrawn")
    assert gallery_subject(workflow, agency["admin1"], person.name).images
    assert not _entries(agency, "gallery.expunged")


def test_an_admin_resets_a_password_and_the_user_must_choose_a_new_one(agency: Agency) -> None:
    workflow = agency.workflow
    ana_token = login(workflow, "ana", PASSWORD).token

    with pytest.raises(AccountWorkflowError, match="own password"):
        reset_password(workflow, agency["admin1"], "admin1", TEMPORARY)
    with pytest.raises(AccountWorkflowError, match="admin"):
        reset_password(workflow, agency["ana"], "sam", TEMPORARY)
    info = reset_password(workflow, agency["admin1"], "ana", TEMPORARY)
    assert info.reset_pending

    # Her sessions ended; the old password no longer works, the admin's one does, once.
    with pytest.raises(NotAuthenticatedError):
        authenticate(workflow, ana_token)
    with pytest.raises(LoginFailedError):
        login(workflow, "ana", PASSWORD)
    token = login(workflow, "ana", TEMPORARY).token
    with pytest.raises(PasswordChangeRequiredError, match="reset the password of ana"):
        authenticate(workflow, token)
    pending = authenticate(workflow, token, password_change_pending=True)
    assert pending.must_change_password
    with pytest.raises(WeakPasswordError, match="of your own"):
        change_password(workflow, pending, TEMPORARY)
    change_password(workflow, pending, CHOSEN)
    assert not authenticate(workflow, token).must_change_password
    login(workflow, "ana", CHOSEN)

    (reset,) = _entries(agency, "user.password_reset")
    assert reset["actor"] == "admin1" and reset["details"]["username"] == "ana"
    assert reset["details"]["sessions_ended"] >= 1
    with workflow.workspace.session() as session:
        log = b"".join(session.scalars(select(AuditEntry.body)))
        user = session.scalars(select(User).where(User.username == "ana")).one()
        assert not user.must_change_password
    for secret in (TEMPORARY, CHOSEN):
        assert secret.encode() not in log
    # `audit verify` follows the password hash through the reset and the change.
    auditor = agency.add_user(new_user("ada", "auditor", unit="Oversight"))
    report = verify_log(workflow, auditor)
    assert report.ok and report.store is not None and report.store.made
    assert report.store.differences == (), report.store.differences


def test_the_gallery_is_read_a_page_at_a_time_by_reference_prefix(agency: Agency) -> None:
    workflow = agency.workflow
    with workflow.workspace.session() as session, session.begin():
        for reference in ("A_1", "AB1", "a%x", "B-7"):
            get_or_create_subject(session, reference, "admin1")

    def refs(prefix: str, limit: int = 10, offset: int = 0) -> tuple[list[str], int]:
        page = gallery_subject_page(
            workflow, agency["admin1"], PageRequest(limit, offset), prefix=prefix
        )
        return [subject.external_ref for subject in page.items], page.total

    assert refs("") == (["A_1", "AB1", "a%x", "B-7"], 4)
    # Letter case ignored; "_" and "%" match only themselves, not any character.
    assert refs("a") == (["A_1", "AB1", "a%x"], 3)
    assert refs("a_") == (["A_1"], 1)
    assert refs("A%") == (["a%x"], 1)
    assert refs("a", limit=1, offset=1) == (["AB1"], 3)
    assert refs("zz") == ([], 0)
    with pytest.raises(PermissionDeniedError):
        gallery_subject_page(workflow, agency["ana"], PageRequest(), prefix="A")
