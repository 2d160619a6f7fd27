"""Revision 0006: ids come from AUTOINCREMENT, and a workspace made before it never gives
an id again that a row or an audit entry has named (issue 12, fault 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Table, text
from sqlalchemy.orm import Session

from candor.store import (
    Base,
    FaceTemplate,
    GalleryImage,
    Subject,
    Workspace,
    WorkspaceError,
    add_gallery_image,
    delete_subject_cascade,
    sha256_hex,
)
from candor.store.database import _alembic_config, current_revision, head_revision
from tests.store.support import (
    FakeModel,
    booking_provenance,
    image_bytes,
    make_subject,
    vector,
)

pytestmark = pytest.mark.sqlite_only(reason="migration 0006 rebuilds SQLite tables (sqlite_master)")


BEFORE = "0005_repeat_search_index"
MODEL = FakeModel()
GALLERY = ("subjects", "gallery_images", "face_templates")
MOMENT = "'2026-01-01 00:00:00.000000'"


@pytest.fixture
def old_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace at 0005 with four people enrolled, each with one photo and template."""
    workspace = Workspace.create(tmp_path / "ws")
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), BEFORE)
    assert current_revision(workspace.engine) == BEFORE
    assert not any("AUTOINCREMENT" in sql for sql in table_sql(workspace).values())
    with workspace.session() as session, session.begin():
        for number in range(1, 5):
            enrol(workspace, session, number)
    yield workspace
    workspace.close()


def enrol(workspace: Workspace, session: Session, number: int) -> FaceTemplate:
    """Enrol person `number` with one photo and template, logged as the workflow logs it, as
    Candor wrote them at 0005: no data key (no data_keys table yet), the template in the
    clear, no file (the migration reads rows only)."""
    subject = make_subject(session, f"B-{number}")
    data = image_bytes(number)
    image = add_gallery_image(
        session,
        subject,
        sha256=sha256_hex(data),
        image_format="JPEG",
        width=640,
        height=480,
        byte_size=len(data),
        provenance=booking_provenance(),
        allowed_source_types=workspace.allowed_source_types(),
        today=date(2025, 1, 1),
        enrolled_by="officer.lee",
        face_choice="largest-central",
        face_box=(100, 80, 300, 320),
        quality={},
    )
    template = FaceTemplate(
        image=image,
        subject_id=image.subject_id,
        model_key=MODEL.key,
        model_name=MODEL.name,
        model_version=MODEL.version,
        weights_sha256=MODEL.weights_sha256,
        dimension=MODEL.dimension,
        detector_key="hog/upsample=1",
        recipe="largest-central; quality gate v1",
        vector=vector(number).tobytes(),
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    session.add(template)
    session.flush()
    objects = {"subject": subject.id, "image": image.id, "template": template.id}
    log(session.connection(), "gallery.enrolled", objects, {"image_sha256": image.sha256})
    return template


def expunge(workspace: Workspace, reference: str) -> None:
    with workspace.session() as session, session.begin():
        subject = session.query(Subject).filter_by(external_ref=reference).one()
        removed = delete_subject_cascade(session, subject)
        details = {"images": list(removed.image_ids), "templates": list(removed.template_ids)}
        log(session.connection(), "gallery.expunged", {"subject": removed.subject_id}, details)


def log(
    connection: Connection, action: str, objects: dict[str, int], details: dict[str, object]
) -> None:
    """An audit entry shaped as Candor writes them (the migration reads only the body)."""
    seq = connection.execute(text("SELECT coalesce(max(seq), 0) + 1 FROM audit_entries"))
    number = seq.scalar_one()
    body = {"action": action, "objects": objects, "details": details, "seq": number}
    connection.execute(
        text(
            "INSERT INTO audit_entries (seq, body, leaf_hash, created_at) "
            f"VALUES (:seq, :body, :leaf, {MOMENT})"
        ),
        {"seq": number, "body": json.dumps(body).encode(), "leaf": "0" * 64},
    )


def table_sql(workspace: Workspace) -> dict[str, str]:
    with workspace.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        return {name: sql for name, sql in rows}


def ids(connection: Connection, table: str) -> list[int]:
    return list(connection.execute(text(f"SELECT id FROM {table} ORDER BY id")).scalars())


def upgraded(workspace: Workspace) -> Workspace:
    workspace.close()
    reopened = Workspace.open(workspace.home, upgrade=True)
    assert current_revision(reopened.engine) == head_revision()
    return reopened


def test_before_0006_an_expunged_persons_ids_went_to_the_next_person(
    old_workspace: Workspace,
) -> None:
    # The fault this revision mends, shown on the database it mends.
    expunge(old_workspace, "B-4")
    with old_workspace.session() as session:
        newcomer = enrol(old_workspace, session, 5)
        assert (newcomer.subject_id, newcomer.image_id, newcomer.id) == (4, 4, 4)
        session.rollback()


def test_ids_of_rows_deleted_from_the_top_are_never_given_again(
    old_workspace: Workspace,
) -> None:
    expunge(old_workspace, "B-4")
    workspace = upgraded(old_workspace)
    try:
        with workspace.session() as session, session.begin():
            newcomer = enrol(workspace, session, 5)
        assert (newcomer.subject_id, newcomer.image_id, newcomer.id) == (5, 5, 5)
        expunge(workspace, "B-5")
        with workspace.session() as session, session.begin():
            again = enrol(workspace, session, 6)
        assert (again.subject_id, again.image_id, again.id) == (6, 6, 6)
    finally:
        workspace.close()


def test_ids_named_only_by_candidates_or_audit_entries_are_never_given_again(
    old_workspace: Workspace,
) -> None:
    # Rows gone before the upgrade, whose ids only the log and an old candidate remember.
    with old_workspace.engine.begin() as connection:
        log(connection, "gallery.expunged", {"subject": 7}, {"images": [8], "templates": [6, 9]})
        add_candidate(connection, subject_id=3, image_id=3, template_id=11)
    expunge(old_workspace, "B-4")
    expunge(old_workspace, "B-3")
    workspace = upgraded(old_workspace)
    try:
        with workspace.session() as session, session.begin():
            newcomer = enrol(workspace, session, 10)
        assert (newcomer.subject_id, newcomer.image_id, newcomer.id) == (8, 9, 12)
    finally:
        workspace.close()


def add_candidate(connection: Connection, **gallery_ids: int) -> None:
    """A search by a user, with one candidate naming `gallery_ids`, written as 0005 had it."""
    connection.execute(
        text(
            "INSERT INTO users (username, display_name, unit, password_hash, certificate_ref, "
            "certificate_expires, disabled, created_at, created_by) VALUES ('ana', 'Ana', "
            f"'Robbery', '$argon2id$x', 'FRT-ana', '2030-01-01', 0, {MOMENT}, 'bootstrap')"
        )
    )
    connection.execute(
        text(
            "INSERT INTO search_requests (kind, requester_id, case_number, offence_category, "
            "purpose, requesting_agency, requesting_unit, probe_kind, probe_edited, "
            "requested_top, status, decision, policy_sha256, probe_sha256, created_at, ran_at) "
            "VALUES ('search', 1, 'C-1', 'robbery', 'investigative_lead', 'Agency', 'Robbery', "
            f"'still_photo', 0, 5, 'completed', '{{}}', :digest, :digest, {MOMENT}, {MOMENT})"
        ),
        {"digest": "cd" * 32},
    )
    connection.execute(
        text(
            "INSERT INTO candidates (search_id, rank, score, subject_id, image_id, template_id, "
            "above_threshold) VALUES (1, 1, 0.9, :subject_id, :image_id, :template_id, 1)"
        ),
        gallery_ids,
    )


def test_the_rebuild_keeps_every_row_key_and_index(old_workspace: Workspace) -> None:
    expunge(old_workspace, "B-2")
    with old_workspace.engine.connect() as connection:
        before = {table: ids(connection, table) for table in GALLERY}
    # Later revisions' tables and indexes are theirs to check.
    old_tables = {name for name in table_sql(old_workspace) if not name.startswith("sqlite_")}
    indexes = index_names(old_workspace, old_tables)
    workspace = upgraded(old_workspace)
    try:
        with workspace.engine.connect() as connection:
            assert {table: ids(connection, table) for table in GALLERY} == before
            assert before["face_templates"] == [1, 3, 4]
            assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            context = MigrationContext.configure(
                connection,
                opts={"include_object": lambda item, name, kind, *_: table_of(item) in old_tables},
            )
            assert compare_metadata(context, Base.metadata) == []
            # Foreign keys still cascade from the rebuilt parents to the rebuilt children.
            connection.execute(text("DELETE FROM subjects WHERE id = 1"))
            assert ids(connection, "face_templates") == [3, 4]
            connection.rollback()
        later = {  # revision 0010's
            "ix_search_requests_requester_id_idempotency_key",
            "ix_audit_entries_action_seq",
            "ix_audit_entries_actor_seq",
            "ix_audit_entries_search_id_seq",
            "ix_audit_entries_case_number_seq",
            "ix_audit_entries_created_at",
        }
        assert index_names(workspace, old_tables) - later == indexes
        assert {"ix_face_templates_model_key_id", "ix_search_requests_kind_created_at"} <= indexes
        with workspace.session() as session:
            image = session.get(GalleryImage, 3)
            assert image is not None and image.subject.external_ref == "B-3"
    finally:
        workspace.close()


def index_names(workspace: Workspace, tables: set[str]) -> set[str]:
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql NOT NULL")
        )
        return {name for name, table in rows if table in tables}


def table_of(item: Any) -> str:
    return str(item.name if isinstance(item, Table) else item.table.name)


def test_every_table_with_an_id_column_takes_ids_from_autoincrement(
    workspace: Workspace,
) -> None:
    # Tables added later must say so too: the models and the database agree.
    stored = table_sql(workspace)
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        surrogate = len(keys) == 1 and keys[0].name == "id" and keys[0].autoincrement is not False
        if not surrogate:
            continue
        assert table.dialect_options["sqlite"]["autoincrement"], table.name
        assert "AUTOINCREMENT" in stored[table.name], table.name


def test_downgrade_and_upgrade_again_keep_the_rows(old_workspace: Workspace) -> None:
    workspace = upgraded(old_workspace)
    with workspace.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0004_recipe_scores")
    workspace.close()
    again = Workspace.open(workspace.home, upgrade=True)
    try:
        with again.engine.connect() as connection:
            assert {table: ids(connection, table) for table in GALLERY} == {
                table: [1, 2, 3, 4] for table in GALLERY
            }
            assert "AUTOINCREMENT" in table_sql(again)["subjects"]
    finally:
        again.close()


def test_rows_pointing_at_missing_rows_stop_the_upgrade_with_a_clear_message(
    old_workspace: Workspace,
) -> None:
    # As sqlite3's shell would leave them: it runs with foreign keys off.
    with old_workspace.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys = OFF")
        driver.execute("DELETE FROM subjects WHERE id = 2")
        driver.execute("PRAGMA foreign_keys = ON")
    old_workspace.close()
    with pytest.raises(
        WorkspaceError, match=r"2 row\(s\) that refer to missing rows.*referring to subjects"
    ):
        Workspace.open(old_workspace.home, upgrade=True)
    assert current_revision(old_workspace.engine) == BEFORE
