"""When a candidate list is still under review: the one rule, as a pure function.

The review queue and the worklists ask the database (`candor.store.requests`, whose SQL
`_review_open` and `_unsettled` say the same thing in SQL); the usage report reads the
audit log up to a checkpoint and asks `list_under_review` with what the log says. A test
(tests/reports/test_overdue_rule.py) pins the two to the same lists.
"""

from __future__ import annotations

from collections.abc import Iterable


def candidate_unsettled(verdicts: Iterable[tuple[str, bool]]) -> bool:
    """A candidate's blind verdicts disagree (possible_match against not_a_match) and no
    resolving verdict settled them; `verdicts`: (verdict, resolves) of each one given."""
    blind: set[str] = set()
    for verdict, resolves in verdicts:
        if resolves:
            return False
        blind.add(verdict)
    return {"possible_match", "not_a_match"} <= blind


def list_under_review(
    *,
    candidates: int,
    released: bool,
    blind_examiners: int,
    unsettled: bool,
    reviewers_required: int,
    resolving: bool,
) -> bool:
    """A completed search's candidate list still waits for review: it has candidates, no
    lead of it is released, and fewer distinct examiners than `reviewers_required` gave it
    a blind verdict or (`resolving`: the policy names who settles a disagreement) one of
    its candidates is `unsettled`."""
    if candidates == 0 or released:
        return False
    return blind_examiners < reviewers_required or (resolving and unsettled)


__all__ = ["candidate_unsettled", "list_under_review"]
