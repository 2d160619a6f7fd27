"""The cost of one audit checkpoint at 10k, 100k and 1M entries, and where it grows with n.

Run: .venv/bin/python bench/audit_checkpoint.py [--sizes 10000 100000 1000000] [--rounds 5]

For each size n a workspace's log is built fast: n chained entries (realistic, a few
hundred bytes) inserted in bulk through the store's repository, a checkpoint signed with
the workspace's key after every 100 entries up to n - 100, and the witness written by
hand. Then `make_checkpoint` signs the checkpoint of size n (in a transaction rolled back
after, so every round signs the same tree) in two situations:

- witness_current: the witness holds the newest stored checkpoint (n - 100), as on a
  single node after every checkpoint: the new tree grows from the witness's edge over
  the 100 entries after it.
- witness_behind: the witness holds the first checkpoint (size 100), as on a node whose
  witness was left behind (a crash before it was written, or another node signed the
  checkpoints since). Each checkpoint row stores its compact range (revision 0012), so
  the tree grows from the newest stored one over the 100 entries after it.

The baseline is the same run's log with no compact ranges stored (every checkpoint
signed before revision 0012): `make_checkpoint` then takes the path the code took before
this change, growing the witness's tree over every entry after it. Figures are wall
milliseconds (median and best of the rounds); the machine is shared, so compare each
figure with its baseline, not across runs.

action_transaction: what an action whose entry makes a checkpoint due spends in its own
transaction (a search's): now the entry and the witness check, the checkpoint being
signed after the commit; the baseline, the entry and the whole checkpoint inside it.

Writes bench/results/audit_checkpoint.json.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from _common import write_results
from candor.audit import Checkpoint, KeyRing, MerkleAccumulator, Witness, build_entry, leaf_hash
from candor.store import Workspace
from candor.store import audit_log as repository
from candor.workflow.audit_trail import (
    load_signing_key,
    log_origin,
    make_checkpoint,
    record,
    witness_path,
)
from candor.workflow.workspaces import create_workspace

EVERY = 100
T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
ACTIONS = ("search.requested", "policy.decided", "search.run", "candidates.viewed")
BATCH = 20_000


@dataclass
class Log:
    """n entries, their leaf hashes, and the trees to sign every EVERY entries."""

    bodies: list[bytes]
    leaves: list[bytes]
    # (size, root, compact range) every EVERY entries up to n - EVERY.
    checkpoints: list[tuple[int, bytes, bytes]]
    # The witness's edge at the first and at the newest checkpoint.
    edges: dict[int, tuple[MerkleAccumulator, bytes]]


def build_log(size: int, bar: Progress) -> Log:
    """The entries and checkpoint trees of a log of `size` entries."""
    task = bar.add_task(f"building {size:,} entries", total=size)
    bodies: list[bytes] = []
    leaves: list[bytes] = []
    checkpoints: list[tuple[int, bytes, bytes]] = []
    edges: dict[int, tuple[MerkleAccumulator, bytes]] = {}
    tree = MerkleAccumulator()
    prev = "0" * 64
    last_signed = size - EVERY
    for seq in range(1, size + 1):
        body = build_entry(
            seq=seq,
            time=T0 + timedelta(milliseconds=seq),
            actor=f"analyst{seq % 7}",
            action=ACTIONS[seq % len(ACTIONS)],
            objects={"search": seq // 4 + 1, "case": f"2026-CR-{seq % 99_991:05d}"},
            details={
                "purpose": "investigative_lead",
                "probe_sha256": hashlib.sha256(seq.to_bytes(8, "big")).hexdigest(),
                "top": 20,
            },
            prev_hex=prev,
        )
        digest = leaf_hash(body)
        before_last = MerkleAccumulator.resume(tree.size, tree.subtrees)
        tree.append(digest)
        prev = digest.hex()
        bodies.append(body)
        leaves.append(digest)
        if seq % EVERY == 0 and seq <= last_signed:
            checkpoints.append((seq, tree.root(), before_last.to_bytes() + digest))
            if seq in (EVERY, last_signed):
                edges[seq] = (before_last, digest)
        if seq % BATCH == 0 or seq == size:
            bar.update(task, completed=seq)
    return Log(bodies, leaves, checkpoints, edges)


def store_log(workspace: Workspace, log: Log, ranges: bool, bar: Progress) -> dict[int, str]:
    """Insert the log through the repository, its checkpoints signed with the workspace's
    key, with or without their compact ranges; return the notes by size."""
    key = load_signing_key(workspace)
    origin = log_origin(workspace)
    notes = {
        size: key.sign(Checkpoint(origin=origin, size=size, root=root, time=T0))
        for size, root, _ in log.checkpoints
    }
    task = bar.add_task("storing" + (" with ranges" if ranges else ""), total=len(log.bodies))
    with workspace.session() as session, session.begin():
        for start in range(0, len(log.bodies), BATCH):
            chunk = range(start + 1, min(start + BATCH, len(log.bodies)) + 1)
            repository.append_entries(
                session,
                [
                    {
                        "seq": seq,
                        "body": log.bodies[seq - 1],
                        "leaf_hash": log.leaves[seq - 1].hex(),
                        "created_at": T0,
                        **repository.entry_columns(ACTIONS[seq % len(ACTIONS)], None, {}),
                    }
                    for seq in chunk
                ],
            )
            bar.update(task, completed=chunk[-1])
        for size, root, edge in log.checkpoints:
            stored = edge if ranges else None
            repository.add_checkpoint(session, size, root.hex(), notes[size], T0, stored)
    return notes


def witness_text(workspace: Workspace, log: Log, notes: dict[int, str], at: int) -> str:
    """The witness of the checkpoint of size `at` (one of `log.edges`)."""
    keys = KeyRing.single(load_signing_key(workspace).verifier_key())
    before_last, leaf = log.edges[at]
    return Witness.signed(keys, notes[at], before_last, leaf, at // EVERY, "benchmark").to_text()


def time_checkpoint(workspace: Workspace, witness: str, rounds: int) -> dict[str, float]:
    """Milliseconds of `make_checkpoint` at the log's size, witness file reset each round."""
    path = witness_path(workspace)
    times = []
    for _ in range(rounds):
        path.write_text(witness, encoding="utf-8")
        with workspace.session() as session:
            session.begin()
            started = time.perf_counter()
            row = make_checkpoint(session, workspace)
            times.append(1000 * (time.perf_counter() - started))
            assert row is not None
            session.rollback()
    return {"median_ms": round(statistics.median(times), 2), "best_ms": round(min(times), 2)}


def time_action(workspace: Workspace, witness: str, rounds: int) -> dict[str, Any]:
    """Milliseconds an action's transaction spends on the audit log when its entry makes a
    checkpoint due: the entry and the witness check (this change: the checkpoint is signed
    after the commit), beside the entry and the whole checkpoint (the baseline: signed in
    the transaction). Rolled back each round, so nothing is signed after."""
    path = witness_path(workspace)
    times: dict[str, list[float]] = {"checkpoint_after_commit": [], "baseline_in_transaction": []}
    for _ in range(rounds):
        for label, times_of in times.items():
            path.write_text(witness, encoding="utf-8")
            with workspace.session() as session:
                session.begin()
                started = time.perf_counter()
                if label == "checkpoint_after_commit":
                    record(session, workspace, "analyst1", "search.requested", {}, {})
                else:
                    record(
                        session, workspace, "analyst1", "search.requested", {}, {},
                        auto_checkpoint=False,
                    )  # fmt: skip
                    make_checkpoint(session, workspace)
                times_of.append(1000 * (time.perf_counter() - started))
                session.rollback()
    return {
        label: {
            "median_ms": round(statistics.median(values), 2),
            "best_ms": round(min(values), 2),
        }
        for label, values in times.items()
    }


def measure(size: int, rounds: int, scratch: Path, bar: Progress) -> dict[str, Any]:
    """Both situations at one size, each beside its baseline."""
    results: dict[str, Any] = {"entries": size, "stored_checkpoints": size // EVERY - 1}
    log = build_log(size, bar)
    for ranges in (False, True):
        home = scratch / f"ws-{size}-{'ranges' if ranges else 'baseline'}"
        workspace = create_workspace(home, purpose="evaluation")
        try:
            notes = store_log(workspace, log, ranges, bar)
            label = "compact_range" if ranges else "baseline_no_compact_range"
            for situation, at in (("witness_current", size - EVERY), ("witness_behind", EVERY)):
                witness = witness_text(workspace, log, notes, at)
                results.setdefault(situation, {})[label] = time_checkpoint(
                    workspace, witness, rounds
                )
            if ranges:
                # The entry after the log's last makes a checkpoint due (every 100 entries).
                witness = witness_text(workspace, log, notes, size - EVERY)
                results["action_transaction"] = time_action(workspace, witness, rounds)
        finally:
            workspace.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args(argv)
    figures = []
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3]
    with tempfile.TemporaryDirectory() as scratch, Progress(
        "[bold]{task.description}[/]", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:  # fmt: skip
        for size in arguments.sizes:
            figures.append(measure(size, arguments.rounds, Path(scratch), bar))
    payload = {
        "description": __doc__.split("\n\n")[0] if __doc__ else "",
        "database": "SQLite (the workspace's own file)",
        "checkpoint_every": EVERY,
        "rounds": arguments.rounds,
        "load_average_at_start": load,
        "sizes": figures,
    }
    path = write_results("audit_checkpoint", payload)
    for figure in figures:
        print(figure)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
