"""What had become of one search as of a checkpoint, in the terms reports count in."""

from __future__ import annotations

from dataclasses import dataclass

from candor.reports.ledger import SearchTrail

QUOTA_REASONS = frozenset({"quota_per_day", "quota_per_30_days"})
# Each search ends up in exactly one of these, so they add up to the searches requested.
OUTCOMES: dict[str, str] = {
    "denied": "denied by the policy",
    "rejected": "rejected by a supervisor",
    "undecided": "not yet decided",
    "awaiting_approval": "awaiting a supervisor",
    "not_run": "allowed, not run",
    "run_no_candidates": "run, no candidates",
    "run_not_reviewed": "run, not reviewed",
    "run_reviewed": "run, reviewed, no lead released",
    "run_lead_released": "run, lead released",
}


@dataclass(frozen=True, slots=True)
class SearchFacts:
    """One search as counted: every field as of the checkpoint `upto`."""

    trail: SearchTrail
    outcome: str | None
    reasons: tuple[str, ...]
    approval: str | None
    run: bool
    candidates: int
    reviewed: bool
    leads: int
    repeat: bool
    outside_agency: bool
    quota_reached: bool
    final: str


def search_facts(trail: SearchTrail, upto: int, home_agencies: dict[str, str]) -> SearchFacts:
    """The search as the first `upto` entries of the log tell it."""
    decided = trail.decided_seq is not None and trail.decided_seq <= upto
    outcome = trail.outcome if decided else None
    reasons = trail.reasons if decided else ()
    approval = trail.approval if trail.approval_seq and trail.approval_seq <= upto else None
    run = trail.run_seq is not None and trail.run_seq <= upto
    candidates = trail.candidates if run else 0
    reviewed = run and any(v.seq <= upto for v in trail.verdicts)
    leads = sum(1 for seq, _ in trail.releases if seq <= upto)
    home = home_agencies.get(trail.policy_sha256 or "")
    outside = "outside_agency" in reasons or (home is not None and trail.requesting_agency != home)
    if outcome is None:
        final = "undecided"
    elif outcome == "deny":
        final = "denied"
    elif approval == "rejected":
        final = "rejected"
    elif outcome == "needs_approval" and approval is None:
        final = "awaiting_approval"
    elif not run:
        final = "not_run"
    elif leads:
        final = "run_lead_released"
    elif reviewed:
        final = "run_reviewed"
    elif candidates:
        final = "run_not_reviewed"
    else:
        final = "run_no_candidates"
    return SearchFacts(
        trail=trail,
        outcome=outcome,
        reasons=reasons,
        approval=approval,
        run=run,
        candidates=candidates,
        reviewed=reviewed,
        leads=leads,
        repeat=decided and trail.earlier_search_id is not None,
        outside_agency=outside,
        quota_reached=bool(QUOTA_REASONS.intersection(reasons)),
        final=final,
    )
