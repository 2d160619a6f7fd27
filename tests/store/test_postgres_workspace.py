"""A workspace whose database is a PostgreSQL server: made, migrated, used, and refused.

The gallery and change-log tests of the SQLite suite run here again, on PostgreSQL: they
are imported below, and this module's `workspace` fixture (a workspace on a fresh
database of the test process's throw-away cluster) takes the place of the store's one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text

from candor.store import FaceTemplate, Subject, Workspace, find_subject
from candor.store.changes import changes_after, latest_change
from candor.store.database import (
    check_postgres_url,
    current_revision,
    head_revision,
)
from candor.store.errors import CannotCreateWorkspaceError, WorkspaceError
from candor.store.migrations.versions.r0007_gallery_changes import TRIGGERS
from candor.store.workspace import DATABASE_NAME, DATABASE_URL_VARIABLE, MARKER_NAME
from tests.store.support import make_subject

# The SQLite suite's schema, gallery and change-log tests, collected again in this module.
from tests.store.test_database import (  # noqa: F401
    test_check_constraints_back_up_python_validation,
    test_foreign_keys_enforced,
    test_models_match_migrations,
    test_new_workspace_is_at_head,
    test_session_reads_one_snapshot,
    test_template_must_belong_to_its_image_subject,
    test_template_vector_length_checked,
)
from tests.store.test_gallery import (  # noqa: F401
    test_delete_subject_cascade,
    test_get_or_create_subject,
    test_image_and_template_round_trip,
    test_list_subjects_counts,
    test_one_template_per_image_and_model,
    test_same_image_cannot_be_enrolled_twice,
    test_subject_detail,
    test_template_dimension_must_match_model,
    test_templates_for_model_streams_one_model_only,
)
from tests.store.test_gallery_changes import (  # noqa: F401
    MODEL,
    _enrol,
    test_a_rolled_back_change_leaves_no_entry,
    test_an_empty_log_reads_zero,
    test_every_add_replacement_and_removal_is_logged_in_order,
    test_other_models_changes_are_not_listed,
    test_template_vectors_reads_those_still_stored,
)


@pytest.fixture(autouse=True)
def no_database_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_VARIABLE, raising=False)


@pytest.fixture
def workspace(tmp_path: Path, postgres_url: str) -> Iterator[Workspace]:
    ws = Workspace.create(tmp_path / "ws", database_url=postgres_url)
    try:
        yield ws
    finally:
        ws.close()


def test_a_new_workspace_is_on_postgres_at_head(workspace: Workspace) -> None:
    assert workspace.engine.dialect.name == "postgresql"
    assert current_revision(workspace.engine) == head_revision()
    assert not (workspace.home / DATABASE_NAME).exists()


def test_the_gallery_change_triggers_exist_and_fire(workspace: Workspace) -> None:
    with workspace.engine.connect() as connection:
        names = connection.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'face_templates'::regclass "
            "AND NOT tgisinternal"
        ).scalars()
        assert sorted(names) == sorted(TRIGGERS)
    template_id = _enrol(workspace, "P-1", 1)
    with workspace.session() as session:
        assert changes_after(session, 0, MODEL.key, up_to=latest_change(session)) == [
            (template_id, "added")
        ]


def test_ids_are_never_reused_after_a_delete(workspace: Workspace) -> None:
    first = _enrol(workspace, "P-1", 1)
    with workspace.session() as session, session.begin():
        session.execute(delete(FaceTemplate).where(FaceTemplate.id == first))
        session.execute(delete(Subject))
    second = _enrol(workspace, "P-2", 2)
    assert second > first
    with workspace.session() as session:
        subject = find_subject(session, "P-2")
        assert subject is not None and subject.id > 1


def test_a_unit_of_work_commits_whole_or_not_at_all(workspace: Workspace) -> None:
    with pytest.raises(RuntimeError), workspace.session() as session, session.begin():
        make_subject(session, "P-1")
        session.flush()
        raise RuntimeError("the action failed")
    with workspace.session() as session, session.begin():
        make_subject(session, "P-2")
    with workspace.session() as session:
        assert session.scalars(select(Subject.external_ref)).all() == ["P-2"]


def test_the_marker_holds_the_url_and_open_uses_it(workspace: Workspace) -> None:
    home = workspace.home
    url = workspace.database_url
    workspace.close()
    marker = json.loads((home / MARKER_NAME).read_text())
    assert marker["database_url"] == url
    assert url is not None and url.startswith("postgresql+psycopg://")
    with Workspace.open(home) as reopened:
        assert reopened.database_url == url
        assert current_revision(reopened.engine) == head_revision()


def test_scrub_has_nothing_to_do_on_postgres(workspace: Workspace) -> None:
    workspace.vault.note_scrub_needed("an expungement")
    workspace.vault.scrub_database(workspace.engine)
    assert workspace.vault.scrub_reasons() == []


def test_the_variable_gives_the_database_to_a_new_workspace(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_VARIABLE, postgres_url.replace("+psycopg", ""))
    with Workspace.create(tmp_path / "ws") as workspace:
        assert workspace.database_url == check_postgres_url(postgres_url)
    # The same URL (in another spelling) on open is no contradiction.
    with Workspace.open(tmp_path / "ws") as reopened:
        assert reopened.database_url == check_postgres_url(postgres_url)


def test_a_variable_naming_another_database_is_refused_on_open(
    workspace: Workspace, postgres_cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = workspace.home
    workspace.close()
    monkeypatch.setenv(DATABASE_URL_VARIABLE, "postgresql://candor@/elsewhere?host=/tmp")
    with pytest.raises(WorkspaceError, match=f"{DATABASE_URL_VARIABLE} names .*elsewhere"):
        Workspace.open(home)


@pytest.mark.sqlite_only(reason="a SQLite workspace refusing a PostgreSQL URL")
def test_a_variable_on_a_sqlite_workspace_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Workspace.create(tmp_path / "ws").close()
    monkeypatch.setenv(DATABASE_URL_VARIABLE, "postgresql://candor@/elsewhere?host=/tmp")
    with pytest.raises(WorkspaceError, match="its own SQLite file"):
        Workspace.open(tmp_path / "ws")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://candor:secret@db.example/candor", r"password.*\.pgpass"),
        ("postgresql+psycopg://candor:secret@/candor?host=/tmp", r"password.*PGPASSWORD"),
        ("mysql://candor@db.example/candor", "PostgreSQL"),
        ("postgresql+asyncpg://candor@db.example/candor", "psycopg 3"),
        ("postgresql://candor@db.example", "names no database"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_urls_are_refused_before_anything_is_made(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(WorkspaceError, match=says):
        Workspace.create(tmp_path / "ws", database_url=url)
    assert not (tmp_path / "ws").exists()


def test_a_database_holding_tables_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    assert workspace.database_url is not None
    with pytest.raises(CannotCreateWorkspaceError, match="empty database"):
        Workspace.create(tmp_path / "second", database_url=workspace.database_url)
    assert not (tmp_path / "second").exists()


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-server"
    missing.mkdir()
    with pytest.raises(WorkspaceError, match="cannot connect to the workspace's PostgreSQL"):
        Workspace.create(tmp_path / "ws", database_url=f"postgresql://candor@/db?host={missing}")
    assert not (tmp_path / "ws").exists()


def test_a_failed_create_leaves_the_database_empty_for_another_try(
    tmp_path: Path, postgres_url: str
) -> None:
    def fail(_home: Path, _workspace_id: str) -> None:
        raise OSError("no room for the signing key")

    with pytest.raises(OSError, match="signing key"):
        Workspace.create(tmp_path / "ws", database_url=postgres_url, start_audit_log=fail)
    assert not (tmp_path / "ws").exists()
    with Workspace.create(tmp_path / "ws", database_url=postgres_url) as workspace:
        assert current_revision(workspace.engine) == head_revision()


def test_writers_read_committed_and_readers_one_snapshot(workspace: Workspace) -> None:
    show = text("SHOW transaction_isolation")
    for _ in range(2):  # and again on the pooled connection the writer gave back
        with workspace.session() as writer, writer.begin():
            assert writer.execute(show).scalar() == "read committed"
        with workspace.session() as reader:
            assert reader.execute(show).scalar() == "repeatable read"
