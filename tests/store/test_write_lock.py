"""Writers wait their turn for the database's write lock, and a wait too long says so."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from candor.store import Subject, Workspace, WorkspaceBusyError
from tests.store.support import make_subject

pytestmark = pytest.mark.sqlite_only(reason="SQLite's write lock")


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another process's writer, as SQLite sees it: a connection holding the write lock."""
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_read_then_write_waits_for_a_writer_that_commits_meanwhile(
    workspace: Workspace,
) -> None:
    # The unit of work of every Candor action: read (the log's head, a duplicate check),
    # then write. Another process commits between the two; neither may fail.
    other = Workspace.open(workspace.home)
    read = threading.Event()
    committed = threading.Event()
    failures: list[BaseException] = []

    def other_writer() -> None:
        read.wait()
        try:
            with other.session() as session, session.begin():
                make_subject(session, "B-OTHER")
            committed.set()
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)
            committed.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        with workspace.session() as session, session.begin():
            count = session.scalar(select(func.count()).select_from(Subject))
            read.set()
            # Long enough for the other writer to commit, were it let in before us.
            committed.wait(timeout=1)
            make_subject(session, f"B-{count}")
    finally:
        read.set()
        thread.join()
        other.close()
    assert failures == []
    with workspace.session() as session:
        assert set(session.scalars(select(Subject.external_ref))) == {"B-0", "B-OTHER"}


def test_a_writer_that_keeps_the_lock_past_the_bound_is_a_clear_error(
    workspace: Workspace,
) -> None:
    patient = Workspace.open(workspace.home, busy_timeout_ms=200)
    try:
        with (
            write_lock_held(workspace.database_path),
            pytest.raises(WorkspaceBusyError) as raised,
            patient.session() as session,
            session.begin(),
        ):
            make_subject(session, "B-1")
        assert str(raised.value) == (
            "the workspace database stayed busy for 0.2 s: another Candor process is "
            "writing; try again"
        )
        # Once the lock is let go, the same workspace writes.
        with patient.session() as session, session.begin():
            make_subject(session, "B-1")
    finally:
        patient.close()


def test_readers_do_not_wait_for_a_writer(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        make_subject(session, "B-1")
    patient = Workspace.open(workspace.home, busy_timeout_ms=200)
    try:
        with write_lock_held(workspace.database_path), patient.session() as session:
            assert session.scalar(select(func.count()).select_from(Subject)) == 1
    finally:
        patient.close()
