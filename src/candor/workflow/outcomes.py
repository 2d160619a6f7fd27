"""What came of each released lead, as the search's requester records it.

A released lead is never an identification: the requester, who acts on it, says later
what other evidence showed (one of LEAD_OUTCOMES, with a note). Only the requester
records it, not the examiners who released it; each record is audited, the newest
stands and the earlier ones stay as its history. Reports count the outcomes that stand
(candor.store.outcomes.lead_outcome_counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from candor.policy.release import LEAD_OUTCOMES
from candor.store import outcomes as repository
from candor.store.accounts import user_by_id
from candor.store.governance import Candidate, LeadOutcome, Release
from candor.store.requests import request_by_id
from candor.workflow import limits
from candor.workflow.accounts import Actor
from candor.workflow.actions import act
from candor.workflow.context import Workflow
from candor.workflow.errors import RequestNotFoundError, WorkflowError
from candor.workflow.permissions import PermissionDeniedError

# The audit action of a recorded outcome (reconciliation checks the rows against it).
OUTCOME_RECORDED = "lead.outcome_recorded"


@dataclass(frozen=True)
class OutcomeRecord:
    """One recorded outcome of a lead."""

    outcome: str
    note: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True)
class LeadOutcomes:
    """A released lead's outcomes: the one that stands (None: none recorded) and all, oldest
    first."""

    search_id: int
    rank: int
    current: OutcomeRecord | None
    history: tuple[OutcomeRecord, ...]


def record_lead_outcome(
    workflow: Workflow, actor: Actor, search_id: int, rank: int, outcome: str, note: str
) -> LeadOutcomes:
    """The requester of search `search_id` records what came of its released lead at `rank`;
    audited. It stands from now; earlier records stay as history."""
    if outcome not in LEAD_OUTCOMES:
        raise WorkflowError(
            f"unknown outcome {outcome!r}; an outcome is one of {', '.join(LEAD_OUTCOMES)}"
        )
    if not note.strip():
        raise WorkflowError("an outcome needs a note (what showed it)")
    limits.REASON.check(note.strip())
    with act(workflow, actor, None) as action:
        if actor.disabled:
            raise PermissionDeniedError(f"{actor.username} is disabled")
        row = request_by_id(action.session, search_id)
        if row is None:
            raise RequestNotFoundError(search_id)
        if row.requester_id != actor.user_id:
            raise PermissionDeniedError(
                f"only the requester of request {search_id} records what came of its leads"
            )
        release = _release(row.candidates, search_id, rank)
        added = repository.add_lead_outcome(
            action.session, release, outcome, note.strip(), actor.user_id, action.now
        )
        action.record(
            OUTCOME_RECORDED,
            {"search": row.id, "candidate": release.candidate_id, "lead_outcome": added.id},
            {"rank": rank, "outcome": outcome, "note": note.strip()},
        )
        return lead_outcomes(action.session, search_id, rank, release)


def _release(candidates: list[Candidate], search_id: int, rank: int) -> Release:
    for candidate in candidates:
        if candidate.rank == rank:
            if candidate.release is None:
                raise WorkflowError(
                    f"candidate {rank} of request {search_id} was not released as a lead"
                )
            return candidate.release
    raise WorkflowError(f"request {search_id} has no candidate at rank {rank}")


def lead_outcomes(session: Session, search_id: int, rank: int, release: Release) -> LeadOutcomes:
    """The outcomes of one release, as loaded on it (the session names the recorders)."""
    history = tuple(_record(session, row) for row in release.outcomes)
    return LeadOutcomes(search_id, rank, history[-1] if history else None, history)


def _record(session: Session, row: LeadOutcome) -> OutcomeRecord:
    user = user_by_id(session, row.recorded_by)
    name = user.username if user is not None else f"user {row.recorded_by}"
    return OutcomeRecord(row.outcome, row.note, name, row.recorded_at)


__all__ = [
    "OUTCOME_RECORDED",
    "LeadOutcomes",
    "OutcomeRecord",
    "lead_outcomes",
    "record_lead_outcome",
]
