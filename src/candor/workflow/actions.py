"""`act`: one workflow action over one unit of work, its checks done inside it.

    with act(workflow, actor, "candidate.review", certificate=True) as action:
        row = requests.request_by_id(action.session, search_id)
        action.not_own(row.requester_id, f"request {search_id} is your own; ...")
        ...
        action.record("candidate.verdict", {"search": search_id}, {...})

`act` opens one session and its writing transaction (`WorkspaceSession.begin()`: the
write lock at once on SQLite, READ COMMITTED on PostgreSQL), reads the policy in force
inside that transaction, so a policy change committed meanwhile is wholly before or
wholly after the action, and checks the permission (and, where the action needs one, a
current training certificate) against it. Leaving the block commits; an exception rolls
back. A refusal raises PermissionDeniedError with the messages `require_policy`,
`require_permission` and `require_current_certificate` give, and writes nothing: denials
leave no audit entry, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from candor.policy import Policy, has_permission
from candor.workflow.accounts import Actor, policy_in_force
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.permissions import PermissionDeniedError, require_current_certificate

NO_POLICY_MESSAGE = "no policy is active in this workspace; an admin must set one"


@dataclass(frozen=True)
class Action:
    """The open unit of work of one action: its session, the policy, the time, the actor."""

    workflow: Workflow
    actor: Actor
    session: Session
    policy: Policy
    now: datetime

    @property
    def today(self) -> date:
        """`now`'s date in the workspace's time zone (which defines days)."""
        return self.now.astimezone(self.workflow.workspace.zone).date()

    def may(self, permission: str) -> bool:
        """Whether the policy in force grants `permission` to one of the actor's roles."""
        return has_permission(self.policy, self.actor.roles, permission)

    def not_own(self, owner_id: int, message: str) -> None:
        """Separation of duties: refuses (with `message`) when the actor is `owner_id`."""
        if owner_id == self.actor.user_id:
            raise PermissionDeniedError(message)

    def record(
        self, action: str, objects: Mapping[str, int | str], details: Mapping[str, object]
    ) -> int:
        """The action's audit entry, in this transaction, by this actor; its sequence number."""
        return record(self.session, self.workflow, self.actor.username, action, objects, details)


@contextmanager
def act(
    workflow: Workflow, actor: Actor, permission: str | None, *, certificate: bool = False
) -> Iterator[Action]:
    """One action's unit of work, with the policy in force and the checks done.

    permission: what the policy must grant one of the actor's roles (a disabled actor is
        refused too); None when the action checks who may act itself (`Action.may`).
    certificate: the action needs a current training certificate (casework).
    """
    with workflow.workspace.session() as session, session.begin():
        policy = policy_in_force(session)
        if policy is None:
            raise PermissionDeniedError(NO_POLICY_MESSAGE)
        if permission is not None:
            _require(policy, actor, permission)
        if certificate:
            require_current_certificate(actor)
        yield Action(workflow, actor, session, policy, workflow.now())


def _require(policy: Policy, actor: Actor, permission: str) -> None:
    # The messages of permissions.require_permission: callers and tests read them.
    if actor.disabled:
        raise PermissionDeniedError(f"{actor.username} is disabled")
    if not has_permission(policy, actor.roles, permission):
        roles = ", ".join(sorted(actor.roles)) or "no role"
        raise PermissionDeniedError(f"{actor.username} ({roles}) may not {permission}")
