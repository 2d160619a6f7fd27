"""What each person has waiting: their own requests, candidate lists to review, approvals,
changes to confirm, jobs, the log's latest checkpoint, and whether the workspace still
needs its first admins.

Interfaces that list work (a web page, `candor todo`, the API) read it here. Lists that
drive work come a page at a time (`candor.workflow.paging`), oldest first, so nothing
waits out of sight behind newer items. These lists show case numbers, states and counts,
never candidate identities or face data, and only what the reader's role lets them see.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from PIL import Image

from candor.images import PROBE_LIMITS, decode_image
from candor.policy import Policy, has_permission
from candor.store import SEARCH_STATUSES, SearchRequest, count_users
from candor.store.accounts import pending_changes, user_by_id
from candor.store.audit_log import checkpoint_of_size
from candor.store.audit_log import latest_checkpoint as newest_checkpoint
from candor.store.jobs import FAILED, QUEUED, RUNNING, jobs_in_states
from candor.store.requests import (
    leads_without_outcome,
    request_by_id,
    requests_by_page,
    review_lists_by_page,
    searches_by_ids,
)
from candor.workflow import limits
from candor.workflow.accounts import Actor, active_policy
from candor.workflow.actions import act
from candor.workflow.context import Workflow
from candor.workflow.errors import RequestNotFoundError, WorkflowError
from candor.workflow.governed import (
    EarlierSearch,
    RequestOutcome,
    earlier_search_of,
    outcome_of,
    pending_approvals,
)
from candor.workflow.paging import Page, PageRequest, page_of
from candor.workflow.permissions import PermissionDeniedError, require_permission, require_policy
from candor.workflow.probes import stored_probe

# Every status a request can be in: the filter My requests offers.
REQUEST_STATUSES: tuple[str, ...] = SEARCH_STATUSES
# A list's first page, at the default size.
FIRST_PAGE = PageRequest()
# How many of the oldest items of each kind `todo` names beside its count.
TODO_OLDEST = 3
# The approval card's probe picture: big enough to judge the photo, small enough inline.
_PROBE_THUMBNAIL_SIDE = 240

# What waits, by kind: the one list of kinds and how each is said, for the home page, the
# command line and the API alike ({n} the count; the first form for one, the second for
# any other number).
TODO_LABELS: dict[str, tuple[str, str]] = {
    "approvals": ("{n} approval waits for you", "{n} approvals wait for you"),
    "reviews": (
        "{n} candidate list waits for your review",
        "{n} candidate lists wait for your review",
    ),
    "overdue_reviews": (
        "{n} candidate list {scope}is unreviewed past the policy's {days} days",
        "{n} candidate lists {scope}are unreviewed past the policy's {days} days",
    ),
    "approved_to_run": (
        "{n} approved request of yours waits to run",
        "{n} approved requests of yours wait to run",
    ),
    "leads_without_outcome": (
        "{n} released lead of your searches needs its outcome recorded",
        "{n} released leads of your searches need their outcome recorded",
    ),
    "changes": (
        "{n} admin change by another admin waits for your confirmation",
        "{n} admin changes by other admins wait for your confirmation",
    ),
    "jobs_failed": ("{n} job failed", "{n} jobs failed"),
    "jobs_running": ("{n} job is running or queued", "{n} jobs are running or queued"),
}
TODO_KINDS: tuple[str, ...] = tuple(TODO_LABELS)
# Whose overdue lists a person is shown: a supervisor those of the unit, an auditor all
# of them, an examiner those waiting for their own verdicts.
OVERDUE_SCOPES = {"all": "", "unit": "in your unit ", "mine": "waiting for you "}


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
    """A candidate list under review: how far its review has come, and whether it is past
    the policy's review_within_days."""

    search_id: int
    case_number: str
    ran_at: datetime | None
    candidates: int
    reviewed_by_me: int
    released: int
    overdue: bool = False
    due_by: datetime | None = None


@dataclass(frozen=True)
class ApprovalRecord:
    """A supervisor's decision on a request: who, what, why and when."""

    decision: str
    supervisor: str
    reason: str
    decided_at: datetime


@dataclass(frozen=True)
class RequestStatus:
    """A request's outcome with its requester, for the requester and those who oversee it:
    who approved or rejected it and why, and the earlier search it repeats."""

    outcome: RequestOutcome
    requester: str
    case_number: str
    created_at: datetime
    mine: bool
    approval: ApprovalRecord | None = None
    earlier: EarlierSearch | None = None
    earlier_search_id: int | None = None


@dataclass(frozen=True)
class LatestCheckpoint:
    """The newest signed checkpoint of the audit log."""

    tree_size: int
    root_hash: str
    created_at: datetime
    note: str


@dataclass(frozen=True)
class WaitingItem:
    """One thing that waits: a request, change or job by its number, never an identity."""

    ref: int
    since: datetime | None
    case_number: str | None = None
    overdue: bool = False


@dataclass(frozen=True)
class TodoEntry:
    """One kind of work that waits for a person: how many, said in words, the oldest few."""

    kind: str
    count: int
    label: str
    oldest: tuple[WaitingItem, ...] = ()
    # Something here is late (a list past the review limit) or broken (a failed job).
    alert: bool = False


@dataclass(frozen=True)
class Todo:
    """What waits for one person, by the kinds of work their roles do."""

    username: str
    entries: tuple[TodoEntry, ...]
    review_within_days: int | None = None
    # For auditors: the newest signed checkpoint, and how old it is.
    checkpoint_at: datetime | None = None
    checkpoint_age_hours: float | None = None

    @property
    def waiting(self) -> int:
        """How many things wait for this person to act on, in all."""
        return sum(entry.count for entry in self.entries if entry.kind != "overdue_reviews")

    def entry(self, kind: str) -> TodoEntry | None:
        """The entry of `kind`, or None when this person's roles do no such work."""
        return next((entry for entry in self.entries if entry.kind == kind), None)


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


def _case_filter(case: str | None) -> str | None:
    """A case number to filter by: stripped, None when blank, refused when too long."""
    if case is None or not case.strip():
        return None
    return limits.CASE_NUMBER.check(case.strip())


def _status_filter(status: str | None) -> str | None:
    if status is None or not status.strip():
        return None
    if status.strip() not in SEARCH_STATUSES:
        raise WorkflowError(f"status {status.strip()!r} is not one of {', '.join(SEARCH_STATUSES)}")
    return status.strip()


def my_requests(
    workflow: Workflow,
    actor: Actor,
    page: PageRequest = FIRST_PAGE,
    *,
    status: str | None = None,
    case: str | None = None,
) -> Page[RequestSummary]:
    """One page of the actor's own requests, oldest first; only those in `status` (one of
    SEARCH_STATUSES) or of case number `case` when given."""
    wanted_status, wanted_case = _status_filter(status), _case_filter(case)
    with workflow.workspace.session() as session:
        rows, total = requests_by_page(
            session,
            actor.user_id,
            limit=page.limit,
            offset=page.offset,
            status=wanted_status,
            case_number=wanted_case,
        )
        return page_of([_summary(row) for row in rows], total, page)


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


def _reviewer_policy(workflow: Workflow, actor: Actor) -> tuple[Policy, bool]:
    """The policy in force and whether the actor reviews (else supervises) candidate lists."""
    policy = require_policy(workflow)
    may_review = has_permission(policy, actor.roles, "candidate.review")
    if actor.disabled or not (may_review or has_permission(policy, actor.roles, "search.approve")):
        raise PermissionDeniedError("only examiners and supervisors review candidate lists")
    return policy, may_review


def review_queue(
    workflow: Workflow,
    actor: Actor,
    page: PageRequest = FIRST_PAGE,
    *,
    case: str | None = None,
    overdue: bool | None = None,
) -> Page[ReviewItem]:
    """One page of the candidate lists still under review, oldest run first.

    For an examiner, the lists of others' searches she has not reviewed yet while they
    need more examiners, and (when the policy names her role to settle disagreements)
    those with a disagreement she took no part in; for a supervisor who does not review,
    every list still under review. A list leaves the queue once a lead of it is released,
    or once the policy's number of examiners has reviewed it and no disagreement waits to
    be settled. `overdue=True`: only those past the policy's review_within_days; `case`:
    only that case number's.
    """
    policy, may_review = _reviewer_policy(workflow, actor)
    now = workflow.now()
    due_cut = now - timedelta(days=policy.review_within_days)
    with workflow.workspace.session() as session:
        rows, total = review_lists_by_page(
            session,
            reviewers_required=policy.reviewers_to_release,
            limit=page.limit,
            offset=page.offset,
            resolving=policy.resolve_disagreement_by is not None,
            not_by=actor.user_id,
            waiting_for=actor.user_id if may_review else None,
            may_resolve=_may_resolve(policy, actor),
            ran_before=due_cut if overdue else None,
            case_number=_case_filter(case),
        )
        items = [_review_item(row, actor, policy, due_cut) for row in rows]
    return page_of(items, total, page)


def _may_resolve(policy: Policy, actor: Actor) -> bool:
    """Whether the actor settles disagreements under the policy (review.resolve_disagreement_by)."""
    return policy.resolve_disagreement_by is not None and policy.resolve_disagreement_by in (
        actor.roles
    )


def _review_item(row: SearchRequest, actor: Actor, policy: Policy, due_cut: datetime) -> ReviewItem:
    due_by = None if row.ran_at is None else row.ran_at + timedelta(days=policy.review_within_days)
    return ReviewItem(
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
        overdue=row.ran_at is not None and row.ran_at < due_cut,
        due_by=due_by,
    )


def overdue_reviews(
    workflow: Workflow, actor: Actor, page: PageRequest = FIRST_PAGE
) -> Page[ReviewItem]:
    """One page of every candidate list unreviewed past the policy's review_within_days,
    oldest first, whoever requested it (supervisors, examiners and auditors)."""
    policy = require_policy(workflow)
    overseers = ("search.approve", "candidate.review", "audit.read")
    if actor.disabled or not any(has_permission(policy, actor.roles, p) for p in overseers):
        raise PermissionDeniedError("only supervisors, examiners and auditors see overdue reviews")
    due_cut = workflow.now() - timedelta(days=policy.review_within_days)
    with workflow.workspace.session() as session:
        rows, total = review_lists_by_page(
            session,
            reviewers_required=policy.reviewers_to_release,
            limit=page.limit,
            offset=page.offset,
            resolving=policy.resolve_disagreement_by is not None,
            ran_before=due_cut,
        )
        items = [_review_item(row, actor, policy, due_cut) for row in rows]
    return page_of(items, total, page)


def request_status(workflow: Workflow, actor: Actor, search_id: int) -> RequestStatus:
    """Where a request stands, who approved or rejected it and why, and the earlier search
    it repeats: for its requester, supervisors, examiners and auditors."""
    with workflow.workspace.session() as session:
        row = request_by_id(session, search_id)
        if row is None:
            raise RequestNotFoundError(search_id)
        mine = row.requester_id == actor.user_id
        requester, case_number, created_at = (
            row.requester.username,
            row.case_number,
            row.created_at,
        )
        approval = None
        if row.approval is not None:
            supervisor = user_by_id(session, row.approval.supervisor_id)
            approval = ApprovalRecord(
                decision=row.approval.decision,
                supervisor=supervisor.username if supervisor else str(row.approval.supervisor_id),
                reason=row.approval.reason,
                decided_at=row.approval.decided_at,
            )
        earlier_id = row.earlier_search_id
        found = searches_by_ids(session, [earlier_id] if earlier_id is not None else [])
        earlier = None if earlier_id not in found else earlier_search_of(found[earlier_id])
    if not mine:
        policy = require_policy(workflow)
        overseers = ("search.approve", "candidate.review", "audit.read")
        if actor.disabled or not any(has_permission(policy, actor.roles, p) for p in overseers):
            raise PermissionDeniedError(f"request {search_id} is not yours")
    return RequestStatus(
        outcome_of(workflow, search_id),
        requester,
        case_number,
        created_at,
        mine,
        approval=approval,
        earlier=earlier,
        earlier_search_id=earlier_id,
    )


def approval_probes(
    workflow: Workflow, actor: Actor, search_ids: list[int]
) -> dict[int, bytes | None]:
    """A thumbnail (PNG) of each waiting request's probe photo, for the supervisor deciding
    it; None where the photo is no longer held. Audited, one entry per request shown: a
    probe is face data."""
    vault = workflow.workspace.vault
    held: dict[int, str | None] = {}
    with act(workflow, actor, "search.approve") as action:
        for search_id in search_ids:
            row = request_by_id(action.session, search_id)
            if row is None:
                raise RequestNotFoundError(search_id)
            if row.status != "pending_approval":
                raise WorkflowError(f"request {search_id} is not waiting for approval")
            action.not_own(
                row.requester_id, f"request {search_id} is your own: another supervisor decides it"
            )
            shown = vault.has_probe(row.probe_sha256)
            held[search_id] = row.probe_sha256 if shown else None
            action.record("approval.probe_viewed", {"search": search_id}, {"probe_shown": shown})
    return {
        search_id: None if sha256 is None else _thumbnail(stored_probe(workflow, sha256), search_id)
        for search_id, sha256 in held.items()
    }


def _thumbnail(data: bytes, search_id: int) -> bytes:
    image = decode_image(data, name=f"request {search_id}", limits=PROBE_LIMITS)
    picture = Image.fromarray(np.ascontiguousarray(image.pixels, dtype=np.uint8))
    picture.thumbnail((_PROBE_THUMBNAIL_SIDE, _PROBE_THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


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


# -- what waits for each person -----------------------------------------------------------


def todo_label(kind: str, count: int, *, days: int = 0, scope: str = "all") -> str:
    """How `count` things of `kind` are said: "2 approvals wait for you"."""
    one, many = TODO_LABELS[kind]
    text = (one if count == 1 else many).format(
        n=count if count else "No", days=days, scope=OVERDUE_SCOPES[scope]
    )
    return text


def todo(workflow: Workflow, actor: Actor) -> Todo:
    """What waits for the actor, for each kind of work their roles do, with counts and the
    oldest few of each: requesters their approved requests and leads without an outcome;
    examiners the lists to review; supervisors approvals; admins changes by other admins
    and jobs; examiners, supervisors and auditors the lists past the review limit;
    auditors the age of the newest checkpoint."""
    if actor.disabled:
        raise PermissionDeniedError(f"{actor.username} is disabled")
    policy = active_policy(workflow)

    def may(permission: str) -> bool:
        return policy is not None and has_permission(policy, actor.roles, permission)

    entries: list[TodoEntry] = []
    first = PageRequest(limit=TODO_OLDEST)
    if may("search.request") or may("verify.request"):
        entries.extend(_requester_entries(workflow, actor, first))
    if may("candidate.review"):
        queue = review_queue(workflow, actor, first)
        entries.append(
            TodoEntry(
                "reviews",
                queue.total,
                todo_label("reviews", queue.total),
                # Overdue ones are marked each; the overdue entry carries the alert.
                tuple(_waiting_list(item) for item in queue.items),
            )
        )
    if may("search.approve"):
        waiting = pending_approvals(workflow, actor, first)
        entries.append(
            TodoEntry(
                "approvals",
                waiting.total,
                todo_label("approvals", waiting.total),
                tuple(WaitingItem(p.search_id, p.created_at, p.case_number) for p in waiting.items),
            )
        )
    if policy is not None and (
        may("audit.read") or may("search.approve") or may("candidate.review")
    ):
        entries.append(_overdue_entry(workflow, actor, policy))
    if "admin" in actor.roles:
        entries.extend(_admin_entries(workflow, actor))
    checkpoint_at = age = None
    if may("audit.read"):
        newest = latest_checkpoint(workflow, actor)
        if newest is not None:
            checkpoint_at = newest.created_at
            age = (workflow.now() - newest.created_at).total_seconds() / 3600
    return Todo(
        username=actor.username,
        entries=tuple(entries),
        review_within_days=None if policy is None else policy.review_within_days,
        checkpoint_at=checkpoint_at,
        checkpoint_age_hours=age,
    )


def _waiting_list(item: ReviewItem) -> WaitingItem:
    return WaitingItem(item.search_id, item.ran_at, item.case_number, overdue=item.overdue)


def _requester_entries(workflow: Workflow, actor: Actor, first: PageRequest) -> list[TodoEntry]:
    approved = my_requests(workflow, actor, first, status="approved")
    with workflow.workspace.session() as session:
        leads, leads_total = leads_without_outcome(session, actor.user_id, limit=first.limit)
    return [
        TodoEntry(
            "approved_to_run",
            approved.total,
            todo_label("approved_to_run", approved.total),
            tuple(WaitingItem(r.search_id, r.created_at, r.case_number) for r in approved.items),
        ),
        TodoEntry(
            "leads_without_outcome",
            leads_total,
            todo_label("leads_without_outcome", leads_total),
            tuple(WaitingItem(search, at, case) for search, _rank, case, at in leads),
        ),
    ]


def _overdue_entry(workflow: Workflow, actor: Actor, policy: Policy) -> TodoEntry:
    days = policy.review_within_days
    due_cut = workflow.now() - timedelta(days=days)
    if has_permission(policy, actor.roles, "search.approve"):
        scope, unit, waiting_for = "unit", actor.unit, None
    elif has_permission(policy, actor.roles, "audit.read"):
        scope, unit, waiting_for = "all", None, None
    else:
        scope, unit, waiting_for = "mine", None, actor.user_id
    with workflow.workspace.session() as session:
        rows, total = review_lists_by_page(
            session,
            reviewers_required=policy.reviewers_to_release,
            limit=TODO_OLDEST,
            offset=0,
            resolving=policy.resolve_disagreement_by is not None,
            not_by=waiting_for,
            waiting_for=waiting_for,
            may_resolve=waiting_for is not None and _may_resolve(policy, actor),
            ran_before=due_cut,
            requester_unit=unit,
        )
        oldest = tuple(WaitingItem(r.id, r.ran_at, r.case_number, overdue=True) for r in rows)
    return TodoEntry(
        "overdue_reviews",
        total,
        todo_label("overdue_reviews", total, days=days, scope=scope),
        oldest,
        alert=total > 0,
    )


def _admin_entries(workflow: Workflow, actor: Actor) -> list[TodoEntry]:
    with workflow.workspace.session() as session:
        # Another admin's changes only: nobody confirms their own.
        changes = [c for c in pending_changes(session) if c.requested_by != actor.user_id]
        failed = jobs_in_states(session, [FAILED])
        running = jobs_in_states(session, [QUEUED, RUNNING])
        oldest = tuple(WaitingItem(c.id, c.requested_at) for c in changes[:TODO_OLDEST])
    return [
        TodoEntry("changes", len(changes), todo_label("changes", len(changes)), oldest),
        TodoEntry("jobs_failed", failed, todo_label("jobs_failed", failed), alert=failed > 0),
        TodoEntry("jobs_running", running, todo_label("jobs_running", running)),
    ]


__all__ = [
    "OVERDUE_SCOPES",
    "REQUEST_STATUSES",
    "TODO_KINDS",
    "TODO_LABELS",
    "ApprovalRecord",
    "LatestCheckpoint",
    "RequestStatus",
    "RequestSummary",
    "ReviewItem",
    "Todo",
    "TodoEntry",
    "WaitingItem",
    "WorkspaceState",
    "approval_probes",
    "latest_checkpoint",
    "my_requests",
    "overdue_reviews",
    "request_status",
    "review_queue",
    "todo",
    "todo_label",
    "workspace_state",
]
