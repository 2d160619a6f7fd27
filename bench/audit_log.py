"""Audit log speed: appending entries (pure part) and verifying a 100,000-entry log.

Run: .venv/bin/python bench/audit_log.py  (about half a minute on one core)

The log holds realistic entries (about 250 to 400 bytes: the actions of a governed
search, with case numbers, policy hashes, reasons) and a signed checkpoint after every
100 entries, as the workflow makes them.

(a) append: `build_entry` (validation and RFC 8785 via rfc8785.dumps), the leaf hash,
    the incremental Merkle root and, every 100 entries, signing a checkpoint. Storing
    entries in the database inside the action's transaction is measured elsewhere
    (bench/audit_append_db.py); this is the cost candor.audit adds to it.
(b) verify: `verify_entries` over all entries with every checkpoint, i.e. the canonical
    check of every entry, the hash chain, the root at each of 1,000 checkpoints and 1,000
    Ed25519 signature checks. Target: at least 100,000 entries/s.
(c) verify_export: the same from an export folder on disk, as an auditor runs it.

Rates are entries per second of wall time (best and median of the rounds) and of CPU
time of this process, since other work on the machine slows the wall clock.

Writes bench/results/audit_log.json and prints a summary.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from _common import write_results
from candor.audit import (
    Checkpoint,
    MerkleAccumulator,
    SigningKey,
    build_entry,
    leaf_hash,
    verify_entries,
    verify_export,
    write_export,
)

ORIGIN = "candor.example/bench-audit"
T0 = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)
USERS = ("a.moreau", "b.okafor", "c.lindqvist", "d.haddad", "e.nakamura", "f.osei")
OFFENCES = ("robbery", "burglary", "aggravated_assault", "homicide", "fraud", "arson")
PURPOSES = ("investigation", "identification_of_victim", "missing_person")
POLICY_SHA256 = hashlib.sha256(b"moratorium policy v3").hexdigest()
MODEL_KEY = "dlib-resnet-v1/1/" + hashlib.sha256(b"weights").hexdigest()[:16]


def fields(seq: int) -> dict[str, Any]:
    """The actor, action, objects and details of entry `seq`, cycling through the steps of
    a governed search so sizes and shapes vary as in a real log."""
    search = 10_000 + seq // 6
    actor = USERS[seq % len(USERS)]
    case = f"2026-CR-{(seq * 7919) % 100_000:05d}"
    step = seq % 6
    if step == 0:
        return {
            "actor": actor,
            "action": "search.request",
            "objects": {"search": search, "case": case},
            "details": {
                "offence_category": OFFENCES[seq % len(OFFENCES)],
                "purpose": PURPOSES[seq % len(PURPOSES)],
                "requesting_agency": "home",
                "probe_sha256": hashlib.sha256(seq.to_bytes(8, "big")).hexdigest(),
                "top": 20,
            },
        }
    if step == 1:
        return {
            "actor": None,
            "action": "search.decide",
            "objects": {"search": search},
            "details": {
                "outcome": "allow" if seq % 5 else "needs_approval",
                "reasons": [] if seq % 5 else ["repeat_search"],
                "policy_sha256": POLICY_SHA256,
                "top": 20,
            },
        }
    if step == 2:
        return {
            "actor": actor,
            "action": "search.run",
            "objects": {"search": search, "model": MODEL_KEY},
            "details": {"candidates": 20, "threshold": "0.926", "gallery_size": 182_344},
        }
    if step == 3:
        return {
            "actor": USERS[(seq + 1) % len(USERS)],
            "action": "candidate.review",
            "objects": {"search": search, "candidate": search * 20 + seq % 20},
            "details": {"verdict": "possible_lead", "reason": "shape of ear and scar agree"},
        }
    if step == 4:
        return {
            "actor": USERS[(seq + 2) % len(USERS)],
            "action": "lead.release",
            "objects": {"search": search, "candidate": search * 20 + seq % 20},
            "details": {"reviewers": 2, "reason": "two independent examiners agree"},
        }
    return {
        "actor": actor,
        "action": "search.view",
        "objects": {"search": search},
        "details": {"shown": 20, "case": case, "viewer_role": "analyst", "page": 1},
    }


def build_log(count: int, every: int, key: SigningKey) -> tuple[list[bytes], list[str], float]:
    """Append `count` entries the way the workflow does; return entries, notes, seconds."""
    entries: list[bytes] = []
    notes: list[str] = []
    accumulator = MerkleAccumulator()
    prev = "0" * 64
    started = time.perf_counter()
    for seq in range(1, count + 1):
        moment = T0 + timedelta(seconds=seq * 3, microseconds=seq % 1_000_000)
        raw = build_entry(seq=seq, time=moment, prev_hex=prev, **fields(seq))
        digest = leaf_hash(raw)
        prev = digest.hex()
        accumulator.append(digest)
        entries.append(raw)
        if seq % every == 0:
            checkpoint = Checkpoint(origin=key.name, size=seq, root=accumulator.root(), time=moment)
            notes.append(key.sign(checkpoint))
    return entries, notes, time.perf_counter() - started


def timed(rounds: int, run: Callable[[], object]) -> dict[str, float]:
    """Best and median wall seconds, and the CPU seconds of the best round."""
    walls, cpus = [], []
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    best = min(range(rounds), key=walls.__getitem__)
    return {"best_s": walls[best], "median_s": statistics.median(walls), "cpu_s": cpus[best]}


def rates(count: int, seconds: dict[str, float]) -> dict[str, float]:
    return {
        "entries_per_s_best": round(count / seconds["best_s"]),
        "entries_per_s_median": round(count / seconds["median_s"]),
        "entries_per_s_cpu": round(count / seconds["cpu_s"]),
        **{key: round(value, 4) for key, value in seconds.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    key = SigningKey(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    vkey = key.verifier_key()
    load_before = os.getloadavg()[0]

    cpu = time.process_time()
    entries, notes, append_s = build_log(args.entries, args.every, key)
    append_cpu_s = time.process_time() - cpu
    sizes = sorted(len(raw) for raw in entries)

    report = verify_entries(entries, notes, vkey)
    if not report.ok:
        print(f"the benchmark log does not verify: {report.problem}", file=sys.stderr)
        return 1
    verify = timed(args.rounds, lambda: verify_entries(entries, notes, vkey))

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "export"
        write_export(folder, entries, notes, vkey)
        export_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        exported = timed(max(1, args.rounds // 2), lambda: verify_export(folder))
    load_after = os.getloadavg()[0]

    results = {
        "description": (
            "candor.audit, pure part. append: build_entry + leaf hash + incremental Merkle "
            "root + an Ed25519-signed checkpoint every `every` entries (the database insert "
            "is measured in bench/audit_append_db.py). verify: verify_entries over every "
            "entry with every checkpoint (canonical check, chain, roots, signatures). "
            "verify_export: the same read from an export folder. Rates are entries per "
            "second of wall time (best, median of rounds) and of this process's CPU time."
        ),
        "settings": {
            "entries": args.entries,
            "checkpoint_every": args.every,
            "checkpoints": len(notes),
            "rounds": args.rounds,
            "entry_bytes": {
                "min": sizes[0],
                "median": sizes[len(sizes) // 2],
                "mean": round(sum(sizes) / len(sizes), 1),
                "max": sizes[-1],
            },
            "export_bytes": export_bytes,
            "load_average_1min_before_after": [load_before, load_after],
        },
        "append": {
            "entries_per_s_wall": round(args.entries / append_s),
            "entries_per_s_cpu": round(args.entries / append_cpu_s),
            "seconds": round(append_s, 3),
        },
        "verify": {**rates(args.entries, verify), "target_entries_per_s": 100_000},
        "verify_export": rates(args.entries, exported),
    }
    path = write_results("audit_log", results)
    print(f"entries: {args.entries}, {sizes[0]}..{sizes[-1]} bytes, {len(notes)} checkpoints")
    print(
        f"append:        {results['append']['entries_per_s_wall']:>9,} entries/s wall, "
        f"{results['append']['entries_per_s_cpu']:>9,} CPU"
    )
    for name in ("verify", "verify_export"):
        row = results[name]
        print(
            f"{name + ':':<14} {row['entries_per_s_best']:>9,} entries/s best, "
            f"{row['entries_per_s_median']:>9,} median, {row['entries_per_s_cpu']:>9,} CPU"
        )
    print(f"load average before/after: {load_before:.2f} / {load_after:.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
