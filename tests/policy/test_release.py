"""release_ready: distinct examiners, never the requester, and no disagreement."""

from __future__ import annotations

import pytest

from candor.policy import awaits_resolution, release_ready

MATCH = "possible_match"
NO = "not_a_match"
UNSURE = "inconclusive"

# (case id, verdicts, reviewers_to_release, ready, fragments of the reason)
CASES = [
    ("one examiner is enough for one", [("alice", MATCH)], 1, True, ["released", "alice"]),
    ("two required, one given", [("alice", MATCH)], 2, False, ["1 of the 2", "(alice)"]),
    (
        "two distinct examiners",
        [("alice", MATCH), ("carol", MATCH)],
        2,
        True,
        ["released: 2 distinct examiners", "alice, carol"],
    ),
    (
        "more than required",
        [("alice", MATCH), ("carol", MATCH), ("dan", MATCH)],
        2,
        True,
        ["3 distinct examiners", "2 required"],
    ),
    (
        "the same examiner twice counts once",
        [("alice", MATCH), ("alice", MATCH)],
        2,
        False,
        ["1 of the 2"],
    ),
    (
        "requester among the reviewers",
        [("bob", MATCH), ("alice", MATCH)],
        2,
        False,
        ["1 of the 2", "bob's own verdict does not count"],
    ),
    ("requester alone", [("bob", MATCH)], 1, False, ["0 of the 1", "bob's own verdict"]),
    (
        "requester plus enough others",
        [("bob", MATCH), ("alice", MATCH), ("carol", MATCH)],
        2,
        True,
        ["alice, carol", "bob's own verdict does not count"],
    ),
    ("no verdicts yet", [], 1, False, ["0 of the 1"]),
    (
        "disagreement blocks release",
        [("alice", MATCH), ("carol", NO), ("dan", MATCH)],
        2,
        False,
        ["disagree", "carol said not_a_match", "blocks release"],
    ),
    (
        "a lone not_a_match blocks",
        [("carol", NO)],
        1,
        False,
        ["disagree", "carol"],
    ),
    (
        "an examiner who changed their mind still disagrees",
        [("alice", MATCH), ("alice", NO), ("carol", MATCH)],
        1,
        False,
        ["alice said not_a_match"],
    ),
    (
        "the requester's not_a_match also blocks",
        [("alice", MATCH), ("carol", MATCH), ("bob", NO)],
        2,
        False,
        ["bob said not_a_match"],
    ),
    (
        "inconclusive does not count",
        [("alice", MATCH), ("carol", UNSURE)],
        2,
        False,
        ["1 of the 2", "(alice)"],
    ),
    (
        "inconclusive does not block",
        [("alice", MATCH), ("carol", UNSURE), ("dan", MATCH)],
        2,
        True,
        ["alice, dan"],
    ),
]


@pytest.mark.parametrize(
    ("verdicts", "required", "ready", "fragments"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_release_ready(
    verdicts: list[tuple[str, str]], required: int, ready: bool, fragments: list[str]
) -> None:
    result, reason = release_ready(verdicts, "bob", required)
    assert result is ready
    assert reason.startswith("released" if ready else "not released")
    for fragment in fragments:
        assert fragment in reason


@pytest.mark.parametrize(
    ("verdicts", "required", "fragment"),
    [
        ([("alice", "match")], 1, "unknown verdict 'match'"),
        ([("", MATCH)], 1, "name its examiner"),
        ([("alice", MATCH)], 0, "at least 1"),
    ],
)
def test_malformed_input_is_refused(
    verdicts: list[tuple[str, str]], required: int, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        release_ready(verdicts, "bob", required)


# With review.resolve_disagreement_by: (case id, blind verdicts, resolving verdict,
# reviewers_to_release, ready, fragments of the reason). The requester is bob.
RESOLVED = [
    (
        "agreement needs no resolution",
        [("alice", MATCH), ("carol", MATCH)],
        [],
        2,
        True,
        ["released: 2 distinct examiners"],
    ),
    (
        "a disagreement awaits the resolver",
        [("alice", MATCH), ("carol", NO)],
        [],
        2,
        False,
        ["not released yet", "carol said not_a_match", "a supervisor who gave no verdict"],
    ),
    (
        "a disagreement before the blind verdicts are all in waits for them",
        [("carol", NO)],
        [],
        2,
        False,
        ["once 2 blind verdicts are in (1 so far)"],
    ),
    (
        "the requester's verdict is not a blind verdict",
        [("bob", MATCH), ("carol", NO)],
        [],
        2,
        False,
        ["(1 so far)"],
    ),
    (
        "a resolving possible_match releases with the agreeing ones",
        [("alice", MATCH), ("carol", NO)],
        [("sam", MATCH)],
        2,
        True,
        ["sam's resolving verdict (possible_match) settled", "(alice, sam)", "2 required"],
    ),
    (
        "a resolving not_a_match closes",
        [("alice", MATCH), ("carol", NO)],
        [("sam", NO)],
        2,
        False,
        ["sam's resolving verdict (not_a_match)", "closed"],
    ),
    (
        "a resolving inconclusive closes",
        [("alice", MATCH), ("carol", NO)],
        [("sam", UNSURE)],
        2,
        False,
        ["closed"],
    ),
    (
        "a resolving possible_match short of the number required",
        [("alice", MATCH), ("carol", NO), ("dan", NO)],
        [("sam", MATCH)],
        3,
        False,
        ["only 2 of the 3", "(alice, sam)"],
    ),
]


@pytest.mark.parametrize(
    ("verdicts", "resolving", "required", "ready", "fragments"),
    [case[1:] for case in RESOLVED],
    ids=[case[0] for case in RESOLVED],
)
def test_release_ready_with_a_resolver(
    verdicts: list[tuple[str, str]],
    resolving: list[tuple[str, str]],
    required: int,
    ready: bool,
    fragments: list[str],
) -> None:
    result, reason = release_ready(
        verdicts, "bob", required, resolving=resolving, resolver="supervisor"
    )
    assert result is ready
    for fragment in fragments:
        assert fragment in reason


def test_two_not_a_matches_are_no_disagreement_for_a_resolver() -> None:
    ready, reason = release_ready([("carol", NO), ("dan", NO)], "bob", 2, resolver="supervisor")
    assert not ready
    assert "disagree" not in reason
    assert "settles" not in reason
    assert "carol, dan said not_a_match" in reason


def test_without_a_resolver_a_disagreement_still_blocks() -> None:
    ready, reason = release_ready([("alice", MATCH), ("carol", NO)], "bob", 2)
    assert not ready
    assert "blocks release" in reason


@pytest.mark.parametrize(
    ("verdicts", "required", "awaits"),
    [
        ([("alice", MATCH), ("carol", NO)], 2, True),
        ([("carol", NO)], 2, False),
        ([("alice", MATCH), ("carol", MATCH)], 2, False),
        ([("bob", MATCH), ("carol", NO)], 2, False),
        ([("carol", NO)], 1, False),
        ([("alice", MATCH)], 1, False),
        # Two not_a_matches agree: the candidate is ruled out, nothing to settle.
        ([("carol", NO), ("dan", NO)], 2, False),
        ([("carol", NO), ("dan", NO), ("erin", NO)], 2, False),
        # inconclusive is no side of a disagreement.
        ([("alice", UNSURE), ("carol", NO)], 2, False),
        # The requester's possible_match is not a blind verdict, so no side either.
        ([("bob", MATCH), ("carol", NO), ("dan", NO)], 2, False),
        ([("alice", MATCH), ("carol", NO), ("dan", NO)], 2, True),
    ],
)
def test_awaits_resolution(verdicts: list[tuple[str, str]], required: int, awaits: bool) -> None:
    assert awaits_resolution(verdicts, "bob", required) is awaits


def test_only_one_resolving_verdict() -> None:
    with pytest.raises(ValueError, match="one resolving verdict"):
        release_ready([("a", NO)], "bob", 1, resolving=[("s", MATCH), ("t", MATCH)])
