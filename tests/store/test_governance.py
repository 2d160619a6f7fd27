"""Governance tables (revision 0002): migration from 0001, constraints that back up workflow."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from candor.store import (
    AdminChange,
    AuditEntry,
    AuthSession,
    Base,
    Candidate,
    PolicyRecord,
    Release,
    SchemaVersionError,
    SearchRequest,
    User,
    UserRole,
    Verdict,
    Workspace,
)
from candor.store.database import _alembic_config, current_revision, engine_for, head_revision
from tests.store.support import enrol_image, image_bytes, make_subject

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"
GOVERNANCE_TABLES = {
    "users",
    "user_roles",
    "auth_sessions",
    "admin_changes",
    "policies",
    "search_requests",
    "candidates",
    "approvals",
    "verdicts",
    "releases",
    "calibrations",
    "audit_entries",
    "audit_checkpoints",
}


def add_user(session: Session, username: str = "alice", *roles: str) -> User:
    user = User(
        username=username,
        display_name=username.title(),
        unit="Robbery",
        password_hash=HASH,
        certificate_ref="FR-TRAINING-2026-017",
        certificate_expires=date(2027, 6, 30),
        disabled=False,
        created_at=NOW,
        created_by="bootstrap",
    )
    user.role_rows = [UserRole(role=role) for role in roles]
    session.add(user)
    session.flush()
    return user


def add_search(session: Session, requester: User, **changes: object) -> SearchRequest:
    fields: dict[str, object] = {
        "kind": "search",
        "requester_id": requester.id,
        "case_number": "2026-000123",
        "offence_category": "robbery",
        "purpose": "investigative_lead",
        "requesting_agency": "Home PD",
        "requesting_unit": "Robbery",
        "probe_kind": "still_photo",
        "probe_edited": False,
        "requested_top": 10,
        "status": "completed",
        "decision": {"outcome": "allow", "reasons": []},
        "policy_sha256": "ab" * 32,
        "probe_sha256": "cd" * 32,
        "created_at": NOW,
        "ran_at": NOW,
    }
    fields.update(changes)
    search = SearchRequest(**fields)
    session.add(search)
    session.flush()
    return search


def test_migration_creates_every_governance_table(workspace: Workspace) -> None:
    tables = set(inspect(workspace.engine).get_table_names())
    assert tables >= GOVERNANCE_TABLES
    assert {table.name for table in Base.metadata.sorted_tables} >= GOVERNANCE_TABLES


def test_upgrade_from_0001_keeps_the_gallery_and_matches_the_models(tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path / "ws")
    with workspace.session() as session, session.begin():
        image = enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
        image_id = image.id
    # Take the database back to 0001 as an older Candor would have left it.
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0001_initial")
    assert current_revision(workspace.engine) == "0001_initial"
    assert "users" not in inspect(workspace.engine).get_table_names()
    workspace.close()

    reopened = Workspace.open(workspace.home, upgrade=True)
    try:
        assert current_revision(reopened.engine) == head_revision()
        with reopened.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert connection.execute(text("SELECT id FROM gallery_images")).scalar() == image_id
    finally:
        reopened.close()


def test_a_0001_database_is_refused_without_upgrade(tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path / "ws")
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0001_initial")
    workspace.close()
    with pytest.raises(SchemaVersionError, match=f"older than {head_revision()}"):
        Workspace.open(workspace.home)
    engine = engine_for(workspace.database_url, workspace.database_path, create=False)
    try:
        assert current_revision(engine) == "0001_initial"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("username", "Alice"),
        ("username", "a"),
        ("username", "a" * 65),
        ("username", "al ice"),
        ("username", "alice@example"),
        ("password_hash", "plain-text-password"),
        ("password_hash", "$argon2i$v=19$m=65536,t=3,p=4$xx$yy"),
        ("unit", "  "),
        ("certificate_ref", ""),
        ("display_name", " "),
    ],
)
def test_user_constraints(workspace: Workspace, column: str, value: object) -> None:
    with workspace.session() as session:
        with session.begin():
            user = add_user(session)
        # PostgreSQL refuses an over-long VARCHAR itself (DataError) before the check runs.
        with pytest.raises((IntegrityError, DataError)), session.begin():
            session.execute(
                text(f"UPDATE users SET {column} = :value WHERE id = :id"),
                {"value": value, "id": user.id},
            )


def test_usernames_in_the_allowed_form_are_accepted(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        add_user(session, "j.doe-2_x")
        add_user(session, "ab")
        add_user(session, "z" * 64)


def test_usernames_are_unique_and_roles_known(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            add_user(session, "alice", "admin")
        with pytest.raises(IntegrityError), session.begin():
            add_user(session, "alice")
        with pytest.raises(IntegrityError), session.begin():
            add_user(session, "bob", "superuser")


def test_user_roles_primary_key_forbids_duplicates(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            user = add_user(session, "alice", "analyst")
        with pytest.raises(IntegrityError), session.begin():
            session.execute(
                text("INSERT INTO user_roles (user_id, role) VALUES (:id, 'analyst')"),
                {"id": user.id},
            )


def test_session_token_hash_is_hex_unique_and_expires_after_creation(
    workspace: Workspace,
) -> None:
    with workspace.session() as session:
        with session.begin():
            user = add_user(session)
            session.add(
                AuthSession(
                    token_sha256="ab" * 32,
                    user_id=user.id,
                    created_at=NOW,
                    expires_at=NOW + timedelta(hours=8),
                )
            )
        for token, expires in [
            ("ab" * 32, NOW + timedelta(hours=8)),
            ("AB" * 32, NOW + timedelta(hours=8)),
            ("cd" * 32, NOW),
        ]:
            with pytest.raises(IntegrityError), session.begin():
                session.add(
                    AuthSession(
                        token_sha256=token, user_id=user.id, created_at=NOW, expires_at=expires
                    )
                )


def test_admin_change_cannot_be_confirmed_by_its_requester(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            alice = add_user(session, "alice", "admin")
            bob = add_user(session, "bob", "admin")
            change = AdminChange(
                kind="grant_role",
                payload={"username": "carol", "role": "examiner"},
                requested_by=alice.id,
                requested_at=NOW,
                state="pending",
            )
            session.add(change)
        statements = [
            "UPDATE admin_changes SET state = 'confirmed', decided_by = :alice, "
            "decided_at = '2026-11-27 10:00:00' WHERE id = :id",
            "UPDATE admin_changes SET state = 'confirmed' WHERE id = :id",
            "UPDATE admin_changes SET state = 'rejected', decided_by = :bob, "
            "decided_at = '2026-11-27 10:00:00' WHERE id = :id",
            "UPDATE admin_changes SET kind = 'make_superuser' WHERE id = :id",
        ]
        for statement in statements:
            with pytest.raises(IntegrityError), session.begin():
                session.execute(
                    text(statement), {"alice": alice.id, "bob": bob.id, "id": change.id}
                )
        with session.begin():
            session.execute(
                text(
                    "UPDATE admin_changes SET state = 'confirmed', decided_by = :bob, "
                    "decided_at = '2026-11-27 10:00:00' WHERE id = :id"
                ),
                {"bob": bob.id, "id": change.id},
            )


def test_policy_activation_needs_a_confirmer(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            alice = add_user(session, "alice", "admin")
            policy = PolicyRecord(
                sha256="ef" * 32,
                name="moratorium",
                version="1",
                source="name = 'x'\n",
                added_at=NOW,
                added_by=alice.id,
            )
            session.add(policy)
        with pytest.raises(IntegrityError), session.begin():
            session.execute(
                text("UPDATE policies SET activated_at = '2026-11-27 10:00:00' WHERE id = :id"),
                {"id": policy.id},
            )


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "identify"},
        {"status": "done"},
        {"case_number": " "},
        {"requested_top": 0},
        {"probe_sha256": "xyz"},
        {"policy_sha256": "AB" * 32},
        {"original_probe_sha256": "ef" * 32},
        {"probe_edited": True},
        {"probe_edited": True, "edits": "  "},
        {"kind": "verify"},
        {"second_probe_sha256": "ef" * 32},
        {"status": "completed", "ran_at": None},
        {"probe_template": b"\0" * 16, "probe_purged_at": NOW},
        {"face_index": -1},
    ],
)
def test_search_request_constraints(workspace: Workspace, changes: dict[str, object]) -> None:
    with workspace.session() as session:
        with session.begin():
            user = add_user(session, "alice", "analyst")
        with pytest.raises(IntegrityError), session.begin():
            add_search(session, user, **changes)


def test_valid_search_records_are_accepted(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        user = add_user(session, "alice", "analyst")
        first = add_search(session, user)
        add_search(
            session,
            user,
            probe_edited=True,
            edits="cropped to the face",
            original_probe_sha256="ef" * 32,
            earlier_search_id=first.id,
            status="pending_approval",
            ran_at=None,
        )
        add_search(session, user, kind="verify", second_probe_sha256="ef" * 32)


def test_candidates_keep_gallery_ids_without_foreign_keys(workspace: Workspace) -> None:
    # Expungement deletes gallery rows; the search record must survive with bare ids.
    with workspace.session() as session, session.begin():
        user = add_user(session, "alice", "analyst")
        search = add_search(session, user)
        session.add(
            Candidate(
                search_id=search.id,
                rank=1,
                score=0.93,
                subject_id=999,
                image_id=998,
                template_id=997,
                above_threshold=True,
            )
        )
    foreign = inspect(workspace.engine).get_foreign_keys("candidates")
    assert [key["referred_table"] for key in foreign] == ["search_requests"]


def test_candidate_rank_unique_and_one_verdict_per_examiner(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            user = add_user(session, "alice", "analyst")
            examiner = add_user(session, "erin", "examiner")
            search = add_search(session, user)
            candidate = Candidate(
                search_id=search.id,
                rank=1,
                score=0.9,
                subject_id=1,
                image_id=1,
                template_id=1,
                above_threshold=True,
            )
            session.add(candidate)
            session.flush()
            session.add(
                Verdict(
                    candidate_id=candidate.id,
                    examiner_id=examiner.id,
                    verdict="possible_match",
                    rationale="ear shape and scar agree",
                    created_at=NOW,
                )
            )
        with pytest.raises(IntegrityError), session.begin():
            session.add(
                Candidate(
                    search_id=search.id,
                    rank=1,
                    score=0.8,
                    subject_id=2,
                    image_id=2,
                    template_id=2,
                    above_threshold=False,
                )
            )
        for verdict, rationale in [
            ("possible_match", "again"),
            ("match", "certain"),
            ("inconclusive", " "),
        ]:
            with pytest.raises(IntegrityError), session.begin():
                session.add(
                    Verdict(
                        candidate_id=candidate.id,
                        examiner_id=examiner.id if verdict == "possible_match" else user.id,
                        verdict=verdict,
                        rationale=rationale,
                        created_at=NOW,
                    )
                )


def test_release_label_defaults_and_deleting_a_search_cascades(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            user = add_user(session, "alice", "analyst")
            search = add_search(session, user)
            candidate = Candidate(
                search_id=search.id,
                rank=1,
                score=0.9,
                subject_id=1,
                image_id=1,
                template_id=1,
                above_threshold=True,
            )
            session.add(candidate)
            session.flush()
            release = Release(
                candidate_id=candidate.id,
                released_by=user.id,
                reason="two examiners agree",
                released_at=NOW,
            )
            session.add(release)
        assert release.label == "investigative lead only"
        with session.begin():
            session.execute(text("DELETE FROM search_requests WHERE id = :id"), {"id": search.id})
        with session.begin():
            assert session.scalar(select(Candidate)) is None
            assert session.scalar(select(Release)) is None


def test_audit_entries_take_the_callers_sequence_number(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            session.add(AuditEntry(seq=5, body=b"{}", leaf_hash="ab" * 32, created_at=NOW))
        with session.begin():
            assert session.scalars(select(AuditEntry.seq)).all() == [5]
        for seq, body, leaf in [(5, b"{}", "cd" * 32), (0, b"{}", "cd" * 32), (6, b"", "cd" * 32)]:
            with pytest.raises(IntegrityError), session.begin():
                session.add(AuditEntry(seq=seq, body=body, leaf_hash=leaf, created_at=NOW))
