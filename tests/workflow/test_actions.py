"""`act`: one action's transaction, its checks, its audit entry (candor.workflow.actions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import AuditEntry
from candor.workflow import Actor, PermissionDeniedError
from candor.workflow.actions import act
from candor.workflow.permissions import require_current_certificate, require_permission
from tests.agency import Agency, make_agency

pytestmark = [pytest.mark.xdist_group("workflow")]


@pytest.fixture
def agency(tmp_path: Path) -> Agency:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def log_bodies(agency: Agency) -> list[dict[str, object]]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [json.loads(body) for body in bodies]


def refusal(call: Callable[[], None]) -> str:
    with pytest.raises(PermissionDeniedError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "change"),
    [("ana", {}), ("eve", {"disabled": True}), ("eve", {"certificate_valid": False})],
    ids=["no-permission", "disabled", "no-certificate"],
)
def test_a_refusal_says_what_the_old_checks_said_and_leaves_the_log_as_it_was(
    agency: Agency, name: str, change: dict[str, bool]
) -> None:
    actor: Actor = replace(agency[name], **change)
    before = log_bodies(agency)

    def old() -> None:
        require_permission(agency.workflow, actor, "candidate.review")
        require_current_certificate(actor)

    def new() -> None:
        with act(agency.workflow, actor, "candidate.review", certificate=True) as action:
            action.record("candidates.viewed", {"search": 1}, {"candidates": 0})

    assert refusal(new) == refusal(old)
    assert log_bodies(agency) == before


def test_the_entry_commits_with_the_action_or_not_at_all(agency: Agency) -> None:
    eve = agency["eve"]
    before = log_bodies(agency)
    with pytest.raises(RuntimeError), act(agency.workflow, eve, "candidate.review") as action:
        action.record("candidates.viewed", {"search": 1}, {"candidates": 0})
        raise RuntimeError("the action failed after its entry")
    assert log_bodies(agency) == before

    with act(agency.workflow, eve, "candidate.review") as action:
        assert action.policy.reviewers_to_release >= 1 and action.may("candidate.review")
        action.record("candidates.viewed", {"search": 1}, {"candidates": 0})
    after = log_bodies(agency)
    assert len(after) == len(before) + 1
    assert (after[-1]["actor"], after[-1]["action"]) == ("eve", "candidates.viewed")


def test_separation_of_duties_refuses_the_owner_only(agency: Agency) -> None:
    eve = agency["eve"]
    with act(agency.workflow, eve, None) as action:
        action.not_own(agency["eli"].user_id, "not refused")
        with pytest.raises(PermissionDeniedError, match=r"^yours$"):
            action.not_own(eve.user_id, "yours")
