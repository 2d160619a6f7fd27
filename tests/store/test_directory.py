"""Repository functions for directory accounts, group mappings and person confirmations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from candor.store import Workspace
from candor.store.directory import (
    add_directory_account,
    add_group_role,
    add_role_confirmation,
    decide_group_role,
    decide_role_confirmation,
    directory_account,
    group_role,
    group_roles,
    recheck_all_directory_accounts,
    remove_role_confirmation,
    role_confirmation,
    role_confirmations,
    withdraw_group_role,
)
from tests.store.test_governance_accounts import make_user

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
GROUP = "cn=analysts,ou=groups,dc=candor,dc=test"


def test_mapping_needs_a_second_admin_in_the_database(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        alice = make_user(session, "alice", "admin")
        bob = make_user(session, "bob", "admin")
        mapping = add_group_role(session, GROUP, "analyst", alice.id, at=NOW)
        mapping_id = mapping.id
        assert [row.id for row in group_roles(session, "pending")] == [mapping_id]
    with (
        pytest.raises(IntegrityError, match="second_admin_confirms"),
        workspace.session() as session,
        session.begin(),
    ):
        row = group_role(session, mapping_id)
        assert row is not None
        decide_group_role(session, row, decided_by=row.requested_by, confirmed=True, at=NOW)
    with workspace.session() as session, session.begin():
        row = group_role(session, mapping_id)
        assert row is not None and row.state == "pending"
        decide_group_role(session, row, decided_by=bob.id, confirmed=True, at=NOW)
        withdraw_group_role(session, row, by=alice.id, at=NOW, reason="group renamed")
    with workspace.session() as session:
        row = group_role(session, mapping_id)
        assert row is not None
        assert (row.state, row.decided_by, row.withdrawn_by) == ("withdrawn", bob.id, alice.id)
        assert group_roles(session, "pending", "confirmed") == []


def test_unknown_role_and_reasonless_rejection_refused(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        alice = make_user(session, "alice", "admin")
        alice_id = alice.id
    with (
        pytest.raises(IntegrityError, match="role_known"),
        workspace.session() as session,
        session.begin(),
    ):
        add_group_role(session, GROUP, "superuser", alice_id, at=NOW)
    with (
        pytest.raises(IntegrityError, match="rejection_has_reason"),
        workspace.session() as session,
        session.begin(),
    ):
        bob = make_user(session, "bob", "admin")
        row = add_group_role(session, GROUP, "analyst", alice_id, at=NOW)
        decide_group_role(session, row, decided_by=bob.id, confirmed=False, at=NOW)


def test_person_confirmations(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        carol = make_user(session, "carol")
        bob = make_user(session, "bob", "admin")
        add_directory_account(session, carol.id, "uid=carol,ou=people,dc=candor,dc=test", at=NOW)
        account = directory_account(session, carol.id)
        assert account is not None and account.checked_at is None
        account.checked_at = NOW
        assert directory_account(session, bob.id) is None
        row = add_role_confirmation(session, carol.id, "admin", at=NOW)
        assert role_confirmation(session, carol.id, "admin") is row
        assert role_confirmations(session, state="pending") == [row]
        carol_id, bob_id = carol.id, bob.id
    with workspace.session() as session, session.begin():
        assert recheck_all_directory_accounts(session) == 1
        account = directory_account(session, carol_id)
        assert account is not None and account.checked_at is None
    with (
        pytest.raises(IntegrityError, match="not_self_decided"),
        workspace.session() as session,
        session.begin(),
    ):
        row = role_confirmation(session, carol_id, "admin")
        assert row is not None
        decide_role_confirmation(session, row, decided_by=carol_id, confirmed=True, at=NOW)
    with (
        pytest.raises(IntegrityError, match="role_needs_confirmation"),
        workspace.session() as session,
        session.begin(),
    ):
        add_role_confirmation(session, carol_id, "analyst", at=NOW)
    with workspace.session() as session, session.begin():
        row = role_confirmation(session, carol_id, "admin")
        assert row is not None
        decide_role_confirmation(session, row, decided_by=bob_id, confirmed=True, at=NOW)
        assert role_confirmations(session, user_id=carol_id)[0].state == "confirmed"
        remove_role_confirmation(session, row)
        assert role_confirmation(session, carol_id, "admin") is None
