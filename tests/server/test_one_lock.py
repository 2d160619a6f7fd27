"""Without --one-lock a process serves workflow calls side by side; with it, one at a time
(the design before --workers, kept as the benchmarks' baseline)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from candor.server.app import create_app
from candor.server.state import ServerState
from candor.workflow import Workflow
from candor.workflow.workspaces import create_workspace

# Long enough for a thread to start on a loaded machine; waited out only on a failure.
WAIT_SECONDS = 20.0


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workflow]:
    home = tmp_path_factory.mktemp("one-lock") / "ws"
    with Workflow(create_workspace(home, purpose="demo")) as made:
        yield made


def _second_call_runs_during_the_first(state: ServerState, wait: float) -> bool:
    """Whether a call made from another thread runs while a first call is still inside."""
    inside = threading.Event()
    helper = threading.Thread(target=state.call, args=(inside.set,))

    def first() -> bool:
        helper.start()
        return inside.wait(wait)

    ran = state.call(first)
    helper.join()
    return ran


def test_calls_run_side_by_side_by_default(workflow: Workflow) -> None:
    state: ServerState = create_app(workflow).state.candor
    assert not state.one_lock
    assert _second_call_runs_during_the_first(state, WAIT_SECONDS)


def test_one_lock_runs_one_call_at_a_time(workflow: Workflow) -> None:
    state: ServerState = create_app(workflow, one_lock=True).state.candor
    # The second call cannot start before the first ends, however long it waits.
    assert not _second_call_runs_during_the_first(state, 0.5)
