"""The search decision: facts about one request in, allow / deny / needs approval out.

Pure: the caller (the workflow) gathers the facts (who asks, their roles and certificate,
counts of their earlier searches, an earlier search with the same or a near-identical
probe) and records the decision; nothing here reads a clock, a file or a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from candor.policy.model import Policy
from candor.policy.roles import PERMISSIONS, REQUEST_PERMISSION, check_roles, role_conflict

# Reason codes: stable strings recorded in the audit log and the search record, so reports
# can count refusals by rule across policy versions. docs/policy.md documents each one.
DISABLED = "disabled"
ROLE_CONFLICT = "role_conflict"
PERMISSION_MISSING = "permission_missing"
NO_CERTIFICATE = "no_certificate"
OFFENCE_NOT_ALLOWED = "offence_not_allowed"
PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
PROBE_KIND_NOT_ALLOWED = "probe_kind_not_allowed"
EDITED_PROBE_NOT_ALLOWED = "edited_probe_not_allowed"
OUTSIDE_AGENCY = "outside_agency"
QUOTA_PER_DAY = "quota_per_day"
QUOTA_PER_30_DAYS = "quota_per_30_days"
REPEAT_SEARCH = "repeat_search"

# In the order decide_search lists them; every code but the last denies.
DENY_CODES: tuple[str, ...] = (
    DISABLED,
    ROLE_CONFLICT,
    PERMISSION_MISSING,
    NO_CERTIFICATE,
    OFFENCE_NOT_ALLOWED,
    PURPOSE_NOT_ALLOWED,
    PROBE_KIND_NOT_ALLOWED,
    EDITED_PROBE_NOT_ALLOWED,
    OUTSIDE_AGENCY,
    QUOTA_PER_DAY,
    QUOTA_PER_30_DAYS,
)
APPROVAL_CODES: tuple[str, ...] = (REPEAT_SEARCH,)
REASON_CODES: tuple[str, ...] = DENY_CODES + APPROVAL_CODES


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"


@dataclass(frozen=True)
class Reason:
    """Why a request is denied or needs approval: a stable code and one sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class SearchFacts:
    """Everything the policy needs to know about one search or verify request.

    earlier_search_id: a search within repeat.window_days, by anyone, whose probe has the
    same sha256 or a template above repeat.similarity; found by the caller, None if none.
    searches_today / searches_last_30_days: this user's requests before this one, days in
    the workspace's time zone.
    """

    kind: Literal["search", "verify"]
    requester_roles: frozenset[str]
    requester_disabled: bool
    certificate_valid: bool
    offence_category: str
    purpose: str
    requesting_agency: str
    requesting_unit: str
    probe_kind: str
    probe_edited: bool
    requested_top: int
    earlier_search_id: int | None
    searches_today: int
    searches_last_30_days: int

    def __post_init__(self) -> None:
        # Malformed facts are the caller's bug, not a request to deny: fail loudly.
        if self.kind not in REQUEST_PERMISSION:
            raise ValueError(f"kind must be 'search' or 'verify', not {self.kind!r}")
        check_roles(self.requester_roles)
        if not self.requesting_agency.strip():
            raise ValueError("requesting_agency must name an agency")
        if self.requested_top < 1:
            raise ValueError(f"requested_top must be at least 1, not {self.requested_top}")
        if self.searches_today < 0 or self.searches_last_30_days < 0:
            raise ValueError("search counts cannot be negative")
        if self.searches_last_30_days < self.searches_today:
            raise ValueError(
                f"searches_last_30_days ({self.searches_last_30_days}) cannot be fewer than "
                f"searches_today ({self.searches_today})"
            )


@dataclass(frozen=True)
class Decision:
    """The policy's answer, with everything needed to record it and check it later."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    policy_sha256: str
    top: int
    earlier_search_id: int | None
    # Defaults so that a caller recording a decision made without a policy (none active
    # yet) can still build one; decide_search always fills them.
    policy_name: str = ""
    policy_version: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON values only, for the audit log and the search record."""
        return {
            "outcome": self.outcome.value,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "policy_sha256": self.policy_sha256,
            "policy_name": self.policy_name,
            "policy_version": self.policy_version,
            "top": self.top,
            "earlier_search_id": self.earlier_search_id,
        }


def has_permission(policy: Policy, roles: Iterable[str], permission: str) -> bool:
    """Whether any of the roles is granted the permission by the policy.

    Unknown roles or permissions raise ValueError: a misspelt check in calling code must
    not quietly answer "no" (or, worse, be read as a rule that does not apply).
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return any(permission in policy.permissions[role] for role in check_roles(roles))


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


def _deny_reasons(policy: Policy, facts: SearchFacts) -> list[Reason]:
    reasons: list[Reason] = []
    if facts.requester_disabled:
        reasons.append(Reason(DISABLED, "the requester's account is disabled"))
    conflict = role_conflict(facts.requester_roles)
    if conflict is not None:
        reasons.append(Reason(ROLE_CONFLICT, conflict))
    needed = REQUEST_PERMISSION[facts.kind]
    if not has_permission(policy, facts.requester_roles, needed):
        held = _names(facts.requester_roles) or "none"
        reasons.append(
            Reason(PERMISSION_MISSING, f"none of the requester's roles ({held}) grants {needed}")
        )
    if policy.training_required and not facts.certificate_valid:
        reasons.append(Reason(NO_CERTIFICATE, "the requester holds no valid training certificate"))
    if facts.offence_category not in policy.offence_categories:
        reasons.append(
            Reason(
                OFFENCE_NOT_ALLOWED,
                f"offence category {facts.offence_category!r} is not allowed; "
                f"allowed: {_names(policy.offence_categories)}",
            )
        )
    if facts.purpose not in policy.purposes:
        reasons.append(
            Reason(
                PURPOSE_NOT_ALLOWED,
                f"purpose {facts.purpose!r} is not allowed; allowed: {_names(policy.purposes)}",
            )
        )
    if facts.probe_kind not in policy.probe_kinds:
        reasons.append(
            Reason(
                PROBE_KIND_NOT_ALLOWED,
                f"probe kind {facts.probe_kind!r} is not allowed; "
                f"allowed: {_names(policy.probe_kinds)}",
            )
        )
    if facts.probe_edited and not policy.allow_edited_probes:
        reasons.append(
            Reason(EDITED_PROBE_NOT_ALLOWED, "the probe was edited; this policy allows none")
        )
    if facts.requesting_agency != policy.home_agency and not policy.outside_agencies_allowed:
        reasons.append(
            Reason(
                OUTSIDE_AGENCY,
                f"requested for {facts.requesting_agency!r}, not the home agency "
                f"{policy.home_agency!r}; searches for outside agencies are not allowed",
            )
        )
    per_day = policy.quotas.per_user_per_day
    if facts.searches_today >= per_day:
        reasons.append(
            Reason(
                QUOTA_PER_DAY,
                f"the requester has made {facts.searches_today} requests today; "
                f"the quota is {per_day} per day",
            )
        )
    per_30 = policy.quotas.per_user_per_30_days
    if facts.searches_last_30_days >= per_30:
        reasons.append(
            Reason(
                QUOTA_PER_30_DAYS,
                f"the requester has made {facts.searches_last_30_days} requests in the last "
                f"30 days; the quota is {per_30} per 30 days",
            )
        )
    return reasons


def decide_search(policy: Policy, facts: SearchFacts) -> Decision:
    """Deny with every hard-rule reason that applies; else needs approval for a repeat
    search, naming the earlier one; else allow. top is capped by candidate_list_length."""
    reasons = _deny_reasons(policy, facts)
    if reasons:
        outcome = Outcome.DENY
    elif facts.earlier_search_id is not None:
        outcome = Outcome.NEEDS_APPROVAL
        reasons = [
            Reason(
                REPEAT_SEARCH,
                f"repeats search {facts.earlier_search_id} (same or near-identical probe "
                f"within {policy.repeat.window_days} days); a supervisor must approve it",
            )
        ]
    else:
        outcome = Outcome.ALLOW
    return Decision(
        outcome=outcome,
        reasons=tuple(reasons),
        policy_sha256=policy.sha256,
        top=min(facts.requested_top, policy.candidate_list_length),
        earlier_search_id=facts.earlier_search_id,
        policy_name=policy.name,
        policy_version=policy.version,
    )
