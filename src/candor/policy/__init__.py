"""The policy engine: pure decisions from facts, under a validated, hashed policy file.

See docs/policy.md for the file's schema, the reason codes and the invariants that no
policy can weaken.
"""

from __future__ import annotations

from candor.policy.decide import (
    APPROVAL_CODES,
    DENY_CODES,
    REASON_CODES,
    Decision,
    Outcome,
    Reason,
    SearchFacts,
    decide_search,
    has_permission,
)
from candor.policy.errors import PolicyError
from candor.policy.model import Policy, Quotas, RepeatRule, Retention
from candor.policy.parse import (
    EXAMPLE_POLICIES,
    SCHEMA,
    example_policy_path,
    load_policy,
    parse_policy,
)
from candor.policy.release import VERDICTS, Verdict, awaits_resolution, release_ready
from candor.policy.retention import RetentionCutoffs, gallery_retain_until_limit, retention_due
from candor.policy.roles import (
    ADMIN_ONLY_PERMISSIONS,
    AUDITOR_PERMISSIONS,
    GALLERY_SOURCE_TYPES,
    PERMISSIONS,
    PROBE_KINDS,
    ROLES,
    role_conflict,
)

__all__ = [
    "ADMIN_ONLY_PERMISSIONS",
    "APPROVAL_CODES",
    "AUDITOR_PERMISSIONS",
    "DENY_CODES",
    "EXAMPLE_POLICIES",
    "GALLERY_SOURCE_TYPES",
    "PERMISSIONS",
    "PROBE_KINDS",
    "REASON_CODES",
    "ROLES",
    "SCHEMA",
    "VERDICTS",
    "Decision",
    "Outcome",
    "Policy",
    "PolicyError",
    "Quotas",
    "Reason",
    "RepeatRule",
    "Retention",
    "RetentionCutoffs",
    "SearchFacts",
    "Verdict",
    "awaits_resolution",
    "decide_search",
    "example_policy_path",
    "gallery_retain_until_limit",
    "has_permission",
    "load_policy",
    "parse_policy",
    "release_ready",
    "retention_due",
    "role_conflict",
]
