"""Repository functions for users, sessions, admin changes and policies (store.accounts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from candor.store import (
    AccountError,
    User,
    Workspace,
    activate_policy,
    active_policy_row,
    add_admin_change,
    add_policy,
    admin_change,
    check_username,
    count_users,
    create_session,
    create_user,
    decide_change,
    grant_role,
    list_users,
    pending_changes,
    revoke_role,
    revoke_session,
    revoke_user_sessions,
    session_by_token_sha256,
    set_roles,
    user_by_name,
    users_with_role,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"


def make_user(session: Session, username: str, *roles: str) -> User:
    return create_user(
        session,
        username=username,
        display_name=f" {username.title()} ",
        unit="Robbery",
        password_hash=HASH,
        certificate_ref="FR-1",
        certificate_expires=date(2030, 1, 1),
        roles=roles,
        created_by="bootstrap",
    )


@pytest.mark.parametrize("name", ["A", "alice smith", "x", "a" * 65, "al/ice", "élise"])
def test_check_username_refuses_other_forms(name: str) -> None:
    with pytest.raises(AccountError, match="not allowed"):
        check_username(name)


def test_create_and_find_users(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        alice = make_user(session, "alice", "admin", "analyst")
        make_user(session, "bob", "auditor")
        assert alice.display_name == "Alice"
        assert alice.roles == frozenset({"admin", "analyst"})
        assert user_by_name(session, "alice") is alice
        assert user_by_name(session, "carol") is None
        assert [user.username for user in list_users(session)] == ["alice", "bob"]
        assert count_users(session) == 2
        with pytest.raises(AccountError, match="already exists"):
            make_user(session, "alice")
        with pytest.raises(AccountError, match="unknown role"):
            make_user(session, "carol", "superuser")
        with pytest.raises(AccountError, match="unit"):
            create_user(
                session,
                username="carol",
                display_name="Carol",
                unit=" ",
                password_hash=HASH,
                certificate_ref="FR",
                certificate_expires=date(2030, 1, 1),
                roles=(),
                created_by="alice",
            )


def test_roles_are_set_granted_and_revoked(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        user = make_user(session, "alice", "analyst")
        assert grant_role(session, user, "examiner") is True
        assert grant_role(session, user, "examiner") is False
        assert revoke_role(session, user, "analyst") is True
        assert revoke_role(session, user, "analyst") is False
        assert user.roles == frozenset({"examiner"})
        set_roles(session, user, ["admin", "supervisor"])
        assert user.roles == frozenset({"admin", "supervisor"})
        make_user(session, "bob", "admin").disabled = True
        assert [u.username for u in users_with_role(session, "admin")] == ["alice"]
        assert len(users_with_role(session, "admin", enabled_only=False)) == 2
    with workspace.session() as session:
        stored = user_by_name(session, "alice")
        assert stored is not None
        assert stored.roles == frozenset({"admin", "supervisor"})


def test_sessions_by_token_hash(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        user = make_user(session, "alice", "analyst")
        first = create_session(
            session, "ab" * 32, user.id, NOW + timedelta(hours=8), created_at=NOW
        )
        create_session(session, "cd" * 32, user.id, NOW + timedelta(hours=8), created_at=NOW)
        with pytest.raises(AccountError, match="hex"):
            create_session(session, "token-itself", user.id, NOW + timedelta(hours=8))
        with pytest.raises(AccountError, match="expire after"):
            create_session(session, "ef" * 32, user.id, NOW, created_at=NOW)
        assert session_by_token_sha256(session, "ab" * 32) is first
        assert session_by_token_sha256(session, "00" * 32) is None
        assert revoke_session(session, first, at=NOW) is True
        assert revoke_session(session, first) is False
        assert first.revoked_at == NOW
        assert revoke_user_sessions(session, user.id) == 1
        assert revoke_user_sessions(session, user.id) == 0


def test_admin_changes_are_decided_once(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            alice = make_user(session, "alice", "admin")
            bob = make_user(session, "bob", "admin")
            first = add_admin_change(
                session, "grant_role", {"username": "alice", "role": "examiner"}, alice.id
            )
            second = add_admin_change(session, "enable_user", {"username": "carol"}, bob.id)
            with pytest.raises(AccountError, match="unknown admin change"):
                add_admin_change(session, "drop_tables", {}, alice.id)
            assert [change.id for change in pending_changes(session)] == [first.id, second.id]
            assert pending_changes(session, "enable_user") == [second]
            with pytest.raises(AccountError, match="reason"):
                decide_change(session, first, decided_by=bob.id, confirmed=False)
            decide_change(session, first, decided_by=bob.id, confirmed=True)
            assert first.state == "confirmed"
            with pytest.raises(AccountError, match="already confirmed"):
                decide_change(session, first, decided_by=bob.id, confirmed=True)
            decide_change(
                session,
                second,
                decided_by=bob.id,
                confirmed=False,
                reason=" withdrawn ",
                payload={"username": "carol", "note": "scrubbed"},
            )
            assert (second.state, second.reason) == ("rejected", "withdrawn")
            assert pending_changes(session) == []
        assert admin_change(session, second.id) is second
        assert second.payload == {"username": "carol", "note": "scrubbed"}
        with session.begin():
            third = add_admin_change(session, "revoke_role", {}, alice.id)
        # The database itself holds the two-admin rule.
        with pytest.raises(IntegrityError), session.begin():
            decide_change(session, third, decided_by=alice.id, confirmed=True)


def test_the_policy_activated_last_is_active(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        alice = make_user(session, "alice", "admin")
        bob = make_user(session, "bob", "admin")
        assert active_policy_row(session) is None
        first = add_policy(
            session, sha256="aa" * 32, name="p", version="1", source="a", added_by=alice.id
        )
        assert (
            add_policy(
                session, sha256="aa" * 32, name="p", version="1", source="a", added_by=bob.id
            )
            is first
        )
        with pytest.raises(AccountError):
            add_policy(session, sha256="AA" * 32, name="p", version="1", source="a", added_by=1)
        second = add_policy(
            session, sha256="bb" * 32, name="p", version="2", source="b", added_by=alice.id
        )
        assert active_policy_row(session) is None
        activate_policy(session, first, bob.id, at=NOW)
        assert active_policy_row(session) is first
        activate_policy(session, second, bob.id, at=NOW + timedelta(hours=1))
        assert active_policy_row(session) is second
        # A clock that stepped back still makes the newest activation the active one.
        activate_policy(session, first, alice.id, at=NOW)
        assert active_policy_row(session) is first
        assert first.activated_at == NOW + timedelta(hours=1, microseconds=1)
        assert first.confirmed_by == alice.id
