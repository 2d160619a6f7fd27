"""What a form offers a person: the policy in force's choices and what their roles may do.

A form that takes free text for a closed list turns every slip into an audited denial
under the person's name; one that offers an action the policy does not grant does the
same. So the pages build their choices and their links from here. The server still
decides every request (a forged value gets the policy's one-line refusal, audited as
before): this only keeps honest people from meeting it.
"""

from __future__ import annotations

from dataclasses import dataclass

from candor.policy import PERMISSIONS, PROBE_KINDS, Policy, has_permission
from candor.workflow.accounts import Actor, active_policy
from candor.workflow.context import Workflow


@dataclass(frozen=True)
class FormChoices:
    """The choices of a search or verify form under the policy in force (empty lists and
    no home agency when none is in force), and the permissions the person holds by it."""

    policy_active: bool
    home_agency: str | None
    outside_agencies_allowed: bool
    offence_categories: tuple[str, ...]
    purposes: tuple[str, ...]
    probe_kinds: tuple[str, ...]
    granted: frozenset[str]

    def may(self, *permissions: str) -> bool:
        """Whether the policy grants the person any of `permissions`."""
        unknown = set(permissions) - set(PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permission(s) {sorted(unknown)}")
        return bool(self.granted.intersection(permissions))


def granted_permissions(policy: Policy | None, actor: Actor) -> frozenset[str]:
    """The permissions the policy grants one of the actor's roles; none when disabled or
    no policy is in force (every governed action is refused then)."""
    if policy is None or actor.disabled:
        return frozenset()
    return frozenset(name for name in PERMISSIONS if has_permission(policy, actor.roles, name))


def form_choices(workflow: Workflow, actor: Actor) -> FormChoices:
    """The policy in force's closed lists, in a stable order (probe kinds in the
    vocabulary's order, the rest by name), and what the actor may do under it."""
    policy = active_policy(workflow)
    if policy is None:
        return FormChoices(False, None, False, (), (), (), frozenset())
    return FormChoices(
        policy_active=True,
        home_agency=policy.home_agency,
        outside_agencies_allowed=policy.outside_agencies_allowed,
        offence_categories=tuple(sorted(policy.offence_categories)),
        purposes=tuple(sorted(policy.purposes)),
        probe_kinds=tuple(kind for kind in PROBE_KINDS if kind in policy.probe_kinds),
        granted=granted_permissions(policy, actor),
    )


__all__ = ["FormChoices", "form_choices", "granted_permissions"]
