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


def _distinct_blind(verdicts: Sequence[tuple[str, str]], requester: str) -> set[str]:
    return {examiner for examiner, _ in verdicts if examiner != requester}


def awaits_resolution(
    verdicts: Sequence[tuple[str, str]], requester: str, reviewers_to_release: int
) -> bool:
    """Whether the blind verdicts are all in and disagree: the point at which a policy's
    `review.resolve_disagreement_by` lets one holder of that role settle them.

    All in: at least `reviewers_to_release` distinct examiners other than the requester.
    Disagree: an examiner (not the requester) said possible_match and somebody said
    not_a_match. Not_a_matches alone agree (the candidate is ruled out) and inconclusive
    takes no side, so neither leaves anything to settle.
    """
    return _disagree(verdicts, requester) and (
        len(_distinct_blind(verdicts, requester)) >= reviewers_to_release
    )


def _disagree(verdicts: Sequence[tuple[str, str]], requester: str) -> bool:
    matched = any(v == POSSIBLE_MATCH and e != requester for e, v in verdicts)
    return matched and any(verdict == NOT_A_MATCH for _, verdict in verdicts)


def release_ready(
    verdicts: Sequence[tuple[str, str]],
    requester: str,
    reviewers_to_release: int,
    *,
    resolving: Sequence[tuple[str, str]] = (),
    resolver: str | None = None,
) -> tuple[bool, str]:
    """(ready, why) for the blind verdicts given as (examiner, verdict) pairs.

    Ready when at least `reviewers_to_release` distinct examiners other than the requester
    said possible_match and nobody said not_a_match. A not_a_match from anyone, the
    requester included, blocks release: the examiners disagree, and a lead is released
    only on agreement. inconclusive neither counts towards release nor blocks it. The
    requester's own verdicts never count: nobody reviews their own request.

    resolver: the policy's `review.resolve_disagreement_by` (None: a disagreement blocks
    release for good). With a resolver, once the blind verdicts are all in and disagree
    (`awaits_resolution`), the one resolving verdict (`resolving`, (examiner, verdict))
    settles it: possible_match counts with the blind possible_matches towards release,
    anything else closes the candidate unreleased.
    """
    if reviewers_to_release < 1:
        raise ValueError(f"reviewers_to_release must be at least 1, not {reviewers_to_release}")
    for examiner, verdict in (*verdicts, *resolving):
        if not examiner.strip():
            raise ValueError("every verdict must name its examiner")
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; verdicts are {', '.join(VERDICTS)}")
    if len(resolving) > 1:
        raise ValueError("a disagreement is settled by one resolving verdict, not several")
    agreeing = sorted(
        {
            examiner
            for examiner, verdict in verdicts
            if verdict == POSSIBLE_MATCH and examiner != requester
        }
    )
    own = any(examiner == requester for examiner, _ in verdicts)
    note = f"; {requester}'s own verdict does not count, being the requester" if own else ""
    dissent = sorted({examiner for examiner, verdict in verdicts if verdict == NOT_A_MATCH})
    if resolving:
        return _resolved(agreeing, dissent, resolving[0], reviewers_to_release, note)
    if dissent:
        said = f"the examiners disagree ({', '.join(dissent)} said not_a_match)"
        blind = len(_distinct_blind(verdicts, requester))
        if resolver is not None and not agreeing and blind >= reviewers_to_release:
            # All in and nobody for it: ruled out, no disagreement for the resolver.
            return (
                False,
                f"not released: {', '.join(dissent)} said not_a_match and no examiner "
                f"said possible_match{note}",
            )
        if resolver is None:
            return False, f"not released: {said}; a disagreement blocks release"
        if awaits_resolution(verdicts, requester, reviewers_to_release):
            return (
                False,
                f"not released yet: {said}; a {resolver} who gave no verdict on it settles it",
            )
        return (
            False,
            f"not released: {said}; once {reviewers_to_release} blind verdicts are in "
            f"({blind} so far), a {resolver} who gave none settles it",
        )
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


def _resolved(
    agreeing: list[str],
    dissent: list[str],
    resolution: tuple[str, str],
    reviewers_to_release: int,
    note: str,
) -> tuple[bool, str]:
    """The answer once a resolving verdict settled a disagreement."""
    resolver, verdict = resolution
    settled = (
        f"{resolver}'s resolving verdict ({verdict}) settled the disagreement "
        f"({', '.join(dissent) or 'nobody'} said not_a_match)"
    )
    if verdict != POSSIBLE_MATCH:
        return False, f"not released: {settled}; the candidate is closed{note}"
    counted = sorted({*agreeing, resolver})
    if len(counted) < reviewers_to_release:
        return (
            False,
            f"not released: {settled}, but only {len(counted)} of the {reviewers_to_release} "
            f"distinct examiners required said possible_match ({', '.join(counted)}){note}",
        )
    return (
        True,
        f"released: {settled}; {len(counted)} distinct examiners said possible_match "
        f"({', '.join(counted)}), {reviewers_to_release} required{note}",
    )
