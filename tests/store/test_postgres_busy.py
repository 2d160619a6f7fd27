"""On PostgreSQL a writer waits for another's lock up to the busy timeout (lock_timeout),
and a wait past it, a serialization failure or a deadlock is a WorkspaceBusyError that
says so in one line, as SQLite's "database is locked" is (tests/store/test_write_lock.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from candor.store import Subject, Workspace, WorkspaceBusyError
from candor.store.audit_log import lock_log_head
from tests.store.support import make_subject


@pytest.fixture
def workspace(tmp_path: Path, postgres_url: str) -> Iterator[Workspace]:
    ws = Workspace.create(tmp_path / "ws", database_url=postgres_url)
    try:
        yield ws
    finally:
        ws.close()


def test_a_wait_for_the_log_head_past_the_bound_is_a_clear_error(workspace: Workspace) -> None:
    patient = Workspace.open(workspace.home, busy_timeout_ms=200)
    outcome: list[BaseException | None] = []

    def wait_for_the_head() -> None:
        try:
            with patient.session() as session, session.begin():
                lock_log_head(session)
            outcome.append(None)
        except BaseException as error:  # reported below, in the test's thread
            outcome.append(error)

    try:
        with workspace.session() as holder, holder.begin():
            lock_log_head(holder)
            waiter = threading.Thread(target=wait_for_the_head)
            waiter.start()
            # Let go after a while even if the waiter never gives up (the fault this
            # test guards against), so that it fails rather than hangs.
            waiter.join(timeout=10)
        waiter.join()
        assert len(outcome) == 1 and isinstance(outcome[0], WorkspaceBusyError), outcome
        assert str(outcome[0]) == (
            "the workspace database stayed busy for 0.2 s: another Candor process is "
            "writing; try again"
        )
        # Once the holder has committed, the same workspace takes the head at once.
        with patient.session() as session, session.begin():
            lock_log_head(session)
    finally:
        patient.close()


def _subjects(workspace: Workspace, *refs: str) -> list[int]:
    with workspace.session() as session, session.begin():
        return [make_subject(session, ref).id for ref in refs]


BUSY_CHANGED = (
    "another Candor process changed the workspace database while this action was "
    "writing it; try again"
)


def test_a_serialization_failure_is_a_clear_error(workspace: Workspace) -> None:
    (subject,) = _subjects(workspace, "B-1")
    # A reading session (REPEATABLE READ) keeps its snapshot; changing a row another
    # transaction changed since then cannot succeed.
    with workspace.session() as reader:
        assert reader.scalar(select(Subject.external_ref).where(Subject.id == subject)) == "B-1"
        with workspace.session() as writer, writer.begin():
            writer.execute(update(Subject).where(Subject.id == subject).values(created_by="x"))
        with pytest.raises(WorkspaceBusyError) as raised:
            reader.execute(update(Subject).where(Subject.id == subject).values(created_by="y"))
    assert str(raised.value) == BUSY_CHANGED


def test_a_deadlock_is_a_clear_error_and_the_other_writer_completes(
    workspace: Workspace,
) -> None:
    first, second = _subjects(workspace, "B-1", "B-2")
    both_hold_one = threading.Barrier(2, timeout=30)
    outcomes: dict[str, BaseException | None] = {}

    def change(name: str, order: tuple[int, int]) -> None:
        try:
            with workspace.session() as session, session.begin():
                # The server breaks a cycle once a wait lasts this long (superuser only;
                # the test cluster's user is one); the default second would do too.
                session.connection().exec_driver_sql("SET LOCAL deadlock_timeout = '100ms'")
                for number, subject in enumerate(order):
                    session.execute(
                        update(Subject).where(Subject.id == subject).values(created_by=name)
                    )
                    if number == 0:
                        both_hold_one.wait()
            outcomes[name] = None
        except BaseException as error:  # reported below, in the test's thread
            outcomes[name] = error

    other = threading.Thread(target=change, args=("other", (second, first)))
    other.start()
    change("this", (first, second))
    other.join()
    failed = [error for error in outcomes.values() if error is not None]
    assert len(failed) == 1, outcomes
    assert isinstance(failed[0], WorkspaceBusyError), repr(failed[0])
    assert str(failed[0]) == BUSY_CHANGED
    with workspace.session() as session:
        changed_by = set(session.scalars(select(Subject.created_by)))
    assert len(changed_by) == 1  # one writer's changes, whole
