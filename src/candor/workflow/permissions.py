"""Who may do what: the active policy's permissions and the invariants no policy weakens."""

from __future__ import annotations

from candor.policy import Policy, has_permission
from candor.workflow.accounts import Actor, active_policy
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError


class PermissionDeniedError(WorkflowError):
    """The actor may not take this step (role, certificate, or their own request)."""


def require_policy(workflow: Workflow) -> Policy:
    """The active policy; refuses when an admin has not set one yet."""
    policy = active_policy(workflow)
    if policy is None:
        raise PermissionDeniedError("no policy is active in this workspace; an admin must set one")
    return policy


def require_permission(workflow: Workflow, actor: Actor, permission: str) -> Policy:
    """The active policy, if it grants `permission` to one of the actor's roles."""
    policy = require_policy(workflow)
    if actor.disabled:
        raise PermissionDeniedError(f"{actor.username} is disabled")
    if not has_permission(policy, actor.roles, permission):
        roles = ", ".join(sorted(actor.roles)) or "no role"
        raise PermissionDeniedError(f"{actor.username} ({roles}) may not {permission}")
    return policy


def require_current_certificate(actor: Actor) -> None:
    """No valid training certificate: no search, no verify, no review, whatever the policy."""
    if not actor.certificate_valid:
        raise PermissionDeniedError(
            f"{actor.username}'s training certificate has expired or is missing: "
            "no search, no review"
        )
