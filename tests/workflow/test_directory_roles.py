"""Directory accounts against a real slapd: login by bind, roles from confirmed group
mappings, person confirmations of admins and auditors, the auditor's exclusivity, a
disabled or removed person, a directory that is down, and the audit entries of it all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3.core.exceptions import LDAPEntryAlreadyExistsResult

from candor.policy import example_policy_path
from candor.workflow import Workflow
from candor.workflow.accounts import (
    AccountWorkflowError,
    Actor,
    LoginFailedError,
    NotAnAdminError,
    NotAuthenticatedError,
    SelfConfirmationError,
    authenticate,
    bootstrap,
    change_password,
    confirm_change,
    login,
    logout,
    request_policy_change,
    reset_password,
    update_certificate,
)
from candor.workflow.audit_ops import verify_stored_log
from candor.workflow.directory import (
    DirectoryWorkflowError,
    check_person,
    confirm_mapping,
    confirm_person,
    list_mappings,
    person_confirmations,
    reject_mapping,
    request_mapping,
    withdraw_mapping,
)
from candor.workflow.workspaces import create_workspace
from tests.support_slapd import ThrowawaySlapd, slapd
from tests.workflow.test_accounts import (
    PASSWORDS,
    audit_entries,
    cheap_hashing,
    last_entry,
    log_in,
    new_user,
)

__all__ = ["cheap_hashing", "slapd"]

DIRECTORY_PASSWORD = "carol-directory-pass-9"


@pytest.fixture
def workflow(tmp_path: Path, cheap_hashing: None, slapd: ThrowawaySlapd) -> Iterator[Workflow]:
    with Workflow(create_workspace(tmp_path / "ws")) as opened:
        slapd.write_settings(opened.workspace.home)
        yield opened


@pytest.fixture
def admins(workflow: Workflow) -> tuple[Actor, Actor]:
    bootstrap(workflow, new_user("alice"), new_user("bob"))
    alice, bob = log_in(workflow, "alice"), log_in(workflow, "bob")
    change = request_policy_change(workflow, alice, example_policy_path("two-reviewers"))
    confirm_change(workflow, bob, change.id)
    return alice, bob


def person(slapd: ThrowawaySlapd, prefix: str) -> tuple[str, str]:
    """A new directory person (username, DN) with DIRECTORY_PASSWORD."""
    username = slapd.unique(prefix)
    return username, slapd.add_person(username, DIRECTORY_PASSWORD, display_name="Carol Day")


def new_group(slapd: ThrowawaySlapd, name: str, *members: str) -> str:
    return slapd.add_group(slapd.unique(name), members)


def map_group(workflow: Workflow, admins: tuple[Actor, Actor], group: str, role: str) -> int:
    mapping = request_mapping(workflow, admins[0], group.upper(), role)
    return confirm_mapping(workflow, admins[1], mapping.id).id


def directory_actor(workflow: Workflow, username: str) -> tuple[str, Actor]:
    token = login(workflow, username, DIRECTORY_PASSWORD).token
    return token, authenticate(workflow, token)


def entries(workflow: Workflow, action: str, username: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in audit_entries(workflow)
        if entry["action"] == action and entry["details"].get("username") == username
    ]


def test_login_and_roles_follow_groups(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    alice, bob = admins
    carol, carol_dn = person(slapd, "carol")
    group = new_group(slapd, "analysts", carol_dn)

    # No confirmed mapping yet: no account is made.
    with pytest.raises(LoginFailedError, match="no directory group"):
        login(workflow, carol, DIRECTORY_PASSWORD)
    assert last_entry(workflow, "auth.login_failed")["details"]["reason"] == "no_mapped_group"

    mapping = request_mapping(workflow, alice, group.upper(), "analyst")
    with pytest.raises(SelfConfirmationError):
        confirm_mapping(workflow, alice, mapping.id)
    with pytest.raises(LoginFailedError, match="no directory group"):
        login(workflow, carol, DIRECTORY_PASSWORD)  # pending is not in force
    confirm_mapping(workflow, bob, mapping.id)

    binds = slapd.binds_for(carol_dn)
    with pytest.raises(LoginFailedError, match="empty password"):
        login(workflow, carol, "")
    assert slapd.binds_for(carol_dn) == binds
    assert last_entry(workflow, "auth.login_failed")["details"]["reason"] == "empty_password"
    with pytest.raises(LoginFailedError, match="wrong username or password"):
        login(workflow, carol, "not-her-password-at-all")
    assert last_entry(workflow, "auth.login_failed")["details"]["reason"] == "wrong_password"

    token, actor = directory_actor(workflow, carol)
    assert actor.roles == frozenset({"analyst"})
    assert not actor.certificate_valid  # until an admin records her certificate
    created = entries(workflow, "directory.account_created", carol)
    assert len(created) == 1 and created[0]["details"]["dn"].lower() == carol_dn.lower()
    granted = entries(workflow, "directory.roles_changed", carol)[-1]["details"]
    assert granted["granted"] == ["analyst"] and granted["groups"] == {"analyst": [group.upper()]}
    update_certificate(
        workflow, alice, carol, "FR-2026-carol", new_user("alice").certificate_expires
    )
    assert authenticate(workflow, token).certificate_valid

    # Out of the group: the role is gone at her next request (cache_seconds = 0 here).
    slapd.remove_member(group, carol_dn)
    assert authenticate(workflow, token).roles == frozenset()
    removed = entries(workflow, "directory.roles_changed", carol)[-1]["details"]
    assert removed["removed"] == ["analyst"] and removed["roles"] == []
    # Back in the group, then the mapping withdrawn by one admin: gone again at once.
    slapd.add_member(group, carol_dn)
    assert authenticate(workflow, token).roles == frozenset({"analyst"})
    withdraw_mapping(workflow, bob, mapping.id, "the group is being retired")
    assert authenticate(workflow, token).roles == frozenset()
    assert [info.id for info in list_mappings(workflow, alice)] == []
    assert verify_stored_log(workflow).ok


def test_group_named_with_a_comma_matches_slapds_spelling(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    # slapd answers `cn=Équipe\, Nord` as `cn=\C3\89quipe\2C Nord`: the mapping typed
    # as the admin knows the group must still match it.
    carol, carol_dn = person(slapd, "carol")
    group = slapd.add_group(slapd.unique("Équipe, Nord"), (carol_dn,))
    map_group(workflow, admins, group, "analyst")
    _, actor = directory_actor(workflow, carol)
    assert actor.roles == frozenset({"analyst"})


def test_a_mapping_names_a_group_dn(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    with pytest.raises(DirectoryWorkflowError, match="is not a group DN"):
        request_mapping(workflow, admins[0], "cn=analysts,=nothing", "analyst")


def test_admin_and_auditor_need_a_confirmed_person_and_auditor_stays_alone(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    alice, bob = admins
    dave, dave_dn = person(slapd, "dave")
    admin_group = new_group(slapd, "admins", dave_dn)
    auditor_group = new_group(slapd, "auditors")
    map_group(workflow, admins, admin_group, "admin")
    map_group(workflow, admins, auditor_group, "auditor")

    token, actor = directory_actor(workflow, dave)
    assert actor.roles == frozenset()  # admin waits for a second admin to confirm dave
    waiting = person_confirmations(workflow, alice)
    assert [(info.username, info.role) for info in waiting] == [(dave, "admin")]
    with pytest.raises(DirectoryWorkflowError, match="nothing to decide"):
        confirm_person(workflow, alice, dave, "auditor")
    confirm_person(workflow, alice, dave, "admin")
    actor = authenticate(workflow, token)
    assert actor.roles == frozenset({"admin"})
    assert entries(workflow, "directory.person_confirmed", dave)[0]["actor"] == "alice"
    # dave, now an admin, may not confirm his own auditor role.
    slapd.add_member(auditor_group, dave_dn)
    assert authenticate(workflow, token).roles == frozenset({"admin"})
    with pytest.raises(SelfConfirmationError):
        confirm_person(workflow, actor, dave, "auditor")
    confirm_person(workflow, bob, dave, "auditor")
    # Auditor and admin together: no role at all until fixed, said in the log.
    assert authenticate(workflow, token).roles == frozenset()
    conflict = entries(workflow, "directory.roles_changed", dave)[-1]["details"]
    assert "auditor" in conflict["reason"] and conflict["removed"] == ["admin"]
    # Out of the admin group: auditor alone is in force; the admin confirmation is forgotten.
    slapd.remove_member(admin_group, dave_dn)
    assert authenticate(workflow, token).roles == frozenset({"auditor"})
    slapd.add_member(admin_group, dave_dn)
    slapd.remove_member(auditor_group, dave_dn)
    assert authenticate(workflow, token).roles == frozenset()  # admin asks again
    assert [info.role for info in person_confirmations(workflow, alice)] == ["admin"]
    assert verify_stored_log(workflow).ok


def test_disabled_person_can_do_nothing(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    erin, erin_dn = person(slapd, "erin")
    map_group(workflow, admins, new_group(slapd, "examiners", erin_dn), "examiner")
    token, actor = directory_actor(workflow, erin)
    other_token, _ = directory_actor(workflow, erin)
    assert actor.roles == frozenset({"examiner"})
    slapd.disable(erin_dn)
    with pytest.raises(NotAuthenticatedError, match="disabled in the directory"):
        authenticate(workflow, token)
    with pytest.raises(NotAuthenticatedError, match="ended"):
        authenticate(workflow, other_token)  # every session of hers ended
    ended = entries(workflow, "directory.sessions_ended", erin)
    assert ended[0]["details"]["sessions_ended"] == 2
    with pytest.raises(LoginFailedError, match="wrong username or password"):
        login(workflow, erin, DIRECTORY_PASSWORD)
    assert last_entry(workflow, "auth.login_failed")["details"]["reason"] == "disabled"


def test_directory_down_refuses_directory_accounts_not_local_ones(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    frank, frank_dn = person(slapd, "frank")
    map_group(workflow, admins, new_group(slapd, "analysts", frank_dn), "analyst")
    token, _ = directory_actor(workflow, frank)
    slapd.write_settings(workflow.workspace.home, url="ldap://127.0.0.1:9", timeout_seconds=2)
    with pytest.raises(LoginFailedError, match="directory cannot be used now"):
        login(workflow, frank, DIRECTORY_PASSWORD)
    assert last_entry(workflow, "auth.login_failed")["details"]["reason"] == "directory_unavailable"
    with pytest.raises(NotAuthenticatedError, match="cannot be reached"):
        authenticate(workflow, token)
    assert logout(workflow, token).username == frank  # logging out still works
    assert log_in(workflow, "alice").roles == frozenset({"admin"})  # local accounts work


def test_local_account_is_never_a_directory_one(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    # A directory person named like a local admin logs in as nobody: the local password
    # decides for the local account.
    with contextlib.suppress(LDAPEntryAlreadyExistsResult):
        slapd.add_person("alice", DIRECTORY_PASSWORD)
    with pytest.raises(LoginFailedError, match="wrong username or password"):
        login(workflow, "alice", DIRECTORY_PASSWORD)
    assert log_in(workflow, "alice").username == "alice"
    assert PASSWORDS["alice"] != DIRECTORY_PASSWORD


def test_mappings_are_for_admins_and_need_a_reason_to_reject(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    alice, bob = admins
    with pytest.raises(DirectoryWorkflowError, match="not a group DN"):
        request_mapping(workflow, alice, "analysts", "analyst")
    with pytest.raises(DirectoryWorkflowError, match="unknown role"):
        request_mapping(workflow, alice, "cn=x,dc=candor,dc=test", "superuser")
    mapping = request_mapping(workflow, alice, "cn=x,dc=candor,dc=test", "analyst")
    with pytest.raises(DirectoryWorkflowError, match="already mapped"):
        request_mapping(workflow, bob, "CN=X, DC=candor, DC=test", "analyst")
    with pytest.raises(DirectoryWorkflowError, match="reason"):
        reject_mapping(workflow, bob, mapping.id, " ")
    assert reject_mapping(workflow, bob, mapping.id, "wrong group").state == "rejected"
    carol, carol_dn = person(slapd, "carol")
    map_group(workflow, admins, new_group(slapd, "analysts", carol_dn), "analyst")
    _, actor = directory_actor(workflow, carol)
    with pytest.raises(NotAnAdminError):
        list_mappings(workflow, actor)
    check = check_person(workflow, alice, carol)
    assert check.roles_in_force == ("analyst",) and check.has_account
    with pytest.raises(DirectoryWorkflowError, match="no person"):
        check_person(workflow, alice, slapd.unique("nobody"))


def test_directory_password_is_not_candors(
    workflow: Workflow, admins: tuple[Actor, Actor], slapd: ThrowawaySlapd
) -> None:
    gina, gina_dn = person(slapd, "gina")
    map_group(workflow, admins, new_group(slapd, "analysts", gina_dn), "analyst")
    _, actor = directory_actor(workflow, gina)
    with pytest.raises(AccountWorkflowError, match="directory account"):
        change_password(workflow, actor, "a-local-password-for-gina")
    with pytest.raises(AccountWorkflowError, match="directory account"):
        reset_password(workflow, admins[0], gina, "a-temporary-password-1")
    assert directory_actor(workflow, gina)[1].roles == frozenset({"analyst"})
