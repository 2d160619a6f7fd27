"""One audit log under many writers: 8 processes doing 200 audited actions each, at once.

Each process opens its own workflow on the same workspace (as server workers and nodes
do) and updates a training certificate 200 times: the cheapest real audited action (two
lookups, one row changed, one entry). Checkpoints are due every 50 entries, so the
processes also sign checkpoints and move the shared witness while others append. The
log must then verify, hold exactly the 1,600 actions' entries, each process's in the
order it made them, and its witness must stand at its newest checkpoint.

Without the head held in the appending transaction, PostgreSQL's writers (READ
COMMITTED) read the same last seq and all but one fail on the primary key. The test
runs on the test run's database: SQLite, and PostgreSQL in `make test`'s second pass.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest

from candor.audit import parse_entry
from candor.store import Workspace
from candor.store.audit_log import UnlockedAppendError, latest_checkpoint
from candor.workflow import Actor, Workflow
from candor.workflow.accounts import update_certificate
from candor.workflow.audit_ops import verify_log
from candor.workflow.audit_trail import describe_witness, record, stored_log
from tests.agency import Agency, make_agency, new_user

pytestmark = pytest.mark.xdist_group("workflow")

WRITERS = 8
ACTIONS = 200
ACTION = "user.certificate_updated"
EXPIRES = date(2030, 1, 1)
BUSY_TIMEOUT_MS = 120_000


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    # On the test run's database: SQLite, and PostgreSQL in `make test`'s second pass
    # (CANDOR_TEST_DATABASE=postgres, tests/conftest.py).
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def certify(home: Path, actor: Actor, writer: int, barrier: Any, outcomes: Any) -> None:
    """In its own process: ACTIONS certificate updates, starting with the others."""
    try:
        # A generous busy timeout: the test is about the log's order, and 8 writers on a
        # loaded 2-core machine can keep one waiting past the default's 10 s.
        with Workflow(Workspace.open(home, busy_timeout_ms=BUSY_TIMEOUT_MS)) as workflow:
            barrier.wait(timeout=120)
            for number in range(ACTIONS):
                update_certificate(workflow, actor, "ana", f"FRT-{writer}-{number}", EXPIRES)
        outcomes.put((writer, None))
    except BaseException:  # reported to the test, which names the process
        outcomes.put((writer, traceback.format_exc()))


def test_eight_processes_append_one_log(agency: Agency, monkeypatch: pytest.MonkeyPatch) -> None:
    # Inherited by the spawned processes.
    monkeypatch.setenv("CANDOR_CHECKPOINT_EVERY", "50")
    monkeypatch.setenv("CANDOR_CHECKPOINT_SECONDS", "3600")
    workflow = agency.workflow
    home = workflow.workspace.home
    auditor = agency.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    context = get_context("spawn")
    barrier = context.Barrier(WRITERS)
    outcomes = context.Queue()
    processes = [
        context.Process(target=certify, args=(home, agency["admin1"], writer, barrier, outcomes))
        for writer in range(WRITERS)
    ]
    for process in processes:
        process.start()
    results = dict(outcomes.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    failures = {writer: error for writer, error in results.items() if error is not None}
    assert not failures, "\n".join(f"process {w}:\n{e}" for w, e in failures.items())

    report = verify_log(workflow, auditor)
    assert report.ok, report.problem
    with workflow.workspace.session() as session:
        bodies, _ = stored_log(session)
        checkpoint = latest_checkpoint(session)
    refs = []
    for entry in map(parse_entry, bodies):
        details = entry["details"]
        if entry["action"] == ACTION and isinstance(details, dict):
            refs.append(str(details["certificate_ref"]))
    assert len(refs) == WRITERS * ACTIONS
    for writer in range(WRITERS):
        own = [ref for ref in refs if ref.startswith(f"FRT-{writer}-")]
        assert own == [f"FRT-{writer}-{number}" for number in range(ACTIONS)]
    # No slower process moved the witness back behind a newer checkpoint.
    witness = describe_witness(workflow.workspace)
    assert checkpoint is not None and witness is not None
    assert witness["tree_size"] == checkpoint[0]


def test_an_entry_is_appended_only_in_a_writing_transaction(agency: Agency) -> None:
    # A reading session keeps the snapshot it began with (SQLite's deferred transaction,
    # PostgreSQL's REPEATABLE READ), so the head it read could be stale: refused.
    workflow = agency.workflow
    with (
        workflow.workspace.session() as session,
        pytest.raises(UnlockedAppendError, match="only in a writing transaction"),
    ):
        record(session, workflow, "ana", "test.unlocked", {}, {})
    with workflow.workspace.session() as session, session.begin():
        assert record(session, workflow, "ana", "test.locked", {}, {}) > 0
