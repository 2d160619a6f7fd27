"""Building signed audit logs for the tests: realistic entries, checkpoints every N."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from candor.audit import (
    Checkpoint,
    MerkleAccumulator,
    SigningKey,
    build_entry,
    canonical_entry,
    leaf_hash,
    parse_entry,
)

ORIGIN = "candor.example/audit"
T0 = datetime(2026, 11, 27, 8, 49, 19, 123456, tzinfo=UTC)
ACTIONS = ("search.request", "search.decide", "search.run", "candidate.review", "lead.release")
ACTORS = ("alice", "bob", "carol", None)


def fixed_key(name: str = ORIGIN, seed: str = "candor tests") -> SigningKey:
    """A signing key derived from `seed`, so test logs are the same on every run."""
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    return SigningKey(name, private)


def make_entry(seq: int, prev: str) -> bytes:
    """Entry `seq` with varied, realistic fields (a few hundred bytes)."""
    return build_entry(
        seq=seq,
        time=T0 + timedelta(seconds=7 * seq, microseconds=seq),
        actor=ACTORS[seq % len(ACTORS)],
        action=ACTIONS[seq % len(ACTIONS)],
        objects={"search": 1000 + seq // 3, "case": f"C-2026-{seq:05d}"},
        details={
            "purpose": "investigation",
            "offence": ["robbery", "burglary", "assault"][seq % 3],
            "policy_sha256": hashlib.sha256(b"policy").hexdigest(),
            "top": 10,
            "reasons": [] if seq % 4 else ["repeat_search"],
            "note": 'reviewed: "same probe", ok' if seq % 7 == 0 else "",
        },
        prev_hex=prev,
    )


def build_log(count: int, every: int, key: SigningKey) -> tuple[list[bytes], list[str]]:
    """`count` chained entries and a signed checkpoint after every `every` entries."""
    entries: list[bytes] = []
    notes: list[str] = []
    accumulator = MerkleAccumulator()
    prev = "0" * 64
    for seq in range(1, count + 1):
        raw = make_entry(seq, prev)
        digest = leaf_hash(raw)
        prev = digest.hex()
        accumulator.append(digest)
        entries.append(raw)
        if seq % every == 0:
            checkpoint = Checkpoint(
                origin=key.name,
                size=seq,
                root=accumulator.root(),
                time=T0 + timedelta(seconds=7 * seq + 1),
            )
            notes.append(key.sign(checkpoint))
    return entries, notes


@cache
def standard_log() -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """330 entries with checkpoints at 100, 200 and 300; entries 301..330 are chain-only."""
    entries, notes = build_log(330, 100, fixed_key())
    return tuple(entries), tuple(notes)


def relink(entries: list[bytes], start: int) -> list[bytes]:
    """Rewrite the `prev` links from position `start` on so the chain holds again: what
    someone with database access does after editing an entry."""
    out = list(entries[:start])
    prev = leaf_hash(out[-1]).hex() if out else "0" * 64
    for raw in entries[start:]:
        fields = dict(parse_entry(raw))
        fields["prev"] = prev
        rebuilt = canonical_entry(fields)
        out.append(rebuilt)
        prev = leaf_hash(rebuilt).hex()
    return out


def resign(entries: list[bytes], every: int, key: SigningKey) -> list[str]:
    """Fresh checkpoints over `entries` every `every` entries, signed with `key`."""
    accumulator = MerkleAccumulator()
    notes = []
    for seq, raw in enumerate(entries, start=1):
        accumulator.append(leaf_hash(raw))
        if seq % every == 0:
            notes.append(
                key.sign(Checkpoint(origin=key.name, size=seq, root=accumulator.root(), time=T0))
            )
    return notes
