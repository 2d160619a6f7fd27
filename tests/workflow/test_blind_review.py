"""Blind, independent review: no examiner sees another's verdict before giving her own;
a policy's resolve_disagreement_by settles a disagreement of the blind verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from candor.workflow import record_verdict, release_lead, request_search, view_candidates
from candor.workflow.governed import CandidateView, RequestStateError
from tests.agency import Agency, make_agency, new_user, policy_file
from tests.support import people_with_photos, photos_of
from tests.workflow.test_governed import FORM, PROVENANCE

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

SUPERVISOR_REVIEWS = 'supervisor = ["search.approve", "reports.read", "candidate.review"]'


def _enrolled(agency: Agency, faces_dir: Path) -> Agency:
    from candor.workflow import EnrolmentRequest, enrol_files

    people = people_with_photos(faces_dir, 6)
    requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
    enrol_files(agency.workflow, agency["admin1"], requests, PROVENANCE)
    agency.people = people  # type: ignore[attr-defined]
    return agency


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Agency]:
    """The two-reviewers example as it ships: a disagreement blocks release."""
    made = _enrolled(make_agency(tmp_path_factory.mktemp("plain")), faces_dir)
    made.add_user(new_user("ezra", "examiner"))
    yield made
    made.workflow.close()


@pytest.fixture(scope="module")
def resolving(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Agency]:
    """Two blind verdicts, then a supervisor (who reviews here) settles a disagreement."""
    home = tmp_path_factory.mktemp("resolving")
    made = _enrolled(make_agency(home), faces_dir)
    made.set_policy(
        policy_file(
            home,
            "two-reviewers",
            source_type="evaluation",
            supervisor=SUPERVISOR_REVIEWS,
            reviewers_to_release=(
                'reviewers_to_release = 2\nresolve_disagreement_by = "supervisor"'
            ),
        )
    )
    made.add_user(new_user("ezra", "examiner"))
    made.add_user(new_user("sue", "supervisor"))
    yield made
    made.workflow.close()


def _search(agency: Agency, person: int) -> int:
    probe = photos_of(agency.people[person])[1]  # type: ignore[attr-defined]
    outcome = request_search(agency.workflow, agency["ana"], probe, FORM)
    assert outcome.status == "completed"
    return outcome.search_id


def _first(agency: Agency, who: str, search_id: int) -> CandidateView:
    return view_candidates(agency.workflow, agency[who], search_id).candidates[0]


def test_the_second_examiner_sees_the_first_verdict_only_after_her_own(plain: Agency) -> None:
    search_id = _search(plain, 0)
    record_verdict(plain.workflow, plain["eve"], search_id, 1, "possible_match", "same scar")
    before = _first(plain, "eli", search_id)
    assert before.verdicts == ()
    assert before.verdicts_hidden == 1
    assert before.own_verdict is None
    assert before.release_note is None  # it would name eve's verdict
    assert not before.release_ready
    assert before.verdict_wanted

    record_verdict(plain.workflow, plain["eli"], search_id, 1, "possible_match", "ear shape")
    after = _first(plain, "eli", search_id)
    assert [(v["examiner"], v["rationale"]) for v in after.verdicts] == [
        ("eve", "same scar"),
        ("eli", "ear shape"),
    ]
    assert after.own_verdict == "possible_match"
    assert after.verdicts_hidden == 0
    assert after.release_ready


def test_release_is_not_ready_after_her_own_verdict_alone(plain: Agency) -> None:
    search_id = _search(plain, 1)
    mine = record_verdict(plain.workflow, plain["eve"], search_id, 1, "possible_match", "nose")
    assert not mine.release_ready
    assert mine.release_note is not None and "1 of the 2" in mine.release_note
    with pytest.raises(RequestStateError, match="1 of the 2"):
        release_lead(plain.workflow, plain["eve"], search_id, 1, "looks right")


def test_a_supervisor_who_does_not_review_sees_every_verdict(plain: Agency) -> None:
    search_id = _search(plain, 2)
    record_verdict(plain.workflow, plain["eve"], search_id, 1, "not_a_match", "chin")
    seen = _first(plain, "sam", search_id)
    assert [v["verdict"] for v in seen.verdicts] == ["not_a_match"]
    assert seen.verdicts_hidden == 0


def test_without_a_resolver_a_disagreement_blocks_and_more_verdicts_are_taken(
    plain: Agency,
) -> None:
    search_id = _search(plain, 3)
    record_verdict(plain.workflow, plain["eve"], search_id, 1, "possible_match", "nose")
    record_verdict(plain.workflow, plain["eli"], search_id, 1, "not_a_match", "jaw")
    third = record_verdict(plain.workflow, plain["ezra"], search_id, 1, "possible_match", "eyes")
    assert not third.release_ready
    assert third.release_note is not None and "blocks release" in third.release_note
    assert all(v["kind"] == "blind" for v in third.verdicts)


def test_a_supervisor_settles_a_disagreement_for_release(resolving: Agency) -> None:
    search_id = _search(resolving, 0)
    record_verdict(resolving.workflow, resolving["eve"], search_id, 1, "possible_match", "nose")
    # Before the disagreement, the supervisor reviews blind like anyone who reviews.
    record_verdict(resolving.workflow, resolving["eli"], search_id, 1, "not_a_match", "jaw")
    # Not a third blind verdict: the policy's order has a supervisor settle it.
    with pytest.raises(RequestStateError, match="a supervisor who gave none settle it"):
        record_verdict(resolving.workflow, resolving["ezra"], search_id, 1, "possible_match", "x")
    with pytest.raises(RequestStateError, match="not released yet"):
        release_lead(resolving.workflow, resolving["eve"], search_id, 1, "agreed?")
    due = _first(resolving, "sam", search_id)
    assert due.resolution_due == "supervisor"
    assert due.verdict_wanted
    # ezra, who reviews blind, is not asked for a verdict the policy would refuse.
    assert not _first(resolving, "ezra", search_id).verdict_wanted
    assert [v["examiner"] for v in due.verdicts] == ["eve", "eli"]  # she settles knowing them

    settled = record_verdict(
        resolving.workflow, resolving["sam"], search_id, 1, "possible_match", "the scar decides"
    )
    assert settled.settled
    assert [v["kind"] for v in settled.verdicts] == ["blind", "blind", "resolving"]
    assert settled.release_ready
    with pytest.raises(RequestStateError, match="settled"):
        record_verdict(resolving.workflow, resolving["sue"], search_id, 1, "not_a_match", "no")
    released = release_lead(resolving.workflow, resolving["eve"], search_id, 1, "settled")
    assert released.released


def test_a_resolving_not_a_match_closes_the_candidate(resolving: Agency) -> None:
    search_id = _search(resolving, 1)
    record_verdict(resolving.workflow, resolving["eve"], search_id, 1, "possible_match", "nose")
    record_verdict(resolving.workflow, resolving["eli"], search_id, 1, "not_a_match", "jaw")
    closed = record_verdict(resolving.workflow, resolving["sue"], search_id, 1, "not_a_match", "no")
    assert closed.settled
    assert not closed.release_ready
    assert closed.release_note is not None and "closed" in closed.release_note
    with pytest.raises(RequestStateError, match="closed"):
        release_lead(resolving.workflow, resolving["eve"], search_id, 1, "anyway")


def test_a_supervisor_who_gave_a_blind_verdict_does_not_settle(resolving: Agency) -> None:
    search_id = _search(resolving, 2)
    record_verdict(resolving.workflow, resolving["sam"], search_id, 1, "possible_match", "ears")
    # sam reviews blind until his own verdict, as any examiner does.
    assert _first(resolving, "sue", search_id).verdicts_hidden == 1
    record_verdict(resolving.workflow, resolving["eve"], search_id, 1, "not_a_match", "jaw")
    assert _first(resolving, "sam", search_id).resolution_due is None
    assert _first(resolving, "sue", search_id).resolution_due == "supervisor"
    with pytest.raises(RequestStateError, match="already given"):
        record_verdict(resolving.workflow, resolving["sam"], search_id, 1, "possible_match", "x")


def test_two_not_a_matches_wait_for_no_resolver(resolving: Agency) -> None:
    # They agree: the candidate is ruled out. Before the fix the resolver was sent for,
    # and a third examiner's verdict was refused (or taken as a resolving one).
    search_id = _search(resolving, 3)
    record_verdict(resolving.workflow, resolving["eve"], search_id, 1, "not_a_match", "nose")
    record_verdict(resolving.workflow, resolving["eli"], search_id, 1, "not_a_match", "jaw")
    assert _first(resolving, "sam", search_id).resolution_due is None
    third = record_verdict(resolving.workflow, resolving["ezra"], search_id, 1, "not_a_match", "x")
    assert not third.settled
    assert [v["kind"] for v in third.verdicts] == ["blind", "blind", "blind"]
    assert third.release_note is not None and "settles" not in third.release_note
