"""The fixed vocabulary a policy speaks: roles, permissions, probe kinds, gallery sources.

These lists live in code, not in the policy file, so that a policy can only choose among
them: a misspelt permission or probe kind is an error rather than a rule that never fires.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES: tuple[str, ...] = ("analyst", "examiner", "supervisor", "auditor", "admin")

PERMISSIONS: tuple[str, ...] = (
    "search.request",
    "verify.request",
    "search.approve",
    "candidate.review",
    "lead.release",
    "gallery.enrol",
    "gallery.expunge",
    "users.manage",
    "policy.manage",
    "audit.read",
    "audit.checkpoint",
    "reports.read",
    "retention.run",
    "evaluation.run",
)

# An auditor who could search, review or change the gallery would audit their own work.
AUDITOR_PERMISSIONS: frozenset[str] = frozenset({"audit.read", "reports.read", "audit.checkpoint"})

# Whoever can change users or the policy can change who may do everything else; keeping
# these with admin alone means the two-admin confirmations of the workflow cover them.
ADMIN_ONLY_PERMISSIONS: frozenset[str] = frozenset({"users.manage", "policy.manage"})

# What a probe photo is. Sketches, composites and look-alike photos are known kinds so that
# a policy can name them and a request can declare them, but no example policy allows them:
# a face model compares faces, and none of these is a photo of the person sought.
PROBE_KINDS: tuple[str, ...] = (
    "still_photo",
    "video_still",
    "sketch",
    "composite",
    "look_alike",
)

# Mirrors candor.store.models.SOURCE_TYPES (a test keeps them equal); the policy part may
# not import the store, which pulls in SQLAlchemy.
GALLERY_SOURCE_TYPES: tuple[str, ...] = (
    "booking_photo",
    "consented_enrolment",
    "court_order",
    "evaluation",
    "demo",
    "benchmark",
    "simulation",
)

# The permission a request of each kind needs.
REQUEST_PERMISSION: dict[str, str] = {"search": "search.request", "verify": "verify.request"}


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    """The roles as a frozenset; raises ValueError naming any role that is not one of ROLES."""
    held = frozenset(roles)
    unknown = sorted(held.difference(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; the roles are {', '.join(ROLES)}")
    return held


def role_conflict(roles: Iterable[str]) -> str | None:
    """Why this combination of roles may not be held by one person, or None when it may.

    The auditor role is held by nobody who holds another role (docs/accountability.md).
    """
    held = check_roles(roles)
    if "auditor" in held and len(held) > 1:
        others = ", ".join(role for role in ROLES if role in held and role != "auditor")
        return f"the auditor role may not be held together with another role ({others})"
    return None
