"""Accounts: bootstrap, logins, two-admin confirmations, roles, policy activation, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select, text

from candor.policy import example_policy_path
from candor.store import AdminChange, AuditEntry, AuthSession, User
from candor.workflow import Workflow
from candor.workflow import accounts as accounts_module
from candor.workflow.accounts import (
    AccountWorkflowError,
    Actor,
    LoginFailedError,
    NewUser,
    NotAnAdminError,
    NotAuthenticatedError,
    PolicyFileError,
    RoleConflictError,
    SelfConfirmationError,
    WeakPasswordError,
    active_policy,
    active_policy_info,
    authenticate,
    bootstrap,
    change_password,
    confirm_change,
    disable_user,
    list_user_infos,
    login,
    logout,
    pending_change_infos,
    reject_change,
    request_enable,
    request_policy_change,
    request_role_grant,
    request_role_revoke,
    request_user,
    session_view,
    update_certificate,
)
from candor.workflow.workspaces import create_workspace
from tests.support import database_holds

PASSWORDS = {
    "alice": "alice-correct-horse-1",
    "bob": "bob-battery-staple-22",
    "carol": "carol-analyst-pass-333",
    "dave": "dave-fourth-password-4",
}
CHEAP_HASHER = PasswordHasher(
    time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=16, type=Type.ID
)


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production parameters cost ~0.2 s per hash; one test below checks them.
    monkeypatch.setattr(accounts_module, "PASSWORD_HASHER", CHEAP_HASHER)


@pytest.fixture
def workflow(tmp_path: Path, cheap_hashing: None) -> Iterator[Workflow]:
    with Workflow(create_workspace(tmp_path / "ws")) as opened:
        yield opened


def new_user(name: str, *roles: str, expires: date = date(2030, 1, 1)) -> NewUser:
    return NewUser(
        username=name,
        unit="Robbery" if name != "alice" else "IT",
        certificate_ref=f"FR-2026-{name}",
        certificate_expires=expires,
        password=PASSWORDS[name],
        display_name=name.title(),
        roles=roles,
    )


def log_in(workflow: Workflow, name: str) -> Actor:
    return authenticate(workflow, login(workflow, name, PASSWORDS[name]).token)


@pytest.fixture
def admins(workflow: Workflow) -> tuple[Actor, Actor]:
    bootstrap(workflow, new_user("alice"), new_user("bob"))
    return log_in(workflow, "alice"), log_in(workflow, "bob")


def add_user(workflow: Workflow, admins: tuple[Actor, Actor], name: str, *roles: str) -> Actor:
    change = request_user(workflow, admins[0], new_user(name, *roles))
    confirm_change(workflow, admins[1], change.id)
    return log_in(workflow, name)


def audit_entries(workflow: Workflow) -> list[dict[str, Any]]:
    with workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [json.loads(body) for body in bodies]


def audit_bytes(workflow: Workflow) -> bytes:
    with workflow.workspace.session() as session:
        return b"\n".join(session.scalars(select(AuditEntry.body)).all())


def last_entry(workflow: Workflow, action: str) -> dict[str, Any]:
    matching = [entry for entry in audit_entries(workflow) if entry["action"] == action]
    assert matching, f"no audit entry {action}"
    return matching[-1]


def test_bootstrap_creates_exactly_two_admins_once(workflow: Workflow) -> None:
    first, second = bootstrap(workflow, new_user("alice", "analyst"), new_user("bob"))
    assert (first.username, second.username) == ("alice", "bob")
    assert first.roles == second.roles == ("admin",)
    assert first.created_by == "bootstrap"
    with workflow.workspace.session() as session:
        assert session.scalars(select(User.username).order_by(User.id)).all() == ["alice", "bob"]
    entries = audit_entries(workflow)
    assert [entry["action"] for entry in entries] == ["user.bootstrap", "user.bootstrap"]
    assert [entry["actor"] for entry in entries] == [None, None]
    assert [entry["objects"] for entry in entries] == [{"user": first.id}, {"user": second.id}]
    assert entries[0]["details"]["unit"] == "IT"
    assert entries[1]["details"]["certificate_ref"] == "FR-2026-bob"

    with pytest.raises(AccountWorkflowError, match="already has users"):
        bootstrap(workflow, new_user("carol"), new_user("dave"))
    with workflow.workspace.session() as session:
        assert len(session.scalars(select(User)).all()) == 2


@pytest.mark.parametrize(
    ("first", "second", "error", "message"),
    [
        (new_user("alice"), new_user("alice"), AccountWorkflowError, "two different"),
        (
            new_user("alice"),
            NewUser("bob", "IT", "C", date(2030, 1, 1), "short"),
            WeakPasswordError,
            "at least 12",
        ),
        (
            new_user("alice"),
            NewUser("Bob", "IT", "C", date(2030, 1, 1), "long-enough-password"),
            AccountWorkflowError,
            "lower-case",
        ),
        (
            new_user("alice"),
            NewUser("bob", "  ", "C", date(2030, 1, 1), "long-enough-password"),
            AccountWorkflowError,
            "unit",
        ),
    ],
)
def test_bootstrap_refusals_create_nobody(
    workflow: Workflow, first: NewUser, second: NewUser, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        bootstrap(workflow, first, second)
    assert audit_entries(workflow) == []
    bootstrap(workflow, new_user("alice"), new_user("bob"))


def test_login_stores_only_the_token_hash_and_is_audited(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    result = login(workflow, "alice", PASSWORDS["alice"])
    assert len(result.token) >= 43
    assert result.token not in repr(result)
    assert (
        timedelta(hours=7, minutes=59) < result.expires_at - datetime.now(UTC) <= timedelta(hours=8)
    )
    with workflow.workspace.session() as session:
        stored = session.scalars(select(AuthSession.token_sha256)).all()
    assert accounts_module.token_sha256(result.token) in stored
    assert result.token not in stored
    assert not database_holds(workflow.workspace, result.token.encode())
    entry = last_entry(workflow, "auth.login")
    assert entry["actor"] == "alice"
    assert set(entry["objects"]) == {"user", "session"}
    actor = authenticate(workflow, result.token)
    assert actor == Actor(
        user_id=admins[0].user_id,
        username="alice",
        unit="IT",
        roles=frozenset({"admin"}),
        certificate_valid=True,
        disabled=False,
    )


def test_session_lifetime_is_configurable(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    result = login(workflow, "bob", PASSWORDS["bob"], lifetime=timedelta(hours=1))
    assert result.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    with pytest.raises(AccountWorkflowError, match="at most 7 days"):
        login(workflow, "bob", PASSWORDS["bob"], lifetime=timedelta(days=30))


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "not-alices-password", "wrong_password"),
        ("mallory", "whatever-password-1", "unknown_user"),
        ("alice", "", "wrong_password"),
    ],
)
def test_failed_logins_are_audited_without_the_password(
    workflow: Workflow, admins: tuple[Actor, Actor], username: str, password: str, reason: str
) -> None:
    with pytest.raises(LoginFailedError, match="wrong username or password"):
        login(workflow, username, password)
    entry = last_entry(workflow, "auth.login_failed")
    assert entry["actor"] is None
    assert entry["details"] == {"username": username, "reason": reason}
    assert ("user" in entry["objects"]) == (reason != "unknown_user")
    if password:
        assert password.encode() not in audit_bytes(workflow)


def test_no_session_unknown_token_expired_and_ended_sessions_refused(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    with pytest.raises(NotAuthenticatedError, match="candor login"):
        authenticate(workflow, None)
    with pytest.raises(NotAuthenticatedError, match="not known"):
        authenticate(workflow, "made-up-token")

    expiring = login(workflow, "alice", PASSWORDS["alice"]).token
    with workflow.workspace.session() as session, session.begin():
        session.execute(
            text(
                "UPDATE auth_sessions SET created_at = '2026-01-01 00:00:00', "
                "expires_at = '2026-01-01 08:00:00' WHERE token_sha256 = :sha"
            ),
            {"sha": accounts_module.token_sha256(expiring)},
        )
    with pytest.raises(NotAuthenticatedError, match="expired"):
        authenticate(workflow, expiring)

    token = login(workflow, "alice", PASSWORDS["alice"]).token
    assert logout(workflow, token).username == "alice"
    with pytest.raises(NotAuthenticatedError, match="ended"):
        authenticate(workflow, token)
    with pytest.raises(NotAuthenticatedError):
        logout(workflow, token)
    entry = last_entry(workflow, "auth.logout")
    assert entry["actor"] == "alice"


def test_a_new_user_exists_only_after_a_second_admin_confirms(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, bob = admins
    change = request_user(workflow, alice, new_user("carol", "analyst"))
    assert change.state == "pending"
    assert "password_hash" not in change.payload
    requested = last_entry(workflow, "user.create_requested")
    assert requested["actor"] == "alice"
    assert requested["objects"] == {"change": change.id}
    assert requested["details"]["roles"] == ["analyst"]

    with pytest.raises(LoginFailedError):
        login(workflow, "carol", PASSWORDS["carol"])
    with pytest.raises(SelfConfirmationError, match="another admin"):
        confirm_change(workflow, alice, change.id)
    assert [pending.id for pending in pending_change_infos(workflow, bob)] == [change.id]
    with pytest.raises(LoginFailedError):
        login(workflow, "carol", PASSWORDS["carol"])

    confirmed = confirm_change(workflow, bob, change.id)
    assert (confirmed.state, confirmed.decided_by) == ("confirmed", "bob")
    carol = log_in(workflow, "carol")
    assert carol.roles == frozenset({"analyst"})
    created = last_entry(workflow, "user.created")
    assert created["actor"] == "bob"
    assert created["objects"] == {"change": change.id, "user": carol.user_id}
    assert created["details"]["requested_by"] == "alice"
    with workflow.workspace.session() as session:
        stored = session.get(AdminChange, change.id)
        assert stored is not None
        assert "password_hash" not in stored.payload
        user = session.scalar(select(User).where(User.username == "carol"))
        assert user is not None
        assert user.created_by == "bob"
    with pytest.raises(AccountWorkflowError, match="already confirmed"):
        confirm_change(workflow, bob, change.id)
    assert pending_change_infos(workflow, alice) == []


def test_only_enabled_admins_request_and_confirm(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    carol = add_user(workflow, admins, "carol", "analyst", "examiner")
    with pytest.raises(NotAnAdminError, match="not an admin"):
        request_user(workflow, carol, new_user("dave", "analyst"))
    change = request_user(workflow, admins[0], new_user("dave", "analyst"))
    with pytest.raises(NotAnAdminError):
        confirm_change(workflow, carol, change.id)
    with pytest.raises(NotAnAdminError):
        disable_user(workflow, carol, "alice")
    with pytest.raises(NotAnAdminError):
        list_user_infos(workflow, carol)


def test_a_rejected_user_never_exists_and_the_hash_is_dropped(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, bob = admins
    change = request_user(workflow, alice, new_user("carol", "analyst"))
    with pytest.raises(AccountWorkflowError, match="reason"):
        reject_change(workflow, bob, change.id, "  ")
    rejected = reject_change(workflow, bob, change.id, "not in the unit's roster")
    assert (rejected.state, rejected.reason) == ("rejected", "not in the unit's roster")
    with pytest.raises(LoginFailedError):
        login(workflow, "carol", PASSWORDS["carol"])
    with workflow.workspace.session() as session:
        stored = session.get(AdminChange, change.id)
        assert stored is not None
        assert "password_hash" not in stored.payload
    entry = last_entry(workflow, "admin.change_rejected")
    assert entry["actor"] == "bob"
    assert entry["details"]["reason"] == "not in the unit's roster"


def test_duplicate_user_requests_refused(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    alice, bob = admins
    request_user(workflow, alice, new_user("carol", "analyst"))
    with pytest.raises(AccountWorkflowError, match="already requested"):
        request_user(workflow, bob, new_user("carol", "examiner"))
    with pytest.raises(AccountWorkflowError, match="already exists"):
        request_user(workflow, bob, new_user("alice", "analyst"))
    with pytest.raises(AccountWorkflowError, match="at least one role"):
        request_user(workflow, bob, new_user("dave"))
    with pytest.raises(AccountWorkflowError, match="unknown role"):
        request_user(workflow, bob, new_user("dave", "superuser"))


def test_the_auditor_holds_no_other_role(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    alice = admins[0]
    with pytest.raises(RoleConflictError, match="auditor"):
        request_user(workflow, alice, new_user("carol", "auditor", "analyst"))
    add_user(workflow, admins, "carol", "analyst")
    add_user(workflow, admins, "dave", "auditor")
    with pytest.raises(RoleConflictError, match="auditor"):
        request_role_grant(workflow, alice, "carol", "auditor")
    with pytest.raises(RoleConflictError, match="auditor"):
        request_role_grant(workflow, alice, "dave", "supervisor")
    with pytest.raises(RoleConflictError, match="auditor"):
        request_role_grant(workflow, alice, "alice", "auditor")


def test_role_rules_are_checked_again_at_confirmation(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, bob = admins
    add_user(workflow, admins, "carol", "analyst")
    # Several changes may wait at once; each applies to the user as they are when confirmed.
    revoke = request_role_revoke(workflow, alice, "carol", "analyst")
    grant_examiner = request_role_grant(workflow, alice, "carol", "examiner")
    confirm_change(workflow, bob, grant_examiner.id)
    confirm_change(workflow, bob, revoke.id)
    assert log_in(workflow, "carol").roles == frozenset({"examiner"})
    grant_supervisor = request_role_grant(workflow, bob, "carol", "supervisor")
    revoked = last_entry(workflow, "user.role_revoked")
    assert revoked["details"]["role"] == "analyst"
    assert revoked["details"]["roles"] == ["examiner"]
    granted = last_entry(workflow, "user.role_granted")
    assert granted["details"]["role"] == "examiner"
    assert granted["objects"]["change"] == grant_examiner.id
    confirm_change(workflow, alice, grant_supervisor.id)
    assert log_in(workflow, "carol").roles == frozenset({"examiner", "supervisor"})


def test_a_pending_grant_that_became_a_conflict_is_refused(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, bob = admins
    add_user(workflow, admins, "carol", "analyst")
    revoke = request_role_revoke(workflow, alice, "carol", "analyst")
    confirm_change(workflow, bob, revoke.id)
    grant_auditor = request_role_grant(workflow, alice, "carol", "auditor")
    grant_analyst = request_role_grant(workflow, alice, "carol", "analyst")
    confirm_change(workflow, bob, grant_auditor.id)
    with pytest.raises(RoleConflictError):
        confirm_change(workflow, bob, grant_analyst.id)
    assert log_in(workflow, "carol").roles == frozenset({"auditor"})
    assert [change.id for change in pending_change_infos(workflow, bob)] == [grant_analyst.id]


def test_the_last_two_admins_cannot_be_removed(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice = admins[0]
    with pytest.raises(AccountWorkflowError, match="add another admin first"):
        request_role_revoke(workflow, alice, "bob", "admin")
    with pytest.raises(AccountWorkflowError, match="add another admin first"):
        disable_user(workflow, alice, "bob")
    add_user(workflow, admins, "carol", "admin")
    disable_user(workflow, alice, "bob")
    assert last_entry(workflow, "user.disabled")["details"]["username"] == "bob"


def test_disabling_is_immediate_and_ends_every_session(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, bob = admins
    carol = add_user(workflow, admins, "carol", "analyst")
    token = login(workflow, "carol", PASSWORDS["carol"]).token
    info = disable_user(workflow, alice, "carol")
    assert info.disabled
    entry = last_entry(workflow, "user.disabled")
    assert entry["actor"] == "alice"
    assert entry["objects"] == {"user": carol.user_id}
    assert entry["details"]["sessions_ended"] == 2
    with pytest.raises(NotAuthenticatedError):
        authenticate(workflow, token)
    with pytest.raises(LoginFailedError, match="disabled"):
        login(workflow, "carol", PASSWORDS["carol"])
    assert last_entry(workflow, "auth.login_failed")["details"]["reason"] == "disabled"
    with pytest.raises(AccountWorkflowError, match="already disabled"):
        disable_user(workflow, bob, "carol")


def test_a_session_of_a_user_disabled_behind_its_back_is_refused(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    add_user(workflow, admins, "carol", "analyst")
    token = login(workflow, "carol", PASSWORDS["carol"]).token
    with workflow.workspace.session() as session, session.begin():
        session.execute(
            text("UPDATE users SET disabled = :yes WHERE username = 'carol'"), {"yes": True}
        )
    with pytest.raises(NotAuthenticatedError, match="carol is disabled"):
        authenticate(workflow, token)


def test_enabling_needs_a_second_admin(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    alice, bob = admins
    add_user(workflow, admins, "carol", "analyst")
    disable_user(workflow, alice, "carol")
    change = request_enable(workflow, alice, "carol")
    assert last_entry(workflow, "user.enable_requested")["objects"]["change"] == change.id
    with pytest.raises(SelfConfirmationError):
        confirm_change(workflow, alice, change.id)
    with pytest.raises(LoginFailedError, match="disabled"):
        login(workflow, "carol", PASSWORDS["carol"])
    confirm_change(workflow, bob, change.id)
    assert log_in(workflow, "carol").disabled is False
    assert last_entry(workflow, "user.enabled")["actor"] == "bob"
    with pytest.raises(AccountWorkflowError, match="not disabled"):
        request_enable(workflow, alice, "carol")


def test_certificate_expiry_is_reflected_in_the_actor(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, _ = admins
    add_user(workflow, admins, "carol", "analyst")
    token = login(workflow, "carol", PASSWORDS["carol"]).token
    today = workflow.workspace.today()
    update_certificate(workflow, alice, "carol", "FR-2025-old", today - timedelta(days=1))
    assert authenticate(workflow, token).certificate_valid is False
    entry = last_entry(workflow, "user.certificate_updated")
    assert entry["details"]["certificate_expires"] == (today - timedelta(days=1)).isoformat()
    assert entry["details"]["previous_certificate_ref"] == "FR-2026-carol"
    update_certificate(workflow, alice, "carol", "FR-2026-renewed", today)
    assert authenticate(workflow, token).certificate_valid is True
    infos = {info.username: info for info in list_user_infos(workflow, alice)}
    assert infos["carol"].certificate_ref == "FR-2026-renewed"
    with pytest.raises(AccountWorkflowError, match="blank"):
        update_certificate(workflow, alice, "carol", " ", today)


def test_password_change_by_the_user(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    carol = add_user(workflow, admins, "carol", "analyst")
    with pytest.raises(WeakPasswordError):
        change_password(workflow, carol, "too-short")
    change_password(workflow, carol, "carols-new-password-2026")
    with pytest.raises(LoginFailedError):
        login(workflow, "carol", PASSWORDS["carol"])
    assert login(workflow, "carol", "carols-new-password-2026").username == "carol"
    entry = last_entry(workflow, "user.password_changed")
    # Only a digest of the new salted hash, so `audit verify` sees the hash replaced.
    assert (entry["actor"], entry["objects"], list(entry["details"])) == (
        "carol",
        {"user": carol.user_id},
        ["password_sha256"],
    )
    assert b"carols-new-password-2026" not in audit_bytes(workflow)


def test_a_policy_takes_effect_only_when_a_second_admin_confirms(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    alice, bob = admins
    assert active_policy(workflow) is None
    moratorium = example_policy_path("moratorium")
    change = request_policy_change(workflow, alice, moratorium)
    assert active_policy(workflow) is None
    requested = last_entry(workflow, "policy.change_requested")
    sha = requested["details"]["sha256"]
    assert requested["objects"] == {"change": change.id, "policy": sha}
    # The file's name, never where it lay (for an upload: the server's temporary folder).
    assert requested["details"]["file"] == moratorium.name
    assert str(moratorium.parent) not in json.dumps(requested)
    with pytest.raises(SelfConfirmationError):
        confirm_change(workflow, alice, change.id)
    assert active_policy(workflow) is None
    reject_change(workflow, bob, change.id, "wait for legal review")
    assert active_policy(workflow) is None

    again = request_policy_change(workflow, alice, moratorium)
    confirm_change(workflow, bob, again.id)
    policy = active_policy(workflow)
    assert policy is not None
    assert policy.sha256 == sha
    changed = last_entry(workflow, "policy.changed")
    assert changed["actor"] == "bob"
    assert changed["details"]["previous_sha256"] is None
    info = active_policy_info(workflow)
    assert info is not None
    assert (info.sha256, info.added_by, info.confirmed_by) == (sha, "alice", "bob")

    with pytest.raises(AccountWorkflowError, match="already in force"):
        request_policy_change(workflow, bob, moratorium)
    second = request_policy_change(workflow, bob, example_policy_path("two-reviewers"))
    still = active_policy(workflow)
    assert still is not None
    assert still.sha256 == sha
    confirm_change(workflow, alice, second.id)
    now_active = active_policy(workflow)
    assert now_active is not None
    assert now_active.sha256 != sha
    assert last_entry(workflow, "policy.changed")["details"]["previous_sha256"] == sha

    # Back to the first: its stored row is activated again, and is the latest.
    back = request_policy_change(workflow, alice, moratorium)
    confirm_change(workflow, bob, back.id)
    reactivated = active_policy(workflow)
    assert reactivated is not None
    assert reactivated.sha256 == sha


def test_a_bad_policy_file_names_file_and_key(
    workflow: Workflow, admins: tuple[Actor, Actor], tmp_path: Path
) -> None:
    text_ = example_policy_path("moratorium").read_text(encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text(text_.replace("per_user_per_day = ", "per_user_per_day = -"), "utf-8")
    with pytest.raises(PolicyFileError) as caught:
        request_policy_change(workflow, admins[0], broken)
    assert caught.value.file == str(broken)
    assert caught.value.key == "quotas.per_user_per_day"
    assert str(caught.value).startswith(f"{broken}: quotas.per_user_per_day: ")
    with pytest.raises(PolicyFileError, match="cannot read"):
        request_policy_change(workflow, admins[0], tmp_path / "missing.toml")
    assert pending_change_infos(workflow, admins[1]) == []


def test_an_altered_stored_policy_is_refused(
    workflow: Workflow, admins: tuple[Actor, Actor]
) -> None:
    change = request_policy_change(workflow, admins[0], example_policy_path("moratorium"))
    confirm_change(workflow, admins[1], change.id)
    with workflow.workspace.session() as session, session.begin():
        session.execute(text("UPDATE policies SET source = source || '\n# edited\n'"))
    with pytest.raises(AccountWorkflowError, match="altered"):
        active_policy(workflow)


def test_every_action_is_audited_and_no_secret_reaches_the_log(
    workflow: Workflow, admins: tuple[Actor, Actor], tmp_path: Path
) -> None:
    alice, bob = admins
    carol = add_user(workflow, admins, "carol", "analyst")
    token = login(workflow, "carol", PASSWORDS["carol"]).token
    with pytest.raises(LoginFailedError):
        login(workflow, "carol", "carol-typo-password")
    change_password(workflow, carol, "carols-new-password-2026")
    confirm_change(workflow, bob, request_role_grant(workflow, alice, "carol", "examiner").id)
    confirm_change(workflow, alice, request_role_revoke(workflow, bob, "carol", "examiner").id)
    update_certificate(workflow, alice, "carol", "FR-2027", date(2027, 1, 1))
    disable_user(workflow, alice, "carol")
    confirm_change(workflow, bob, request_enable(workflow, alice, "carol").id)
    policy_change = request_policy_change(workflow, alice, example_policy_path("moratorium"))
    reject_change(workflow, bob, policy_change.id, "not yet")
    confirm_change(
        workflow, bob, request_policy_change(workflow, alice, example_policy_path("moratorium")).id
    )
    logout(workflow, login(workflow, "bob", PASSWORDS["bob"]).token)

    actions = [entry["action"] for entry in audit_entries(workflow)]
    assert set(actions) == {
        "user.bootstrap",
        "auth.login",
        "auth.login_failed",
        "auth.logout",
        "user.create_requested",
        "user.created",
        "user.password_changed",
        "user.role_grant_requested",
        "user.role_granted",
        "user.role_revoke_requested",
        "user.role_revoked",
        "user.certificate_updated",
        "user.disabled",
        "user.enable_requested",
        "user.enabled",
        "policy.change_requested",
        "admin.change_rejected",
        "policy.changed",
    }
    assert [entry["seq"] for entry in audit_entries(workflow)] == list(range(1, len(actions) + 1))
    log = audit_bytes(workflow)
    secrets = [*PASSWORDS.values(), "carol-typo-password", "carols-new-password-2026", token]
    for secret in secrets:
        assert secret.encode() not in log
    assert b"$argon2" not in log
    assert b"password_hash" not in log
    with workflow.workspace.session() as session:
        for stored_hash in session.scalars(select(User.password_hash)):
            assert stored_hash.encode() not in log


def test_production_hashes_are_argon2id_with_the_documented_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = accounts_module.hash_password("a long enough password")
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    with pytest.raises(WeakPasswordError, match="at least 12"):
        accounts_module.hash_password("eleven char")
    # A hash made with weaker parameters is upgraded at the next successful login.
    monkeypatch.setattr(accounts_module, "PASSWORD_HASHER", CHEAP_HASHER)
    with Workflow(create_workspace(tmp_path / "ws")) as workflow:
        bootstrap(workflow, new_user("alice"), new_user("bob"))
        monkeypatch.undo()
        login(workflow, "alice", PASSWORDS["alice"])
        with workflow.workspace.session() as session:
            hashes = {
                name: encoded
                for name, encoded in session.execute(select(User.username, User.password_hash))
            }
    assert hashes["alice"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hashes["bob"].startswith("$argon2id$v=19$m=8,t=1,p=1$")


def test_session_view_reports_expiry(workflow: Workflow, admins: tuple[Actor, Actor]) -> None:
    result = login(workflow, "alice", PASSWORDS["alice"])
    view = session_view(workflow, result.token)
    assert view.actor.username == "alice"
    assert view.expires_at == result.expires_at
