"""The database: migrations at head, models matching them, pragmas and constraints in force."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from candor.store import Base, FaceTemplate, SchemaVersionError, Workspace, WorkspaceError
from candor.store.database import current_revision, head_revision
from tests.store.support import enrol_image, image_bytes, make_subject


def test_new_workspace_is_at_head(workspace: Workspace) -> None:
    assert head_revision() == "0015_directory_roles"
    assert current_revision(workspace.engine) == head_revision()


def test_models_match_migrations(workspace: Workspace) -> None:
    with workspace.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [
        ("journal_mode", "wal"),
        ("foreign_keys", 1),
        ("secure_delete", 1),
        ("busy_timeout", 10_000),
        ("synchronous", 2),
    ],
)
@pytest.mark.sqlite_only(reason="SQLite's pragmas on each connection")
def test_pragmas_on_every_connection(workspace: Workspace, pragma: str, expected: object) -> None:
    connections = [workspace.engine.connect() for _ in range(3)]
    try:
        for connection in connections:
            assert connection.execute(text(f"PRAGMA {pragma}")).scalar() == expected
    finally:
        for connection in connections:
            connection.close()


def test_session_reads_one_snapshot(workspace: Workspace) -> None:
    # Autobegun: a reading session (an explicit begin() would take the write lock).
    with workspace.session() as reader:
        assert reader.execute(text("SELECT count(*) FROM subjects")).scalar() == 0
        with workspace.session() as writer, writer.begin():
            make_subject(writer, "B-1")
        assert reader.execute(text("SELECT count(*) FROM subjects")).scalar() == 0
        reader.rollback()
        assert reader.execute(text("SELECT count(*) FROM subjects")).scalar() == 1


def test_open_refuses_unknown_schema_revision(workspace: Workspace) -> None:
    with workspace.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    workspace.close()
    with pytest.raises(SchemaVersionError, match="does not know"):
        Workspace.open(workspace.home)
    with pytest.raises(SchemaVersionError, match="does not know"):
        Workspace.open(workspace.home, upgrade=True)


def test_open_refuses_database_without_version(workspace: Workspace) -> None:
    with workspace.engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    workspace.close()
    with pytest.raises(WorkspaceError, match="no schema version"):
        Workspace.open(workspace.home)


def test_foreign_keys_enforced(workspace: Workspace) -> None:
    with workspace.session() as session, pytest.raises(IntegrityError), session.begin():
        session.execute(
            text(
                "INSERT INTO gallery_images (subject_id, sha256, format, width, height,"
                " byte_size, source_type, source_ref, legal_basis, collected_on,"
                " retain_until, enrolled_by, enrolled_at, face_choice, face_left,"
                " face_top, face_right, face_bottom, quality) VALUES (999, :sha, 'JPEG',"
                " 1, 1, 1, 'booking_photo', 'r', 'l', '2024-01-01', '2025-01-01', 'u',"
                " '2024-01-01 00:00:00', 'largest-central', 0, 0, 1, 1, '{}')"
            ),
            {"sha": "a" * 64},
        )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("source_type", "scraped_web"),
        ("legal_basis", "   "),
        ("retain_until", date(2000, 1, 1)),
        ("sha256", "A" * 64),
        ("sha256", "g" * 64),
        ("face_choice", "the nice one"),
        ("face_right", 0),
        ("width", 0),
    ],
)
def test_check_constraints_back_up_python_validation(
    workspace: Workspace, column: str, value: object
) -> None:
    with workspace.session() as session:
        with session.begin():
            image = enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
        with pytest.raises(IntegrityError), session.begin():
            session.execute(
                text(f"UPDATE gallery_images SET {column} = :value WHERE id = :id"),
                {"value": value, "id": image.id},
            )


def test_template_must_belong_to_its_image_subject(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            image = enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
            other = make_subject(session, "B-2")
        template = FaceTemplate(
            image_id=image.id,
            subject_id=other.id,
            model_key="m/1/abababababababab",
            model_name="m",
            model_version="1",
            weights_sha256="ab" * 32,
            dimension=2,
            detector_key="hog",
            recipe="r",
            vector=b"\0" * 8,
            created_at=datetime.now(UTC),
        )
        with pytest.raises(IntegrityError), session.begin():
            session.add(template)


def test_template_vector_length_checked(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            image = enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
        with pytest.raises(IntegrityError), session.begin():
            session.add(
                FaceTemplate(
                    image_id=image.id,
                    subject_id=image.subject_id,
                    model_key="m/1/abababababababab",
                    model_name="m",
                    model_version="1",
                    weights_sha256="ab" * 32,
                    dimension=4,
                    detector_key="hog",
                    recipe="r",
                    vector=b"\0" * 12,
                    created_at=datetime.now(UTC),
                )
            )


def test_timestamps_come_back_in_utc(tmp_path: Path) -> None:
    with Workspace.create(tmp_path) as ws, ws.session() as session:
        with session.begin():
            subject = make_subject(session, "B-1")
        session.expire_all()
        assert session.get(type(subject), subject.id) is not None
        assert subject.created_at.utcoffset() is not None
        assert subject.created_at.tzinfo == UTC
