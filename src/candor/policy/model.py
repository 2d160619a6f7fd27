"""A parsed, validated policy: frozen values only, built by candor.policy.parse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RepeatRule:
    """A search repeats an earlier one when its probe is the same file (same sha256) or its
    template's cosine similarity with an earlier probe's exceeds `similarity`, and the
    earlier search, by anyone, lies within the last `window_days` days."""

    window_days: int
    similarity: float


@dataclass(frozen=True)
class Quotas:
    """Searches one user may request: per day (workspace time zone) and per 30 days."""

    per_user_per_day: int
    per_user_per_30_days: int


@dataclass(frozen=True)
class Retention:
    """Days to keep each kind of data. gallery_max_days None: no policy-wide maximum (each
    gallery photo's own retain_until, set from its legal basis at enrolment, still holds)."""

    probe_days: int
    search_record_days: int
    gallery_max_days: int | None


@dataclass(frozen=True)
class Policy:
    """One version of the agency's policy, identified by the sha256 of the file's bytes."""

    name: str
    version: str
    sha256: str
    source: str
    home_agency: str
    permissions: Mapping[str, frozenset[str]]
    offence_categories: frozenset[str]
    purposes: frozenset[str]
    probe_kinds: frozenset[str]
    outside_agencies_allowed: bool
    repeat: RepeatRule
    quotas: Quotas
    gallery_source_types: frozenset[str]
    candidate_list_length: int
    target_fpir: float
    reviewers_to_release: int
    # A candidate list unreviewed this many days after its search ran is overdue: worklists
    # and the oversight report raise it.
    review_within_days: int
    # The role whose holder settles a disagreement between the blind verdicts (None: a
    # disagreement blocks release, as it always has).
    resolve_disagreement_by: str | None
    training_required: bool
    retention: Retention
    description: str
    allow_edited_probes: bool
