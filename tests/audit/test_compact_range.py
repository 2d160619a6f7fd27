"""Issue 15, item 2: checkpoints in O(log n).

Each checkpoint row keeps its tree's compact range (revision 0012), so a checkpoint grows
from the newest stored one over the entries after it, even where the witness was left
behind; an altered range is refused; and an automatic checkpoint is signed after the action
that made it due commits, not inside its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from candor import audit
from candor.audit import MerkleAccumulator, leaf_hash
from candor.audit.errors import ProofError
from candor.store import AuditCheckpoint
from candor.store import audit_log as repository
from candor.workflow import WorkflowError
from candor.workflow.audit_ops import verify_log
from candor.workflow.audit_trail import make_checkpoint, record
from tests.support import raw_sql

from .conftest import Log
from .tamper import stored_log


def witness_size(log: Log) -> int:
    note = json.loads(log.witness.read_text())["checkpoint"]
    return int(note.split("\n")[1])


def newest_size(log: Log) -> int:
    with log.workflow.workspace.session() as session:
        return int(session.scalar(select(func.max(AuditCheckpoint.tree_size))) or 0)


def unsigned(log: Log) -> int:
    """How many entries come after the newest checkpoint."""
    with log.workflow.workspace.session() as session:
        return repository.log_size(session) - newest_size(log)


def test_each_checkpoint_stores_the_compact_range_of_its_tree(log: Log) -> None:
    log.add_entries(7)
    entries, _ = stored_log(log.home)
    leaves = [leaf_hash(body) for body in entries]
    _, rows = raw_sql(
        log.home, "SELECT tree_size, compact_range FROM audit_checkpoints ORDER BY tree_size"
    )
    assert len(rows) > 10
    for size, packed in rows:
        assert isinstance(size, int) and isinstance(packed, bytes)
        # The perfect subtrees of its first size - 1 entries, then entry `size`'s leaf.
        assert packed == MerkleAccumulator(leaves[: size - 1]).to_bytes() + leaves[size - 1]


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The entry rows each read of the log returns, as the repository hands them over."""
    counts: list[int] = []

    def counted(function: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            found = function(*args, **kwargs)
            counts.append(len(found) if isinstance(found, list) else int(found is not None))
            return found

        return spy

    for name in ("entries_from", "entries_after", "entry_at", "entry_bodies", "browser_rows"):
        if hasattr(repository, name):
            monkeypatch.setattr(repository, name, counted(getattr(repository, name)))
    yield counts


def sign_after(log: Log, entries: int, rows_read: list[int]) -> int:
    """Append `entries` without automatic checkpoints, then sign one; the rows it read."""
    workflow = log.workflow
    with workflow.workspace.session() as session, session.begin():
        for _ in range(entries):
            record(session, workflow, "ana", "test.routine", {}, {}, auto_checkpoint=False)
        rows_read.clear()
        assert make_checkpoint(session, workflow) is not None
        return sum(rows_read)


def test_a_checkpoint_reads_only_the_entries_after_the_witness(
    log: Log, rows_read: list[int]
) -> None:
    assert witness_size(log) == newest_size(log)
    after = unsigned(log)
    # The witness's last entry, then those after it and the three new ones.
    assert sign_after(log, 3, rows_read) == 1 + after + 3


def test_a_witness_left_behind_grows_from_the_newest_stored_checkpoint(
    log: Log, rows_read: list[int]
) -> None:
    # As after a crash before the witness was written, or on a node that did not sign the
    # checkpoints since: the witness is 40 entries (8 checkpoints) behind the store.
    stale = log.witness.read_bytes()
    log.add_entries(40)
    newest = newest_size(log)
    log.witness.write_bytes(stale)
    assert witness_size(log) < newest - 30
    after = unsigned(log)
    # The witness's last entry, the newest checkpoint's last entry, those after it and the
    # three new ones; before revision 0012 every entry since the witness (over 40 rows).
    assert sign_after(log, 3, rows_read) == 1 + 1 + after + 3
    assert witness_size(log) == newest + after + 3
    assert verify_log(log.workflow, log["ada"]).ok


def test_checkpoints_signed_without_a_range_are_grown_from_the_witness_once(log: Log) -> None:
    stale = log.witness.read_bytes()
    log.add_entries(20)
    log.witness.write_bytes(stale)
    log.workflow.workspace.close()
    # As checkpoints signed before revision 0012 are stored.
    raw_sql(log.home, "UPDATE audit_checkpoints SET compact_range = NULL")
    log.add_entries(5)
    _, rows = raw_sql(
        log.home, "SELECT count(*) FROM audit_checkpoints WHERE compact_range IS NULL"
    )
    assert rows[0][0] == len(raw_sql(log.home, "SELECT 1 FROM audit_checkpoints")[1]) - 1
    assert witness_size(log) == newest_size(log)
    assert verify_log(log.workflow, log["ada"]).ok


def alter_newest_range(log: Log) -> None:
    log.workflow.workspace.close()
    _, rows = raw_sql(
        log.home,
        "SELECT compact_range FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
    )
    packed = bytearray(rows[0][0])  # type: ignore[arg-type]
    packed[0] ^= 1
    raw_sql(
        log.home,
        "UPDATE audit_checkpoints SET compact_range = ? WHERE tree_size = "
        "(SELECT max(tree_size) FROM audit_checkpoints)",
        bytes(packed),
    )


def test_an_altered_compact_range_is_refused_where_the_log_would_grow_from_it(log: Log) -> None:
    stale = log.witness.read_bytes()
    log.add_entries(10)
    log.witness.write_bytes(stale)
    alter_newest_range(log)
    report = verify_log(log.workflow, log["ada"])
    assert not report.ok and "compact range" in (report.problem or "")
    before = newest_size(log)
    # The action that makes the next checkpoint due is refused with it.
    with pytest.raises(WorkflowError, match=r"compact range stored with the checkpoint .* altered"):
        log.add_entries(5)
    assert newest_size(log) == before


def test_an_altered_compact_range_fails_verification_with_the_witness_current(log: Log) -> None:
    alter_newest_range(log)
    report = verify_log(log.workflow, log["ada"])
    assert not report.ok
    assert f"checkpoint of size {witness_size(log)} gives the root" in (report.problem or "")


def test_a_due_checkpoint_is_signed_after_the_action_commits_not_inside_it(log: Log) -> None:
    workflow = log.workflow
    before = newest_size(log)
    with workflow.workspace.session() as session, session.begin():
        for _ in range(12):
            record(session, workflow, "ana", "test.routine", {}, {})
        # Due twice over (every 5 entries), yet nothing is signed in the action's transaction.
        inside = session.scalar(select(func.max(AuditCheckpoint.tree_size)))
        size = repository.log_size(session)
    assert inside == before
    # Once it committed, one checkpoint of all of it, in a transaction of its own.
    assert newest_size(log) == size == witness_size(log)
    assert verify_log(workflow, log["ada"]).ok


def test_a_due_checkpoint_of_a_rolled_back_action_is_not_signed(log: Log) -> None:
    workflow = log.workflow
    before = newest_size(log)
    with workflow.workspace.session() as session:
        session.begin()
        for _ in range(6):
            record(session, workflow, "ana", "test.dropped", {}, {})
        session.rollback()
    assert newest_size(log) == before == witness_size(log)


def test_compact_ranges_round_trip_and_share_the_subtrees_a_consistency_proof_would() -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(70)]
    for size in range(70):
        tree = MerkleAccumulator(leaves[:size])
        again = MerkleAccumulator.from_bytes(size, tree.to_bytes())
        assert again.subtrees == tree.subtrees and again.root() == tree.root()
        for new in range(size, 70):
            later = MerkleAccumulator(leaves[:new]).subtrees
            shared = audit.shared_subtrees(size, new)
            assert tree.subtrees[:shared] == later[:shared]
            # No more than that: the next subtree of the older tree is not one of the newer.
            if shared < len(tree.subtrees):
                assert tree.subtrees[shared] not in later
    with pytest.raises(ProofError, match="3 perfect subtrees"):
        MerkleAccumulator.from_bytes(7, b"\0" * 64)
    with pytest.raises(ProofError, match="old size"):
        audit.shared_subtrees(5, 4)
