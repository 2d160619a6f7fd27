"""What each person has waiting: their own requests, candidate lists to review, the log's
latest checkpoint, and whether the workspace still needs its first admins.

Interfaces that list work (a web page, a dashboard) read it here. These lists show case
numbers, states and counts, never candidate identities or face data, and only what the
reader's role lets them see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from candor.policy import has_permission
from candor.store import SearchRequest, count_users
from candor.store.audit_log import checkpoint_of_size
from candor.store.audit_log import latest_checkpoint as newest_checkpoint
from candor.store.requests import (
    latest_completed_searches_not_by,
    latest_requests_by,
    request_by_id,
)
from candor.workflow.accounts import Actor, active_policy
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.governed import RequestOutcome, outcome_of
from candor.workflow.permissions import PermissionDeniedError, require_permission, require_policy

LIST_LENGTH = 50


@dataclass(frozen=True)
class WorkspaceState:
    """What an interface shows before anyone logs in."""

    purpose: str
    timezone: str
    has_users: bool
    policy_active: bool


@dataclass(frozen=True)
class RequestSummary:
    """One request in a list: who, which case, where it stands."""

    search_id: int
    kind: str
    requester: str
    case_number: str
    status: str
    created_at: datetime
    candidates: int


@dataclass(frozen=True)
class ReviewItem:
    """A candidate list an examiner may review: how far its review has come."""

    search_id: int
    case_number: str
    ran_at: datetime | None
    candidates: int
    reviewed_by_me: int
    released: int


@dataclass(frozen=True)
class RequestStatus:
    """A request's outcome with its requester, for the requester and those who oversee it."""

    outcome: RequestOutcome
    requester: str
    case_number: str
    created_at: datetime
    mine: bool


@dataclass(frozen=True)
class LatestCheckpoint:
    """The newest signed checkpoint of the audit log."""

    tree_size: int
    root_hash: str
    created_at: datetime
    note: str


def workspace_state(workflow: Workflow) -> WorkspaceState:
    """Purpose, time zone, and whether users and a policy exist yet (no login needed)."""
    workspace = workflow.workspace
    with workspace.session() as session:
        has_users = count_users(session) > 0
    return WorkspaceState(
        purpose=workspace.purpose,
        timezone=workspace.timezone,
        has_users=has_users,
        policy_active=active_policy(workflow) is not None,
    )


def my_requests(
    workflow: Workflow, actor: Actor, *, limit: int = LIST_LENGTH
) -> list[RequestSummary]:
    """The actor's own latest requests, newest first."""
    with workflow.workspace.session() as session:
        return [_summary(row) for row in latest_requests_by(session, actor.user_id, limit)]


def _summary(row: SearchRequest) -> RequestSummary:
    return RequestSummary(
        search_id=row.id,
        kind=row.kind,
        requester=row.requester.username,
        case_number=row.case_number,
        status=row.status,
        created_at=row.created_at,
        candidates=len(row.candidates),
    )


def review_queue(workflow: Workflow, actor: Actor, *, limit: int = LIST_LENGTH) -> list[ReviewItem]:
    """Completed searches by others with candidates, newest first (examiners, supervisors)."""
    policy = require_policy(workflow)
    if actor.disabled or not (
        has_permission(policy, actor.roles, "candidate.review")
        or has_permission(policy, actor.roles, "search.approve")
    ):
        raise PermissionDeniedError("only examiners and supervisors review candidate lists")
    with workflow.workspace.session() as session:
        rows = latest_completed_searches_not_by(session, actor.user_id, limit)
        return [
            ReviewItem(
                search_id=row.id,
                case_number=row.case_number,
                ran_at=row.ran_at,
                candidates=len(row.candidates),
                reviewed_by_me=sum(
                    1
                    for candidate in row.candidates
                    if any(v.examiner_id == actor.user_id for v in candidate.verdicts)
                ),
                released=sum(1 for candidate in row.candidates if candidate.release is not None),
            )
            for row in rows
            if row.candidates
        ]


def request_status(workflow: Workflow, actor: Actor, search_id: int) -> RequestStatus:
    """Where a request stands: for its requester, supervisors, examiners and auditors."""
    with workflow.workspace.session() as session:
        row = request_by_id(session, search_id)
        if row is None:
            raise WorkflowError(f"no request {search_id}")
        mine = row.requester_id == actor.user_id
        requester, case_number, created_at = (
            row.requester.username,
            row.case_number,
            row.created_at,
        )
    if not mine:
        policy = require_policy(workflow)
        overseers = ("search.approve", "candidate.review", "audit.read")
        if actor.disabled or not any(has_permission(policy, actor.roles, p) for p in overseers):
            raise PermissionDeniedError(f"request {search_id} is not yours")
    return RequestStatus(outcome_of(workflow, search_id), requester, case_number, created_at, mine)


def latest_checkpoint(workflow: Workflow, actor: Actor) -> LatestCheckpoint | None:
    """The newest signed checkpoint, or None before the first (auditors)."""
    require_permission(workflow, actor, "audit.read")
    with workflow.workspace.session() as session:
        # The newest checkpoint's size, then its row: both in this read's one snapshot.
        newest = newest_checkpoint(session)
        row = None if newest is None else checkpoint_of_size(session, newest[0])
        if row is None:
            return None
        return LatestCheckpoint(row.tree_size, row.root_hash, row.created_at, row.note)


__all__ = [
    "LatestCheckpoint",
    "RequestStatus",
    "RequestSummary",
    "ReviewItem",
    "WorkspaceState",
    "latest_checkpoint",
    "my_requests",
    "request_status",
    "review_queue",
    "workspace_state",
]
