"""The shipped example policies: what each says, where they differ, and how they ship."""

from __future__ import annotations

import pytest

from candor.policy import (
    AUDITOR_PERMISSIONS,
    GALLERY_SOURCE_TYPES,
    PERMISSIONS,
    ROLES,
    example_policy_path,
    load_policy,
    role_conflict,
)
from candor.store.models import SOURCE_TYPES
from tests.policy.support import EXAMPLE_NAMES, EXAMPLES_DIR, example, example_text


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_installed_copy_is_the_source(name: str) -> None:
    path = example_policy_path(name)
    assert path.read_bytes() == (EXAMPLES_DIR / f"{name}.toml").read_bytes()
    assert load_policy(path).sha256 == example(name).sha256


def test_unknown_example_is_refused() -> None:
    with pytest.raises(ValueError, match="moratorium, two-reviewers"):
        example_policy_path("permissive")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_say_they_are_illustrative(name: str) -> None:
    head = example_text(name).split("[meta]")[0]
    assert "ILLUSTRATIVE EXAMPLE" in head
    assert "self-hosted" in head


def test_the_moratorium() -> None:
    policy = example("moratorium")
    assert policy.outside_agencies_allowed is False
    assert policy.gallery_source_types == {"booking_photo"}
    assert policy.probe_kinds == {"still_photo", "video_still"}
    assert policy.allow_edited_probes is False
    assert policy.reviewers_to_release == 1
    assert policy.training_required is True
    assert policy.candidate_list_length == 20
    assert policy.target_fpir == 0.01
    assert policy.retention.gallery_max_days is None
    # Asking and judging are separate roles here.
    for role in ROLES:
        assert not {"search.request", "candidate.review"} <= policy.permissions[role]


def test_the_two_reviewer_rule() -> None:
    policy = example("two-reviewers")
    assert "14(5)" in example_text("two-reviewers")
    assert policy.reviewers_to_release == 2
    assert policy.outside_agencies_allowed is True
    assert policy.probe_kinds == {"still_photo", "video_still"}
    assert policy.candidate_list_length == 50
    assert policy.retention.gallery_max_days == 3650


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_role_is_mapped_and_independent(name: str) -> None:
    policy = example(name)
    assert set(policy.permissions) == set(ROLES)
    assert policy.permissions["auditor"] <= AUDITOR_PERMISSIONS
    granted = set().union(*policy.permissions.values())
    assert granted <= set(PERMISSIONS)
    for permission in ("users.manage", "policy.manage"):
        assert [r for r in ROLES if permission in policy.permissions[r]] == ["admin"]


def test_gallery_source_types_match_the_store() -> None:
    assert GALLERY_SOURCE_TYPES == SOURCE_TYPES


@pytest.mark.parametrize(
    ("roles", "conflict"),
    [
        ({"auditor"}, False),
        ({"analyst", "examiner"}, False),
        ({"auditor", "admin"}, True),
        ({"auditor", "analyst", "supervisor"}, True),
    ],
)
def test_role_conflict(roles: set[str], conflict: bool) -> None:
    reason = role_conflict(roles)
    assert (reason is not None) is conflict
    if reason is not None:
        assert "auditor" in reason
