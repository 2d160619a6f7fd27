"""Free-text limits and the verdict vocabulary, enforced by the workflow for every interface."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from candor.policy.release import LEAD_OUTCOMES
from candor.store import governance
from candor.workflow import (
    VERDICTS,
    EnrolmentRequest,
    RequestForm,
    WorkflowError,
    decide_approval,
    enrol_files,
    limits,
    record_verdict,
)
from candor.workflow import accounts as accounts_module
from candor.workflow.accounts import request_user, update_certificate
from candor.workflow.limits import TextTooLongError
from tests.agency import Agency, make_agency, new_user
from tests.server.support import CASE, DEMO_PROVENANCE


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accounts_module,
        "PASSWORD_HASHER",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
    )


@pytest.fixture
def agency(tmp_path: Path) -> Agency:
    return make_agency(tmp_path, purpose="demo")


def test_each_limit_names_its_field_and_its_cap() -> None:
    assert limits.CASE_NUMBER.check("2026-1") == "2026-1"
    with pytest.raises(TextTooLongError) as caught:
        limits.CASE_NUMBER.check("7" * 100_000)
    assert str(caught.value) == (
        "the case number (case_number) has 100,000 characters; at most 200 are allowed"
    )
    fields = [limit.field for limit in limits.TEXT_LIMITS]
    assert len(fields) == len(set(fields))


def test_the_case_form_refuses_every_field_over_its_limit() -> None:
    form = RequestForm(**CASE)
    assert form.checked() == form
    for limit in (
        limits.CASE_NUMBER,
        limits.OFFENCE_CATEGORY,
        limits.PURPOSE,
        limits.REQUESTING_AGENCY,
        limits.REQUESTING_UNIT,
        limits.PROBE_KIND,
        limits.AUTHORISATION_REF,
        limits.EDITS,
    ):
        too_long = replace(form, **{limit.field: "x" * (limit.max_length + 1)})
        with pytest.raises(TextTooLongError, match=rf"\({limit.field}\) has "):
            too_long.checked()
        # Spaces around the text are not counted: the stored value is stripped.
        padded = replace(form, **{limit.field: " " + "x" * limit.max_length + " "})
        assert getattr(padded.checked(), limit.field) == "x" * limit.max_length


def test_reasons_accounts_and_enrolment_text_are_limited(agency: Agency, tmp_path: Path) -> None:
    workflow = agency.workflow
    long_reason = "r" * (limits.REASON.max_length + 1)
    with pytest.raises(TextTooLongError, match=r"\(reason\)"):
        decide_approval(workflow, agency["sam"], 1, approve=True, reason=long_reason)
    with pytest.raises(TextTooLongError, match=r"\(username\) has 100,000 characters"):
        request_user(workflow, agency["admin1"], new_user("n" * 100_000, "analyst"))
    with pytest.raises(TextTooLongError, match=r"\(unit\)"):
        request_user(workflow, agency["admin1"], new_user("newbie", "analyst", unit="u" * 201))
    with pytest.raises(TextTooLongError, match=r"\(certificate_ref\)"):
        update_certificate(workflow, agency["admin1"], "ana", "c" * 201, date(2030, 1, 1))
    photo = tmp_path / "never-read.jpg"
    with pytest.raises(TextTooLongError, match=r"\(subject_ref\)"):
        enrol_files(
            workflow, agency["admin1"], [EnrolmentRequest(photo, "S" * 201)], DEMO_PROVENANCE
        )
    with pytest.raises(TextTooLongError, match=r"\(source_ref\)"):
        enrol_files(
            workflow,
            agency["admin1"],
            [EnrolmentRequest(photo, "S-1")],
            replace(DEMO_PROVENANCE, source_ref="s" * 501),
        )


def test_an_unknown_verdict_is_refused_by_the_workflow_listing_the_verdicts(
    agency: Agency,
) -> None:
    # Refused before the request is even looked up, not left to the database's CHECK.
    with pytest.raises(WorkflowError) as caught:
        record_verdict(agency.workflow, agency["eve"], 999, 1, "maybe", "the ears")
    assert str(caught.value) == (
        "unknown verdict 'maybe'; a verdict is one of possible_match, not_a_match, inconclusive"
    )


def test_the_database_check_allows_exactly_the_verdicts() -> None:
    assert governance.VERDICTS == VERDICTS


def test_the_database_check_allows_exactly_the_lead_outcomes() -> None:
    assert governance.LEAD_OUTCOMES == LEAD_OUTCOMES
