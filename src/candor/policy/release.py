"""Whether the examiners' verdicts on a candidate release it as an investigative lead."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Verdict(StrEnum):
    """What an examiner may say of one candidate: the one list of verdicts.

    The command line offers these as its choices and the workflow refuses anything else;
    the database's CHECK constraint (candor.store) is only the last line.
    """

    POSSIBLE_MATCH = "possible_match"
    NOT_A_MATCH = "not_a_match"
    INCONCLUSIVE = "inconclusive"


POSSIBLE_MATCH = Verdict.POSSIBLE_MATCH.value
NOT_A_MATCH = Verdict.NOT_A_MATCH.value
INCONCLUSIVE = Verdict.INCONCLUSIVE.value
VERDICTS: tuple[str, ...] = tuple(verdict.value for verdict in Verdict)


class LeadOutcome(StrEnum):
    """What came of a released lead, as its requester records it: the one list of outcomes.

    A lead is never an identification; these say what other evidence later showed.
    """

    PENDING = "pending"
    CONFIRMED_BY_OTHER_EVIDENCE = "confirmed_by_other_evidence"
    EXCLUDED = "excluded"
    NO_ACTION = "no_action"


LEAD_OUTCOMES: tuple[str, ...] = tuple(outcome.value for outcome in LeadOutcome)


def release_ready(
    verdicts: Sequence[tuple[str, str]], requester: str, reviewers_to_release: int
) -> tuple[bool, str]:
    """(ready, why) for verdicts given as (examiner, verdict) pairs.

    Ready when at least `reviewers_to_release` distinct examiners other than the requester
    said possible_match and nobody said not_a_match. A not_a_match from anyone, the
    requester included, blocks release: the examiners disagree, and a lead is released
    only on agreement. inconclusive neither counts towards release nor blocks it. The
    requester's own verdicts never count: nobody reviews their own request.
    """
    if reviewers_to_release < 1:
        raise ValueError(f"reviewers_to_release must be at least 1, not {reviewers_to_release}")
    for examiner, verdict in verdicts:
        if not examiner.strip():
            raise ValueError("every verdict must name its examiner")
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; verdicts are {', '.join(VERDICTS)}")
    dissent = sorted({examiner for examiner, verdict in verdicts if verdict == NOT_A_MATCH})
    if dissent:
        return (
            False,
            f"not released: the examiners disagree ({', '.join(dissent)} said not_a_match); "
            "a disagreement blocks release",
        )
    agreeing = sorted(
        {
            examiner
            for examiner, verdict in verdicts
            if verdict == POSSIBLE_MATCH and examiner != requester
        }
    )
    own = any(examiner == requester for examiner, _ in verdicts)
    note = f"; {requester}'s own verdict does not count, being the requester" if own else ""
    if len(agreeing) < reviewers_to_release:
        named = f" ({', '.join(agreeing)})" if agreeing else ""
        return (
            False,
            f"not released: {len(agreeing)} of the {reviewers_to_release} distinct examiners "
            f"required said possible_match{named}{note}",
        )
    return (
        True,
        f"released: {len(agreeing)} distinct examiners said possible_match "
        f"({', '.join(agreeing)}), {reviewers_to_release} required, none disagreed{note}",
    )
