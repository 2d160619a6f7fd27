"""decide_search on both example policies: one case per rule and outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from candor.policy import (
    DENY_CODES,
    Decision,
    Outcome,
    Policy,
    SearchFacts,
    decide_search,
    has_permission,
)
from tests.policy.support import EXAMPLE_NAMES, allowed_facts, example

ALLOW = (Outcome.ALLOW, ())


def deny(*codes: str) -> tuple[Outcome, tuple[str, ...]]:
    return (Outcome.DENY, codes)


@dataclass(frozen=True)
class Case:
    name: str
    changes: Callable[[Policy], dict[str, Any]]
    # Expected (outcome, reason codes) under each example policy.
    moratorium: tuple[Outcome, tuple[str, ...]]
    two_reviewers: tuple[Outcome, tuple[str, ...]]


def same(changes: dict[str, Any]) -> Callable[[Policy], dict[str, Any]]:
    return lambda _policy: changes


EVERYTHING_WRONG: dict[str, Any] = {
    "requester_disabled": True,
    "requester_roles": frozenset({"auditor", "supervisor"}),
    "certificate_valid": False,
    "offence_category": "shoplifting",
    "purpose": "general_surveillance",
    "probe_kind": "sketch",
    "probe_edited": True,
    "requesting_agency": "Neighbouring County Sheriff",
    "earlier_search_id": 3,
}

CASES = [
    Case("allow", same({}), ALLOW, ALLOW),
    Case("verify allowed", same({"kind": "verify"}), ALLOW, ALLOW),
    Case("video still allowed", same({"probe_kind": "video_still"}), ALLOW, ALLOW),
    Case("disabled", same({"requester_disabled": True}), deny("disabled"), deny("disabled")),
    Case(
        "auditor holding another role",
        same({"requester_roles": frozenset({"auditor", "analyst"})}),
        deny("role_conflict"),
        deny("role_conflict"),
    ),
    Case(
        "role lacks search.request",
        same({"requester_roles": frozenset({"supervisor"})}),
        deny("permission_missing"),
        deny("permission_missing"),
    ),
    Case(
        "role lacks verify.request",
        same({"kind": "verify", "requester_roles": frozenset({"auditor"})}),
        deny("permission_missing"),
        deny("permission_missing"),
    ),
    Case(
        "no roles at all",
        same({"requester_roles": frozenset()}),
        deny("permission_missing"),
        deny("permission_missing"),
    ),
    Case(
        "examiner may request only where the policy says so",
        same({"requester_roles": frozenset({"examiner"})}),
        deny("permission_missing"),
        ALLOW,
    ),
    Case(
        "no valid certificate",
        same({"certificate_valid": False}),
        deny("no_certificate"),
        deny("no_certificate"),
    ),
    Case(
        "offence not allowed",
        same({"offence_category": "shoplifting"}),
        deny("offence_not_allowed"),
        deny("offence_not_allowed"),
    ),
    Case(
        "offence allowed only by two-reviewers",
        same({"offence_category": "terrorism"}),
        deny("offence_not_allowed"),
        ALLOW,
    ),
    Case(
        "purpose not allowed",
        same({"purpose": "general_surveillance"}),
        deny("purpose_not_allowed"),
        deny("purpose_not_allowed"),
    ),
    Case(
        "sketch refused",
        same({"probe_kind": "sketch"}),
        deny("probe_kind_not_allowed"),
        deny("probe_kind_not_allowed"),
    ),
    Case(
        "composite refused",
        same({"probe_kind": "composite"}),
        deny("probe_kind_not_allowed"),
        deny("probe_kind_not_allowed"),
    ),
    Case(
        "look-alike refused",
        same({"probe_kind": "look_alike"}),
        deny("probe_kind_not_allowed"),
        deny("probe_kind_not_allowed"),
    ),
    Case(
        "unknown probe kind refused",
        same({"probe_kind": "social_media_photo"}),
        deny("probe_kind_not_allowed"),
        deny("probe_kind_not_allowed"),
    ),
    Case(
        "edited probe",
        same({"probe_edited": True}),
        deny("edited_probe_not_allowed"),
        ALLOW,
    ),
    Case(
        "outside agency",
        same({"requesting_agency": "Neighbouring County Sheriff"}),
        deny("outside_agency"),
        ALLOW,
    ),
    Case(
        "agency name differing only in case is outside",
        lambda policy: {"requesting_agency": policy.home_agency.upper()},
        deny("outside_agency"),
        ALLOW,
    ),
    Case(
        "one below the daily quota",
        lambda policy: {
            "searches_today": policy.quotas.per_user_per_day - 1,
            "searches_last_30_days": policy.quotas.per_user_per_day - 1,
        },
        ALLOW,
        ALLOW,
    ),
    Case(
        "daily quota reached",
        lambda policy: {
            "searches_today": policy.quotas.per_user_per_day,
            "searches_last_30_days": policy.quotas.per_user_per_day,
        },
        deny("quota_per_day"),
        deny("quota_per_day"),
    ),
    Case(
        "one below the 30-day quota",
        lambda policy: {"searches_last_30_days": policy.quotas.per_user_per_30_days - 1},
        ALLOW,
        ALLOW,
    ),
    Case(
        "30-day quota reached",
        lambda policy: {"searches_last_30_days": policy.quotas.per_user_per_30_days},
        deny("quota_per_30_days"),
        deny("quota_per_30_days"),
    ),
    Case(
        "both quotas reached",
        lambda policy: {
            "searches_today": policy.quotas.per_user_per_30_days,
            "searches_last_30_days": policy.quotas.per_user_per_30_days,
        },
        deny("quota_per_day", "quota_per_30_days"),
        deny("quota_per_day", "quota_per_30_days"),
    ),
    Case(
        "repeat search needs approval",
        same({"earlier_search_id": 17}),
        (Outcome.NEEDS_APPROVAL, ("repeat_search",)),
        (Outcome.NEEDS_APPROVAL, ("repeat_search",)),
    ),
    Case(
        "repeat verify needs approval",
        same({"kind": "verify", "earlier_search_id": 17}),
        (Outcome.NEEDS_APPROVAL, ("repeat_search",)),
        (Outcome.NEEDS_APPROVAL, ("repeat_search",)),
    ),
    Case(
        "deny beats repeat",
        same({"earlier_search_id": 17, "offence_category": "shoplifting"}),
        deny("offence_not_allowed"),
        deny("offence_not_allowed"),
    ),
    Case(
        "two reasons, both listed",
        same({"certificate_valid": False, "purpose": "general_surveillance"}),
        deny("no_certificate", "purpose_not_allowed"),
        deny("no_certificate", "purpose_not_allowed"),
    ),
    Case(
        "everything wrong: every reason listed",
        lambda policy: {
            **EVERYTHING_WRONG,
            "searches_today": policy.quotas.per_user_per_30_days,
            "searches_last_30_days": policy.quotas.per_user_per_30_days,
        },
        deny(*DENY_CODES),
        deny(
            *(
                code
                for code in DENY_CODES
                if code not in {"edited_probe_not_allowed", "outside_agency"}
            )
        ),
    ),
]


def decide(name: str, changes: Callable[[Policy], dict[str, Any]]) -> Decision:
    policy = example(name)
    return decide_search(policy, allowed_facts(policy, **changes(policy)))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_outcome_and_reasons(name: str, case: Case) -> None:
    expected = case.moratorium if name == "moratorium" else case.two_reviewers
    decision = decide(name, case.changes)
    assert (decision.outcome, decision.codes) == expected
    assert all(reason.message for reason in decision.reasons)


def test_every_deny_code_is_exercised_on_moratorium() -> None:
    fired = {
        code
        for case in CASES
        if case.moratorium[0] is Outcome.DENY
        for code in case.moratorium[1]
        if len(case.moratorium[1]) == 1
    }
    assert fired == set(DENY_CODES)


def test_repeat_names_the_earlier_search() -> None:
    decision = decide("moratorium", same({"earlier_search_id": 4711}))
    assert decision.earlier_search_id == 4711
    assert "4711" in decision.reasons[0].message
    assert "90 days" in decision.reasons[0].message


def test_denied_repeat_still_records_the_earlier_search() -> None:
    decision = decide("two-reviewers", same({"earlier_search_id": 8, "requester_disabled": True}))
    assert decision.outcome is Outcome.DENY
    assert decision.earlier_search_id == 8
    assert "repeat_search" not in decision.codes


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
@pytest.mark.parametrize("requested", [1, 5, 19, 20, 21, 50, 51, 1000])
def test_top_is_capped_by_the_candidate_list_length(name: str, requested: int) -> None:
    policy = example(name)
    decision = decide_search(policy, allowed_facts(policy, requested_top=requested))
    assert decision.top == min(requested, policy.candidate_list_length)


def test_top_cap_differs_between_examples() -> None:
    assert decide("moratorium", same({"requested_top": 30})).top == 20
    assert decide("two-reviewers", same({"requested_top": 30})).top == 30


def test_messages_name_the_offending_values() -> None:
    decision = decide(
        "moratorium",
        same({"requesting_agency": "State Bureau", "offence_category": "shoplifting"}),
    )
    text = " ".join(reason.message for reason in decision.reasons)
    assert "State Bureau" in text
    assert "Example City Police Department" in text
    assert "shoplifting" in text


def test_to_dict_is_json_and_names_the_policy() -> None:
    policy = example("moratorium")
    decision = decide_search(policy, allowed_facts(policy, earlier_search_id=5, requested_top=99))
    as_dict = json.loads(json.dumps(decision.to_dict()))
    assert as_dict == {
        "outcome": "needs_approval",
        "reasons": [{"code": "repeat_search", "message": decision.reasons[0].message}],
        "policy_sha256": policy.sha256,
        "policy_name": "moratorium-example",
        "policy_version": "1",
        "top": 20,
        "earlier_search_id": 5,
    }
    assert type(as_dict["outcome"]) is str


def test_to_dict_of_a_denial_lists_every_reason() -> None:
    decision = decide("moratorium", same({"certificate_valid": False, "probe_edited": True}))
    reasons = json.loads(json.dumps(decision.to_dict()))["reasons"]
    assert [reason["code"] for reason in reasons] == ["no_certificate", "edited_probe_not_allowed"]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"kind": "identify"}, "kind"),
        ({"requester_roles": frozenset({"detective"})}, "unknown role"),
        ({"requesting_agency": "  "}, "requesting_agency"),
        ({"requested_top": 0}, "requested_top"),
        ({"searches_today": -1}, "negative"),
        ({"searches_today": 3, "searches_last_30_days": 2}, "fewer"),
    ],
)
def test_malformed_facts_are_refused(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        allowed_facts(example("moratorium"), **changes)


def test_facts_are_frozen() -> None:
    facts: SearchFacts = allowed_facts(example("moratorium"))
    with pytest.raises(AttributeError):
        facts.purpose = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "roles", "permission", "expected"),
    [
        ("moratorium", {"analyst"}, "search.request", True),
        ("moratorium", {"examiner"}, "search.request", False),
        ("two-reviewers", {"examiner"}, "search.request", True),
        ("moratorium", {"examiner"}, "candidate.review", True),
        ("moratorium", {"analyst"}, "candidate.review", False),
        ("moratorium", {"supervisor"}, "search.approve", True),
        ("moratorium", {"analyst", "supervisor"}, "search.approve", True),
        ("moratorium", set(), "search.request", False),
        ("moratorium", {"auditor"}, "audit.read", True),
        ("moratorium", {"auditor"}, "gallery.enrol", False),
        ("two-reviewers", {"admin"}, "users.manage", True),
        ("two-reviewers", {"supervisor"}, "users.manage", False),
    ],
)
def test_has_permission(name: str, roles: set[str], permission: str, expected: bool) -> None:
    assert has_permission(example(name), roles, permission) is expected


@pytest.mark.parametrize(
    ("roles", "permission"),
    [({"analyst"}, "search.aprove"), ({"detective"}, "search.request")],
)
def test_has_permission_refuses_unknown_names(roles: set[str], permission: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        has_permission(example("moratorium"), roles, permission)
