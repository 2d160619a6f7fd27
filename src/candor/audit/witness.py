"""The witness: the latest checkpoint a log signed, kept where the database cannot drop it.

A log must never sign a tree that is not an extension of the last tree it signed. The
database cannot be trusted to say what that was (whoever can write it can delete
checkpoint rows), so the signer keeps its own copy beside its key: the signed note, the
keys the log has used, and the right edge of that tree (the perfect subtrees of its first
size - 1 entries and the hash of its last entry). From the edge, extending the tree costs
only the new entries, and the new tree is consistent with the witnessed one by
construction. As JSON:

    {"format": "candor-audit-witness/1",
     "keys": ["<verifier key> 0..", ...],      the log's keys (candor.audit.keyring)
     "checkpoint": "<signed note>" | null,     null until the log's first checkpoint
     "subtrees": ["<hex>", ...],               perfect subtrees of entries 1..size-1
     "last_leaf": "<hex>" | null,              leaf hash of entry `size`
     "checkpoints": <int>,                     checkpoints of size <= size the log held
     "started": "<how this witness began>"}

Everything in it is checked against the signed note when it is read: the note must open
with the keys, and the edge must give the note's root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from candor.audit.errors import ProofError, SignatureError, WitnessError
from candor.audit.keyring import KeyRing, open_with
from candor.audit.merkle import HASH_SIZE, MerkleAccumulator
from candor.audit.notes import Checkpoint

__all__ = ["WITNESS_FORMAT", "Witness"]

WITNESS_FORMAT: Final = "candor-audit-witness/1"
_MAX_WITNESS_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class Witness:
    """The latest signed checkpoint of one log (None before the first) and its keys."""

    keys: KeyRing
    note: str | None
    checkpoint: Checkpoint | None
    subtrees: tuple[bytes, ...]
    last_leaf: bytes | None
    checkpoints: int
    started: str

    @classmethod
    def empty(cls, keys: KeyRing, started: str) -> Witness:
        """The witness of a log that has signed nothing yet."""
        return cls(keys, None, None, (), None, 0, started)

    @classmethod
    def signed(
        cls,
        keys: KeyRing,
        note: str,
        before_last: MerkleAccumulator,
        last_leaf: bytes,
        checkpoints: int,
        started: str,
    ) -> Witness:
        """The witness of `note`, whose tree is `before_last` plus `last_leaf`.

        WitnessError if the note does not open with `keys` or the edge does not give its root.
        """
        return cls._checked(
            keys, note, before_last.subtrees, last_leaf, checkpoints, started, "the new witness"
        )

    @classmethod
    def _checked(
        cls,
        keys: KeyRing,
        note: str | None,
        subtrees: tuple[bytes, ...],
        last_leaf: bytes | None,
        checkpoints: int,
        started: str,
        where: str,
    ) -> Witness:
        if note is None:
            if subtrees or last_leaf is not None or checkpoints:
                raise WitnessError(f"{where} holds a tree edge but no checkpoint")
            return cls(keys, None, None, (), None, 0, started)
        try:
            checkpoint = open_with(note, keys)
        except SignatureError as error:
            raise WitnessError(f"{where}: its checkpoint was rejected: {error}") from None
        if checkpoint.size == 0:
            raise WitnessError(f"{where} holds a checkpoint of the empty log")
        if last_leaf is None or len(last_leaf) != HASH_SIZE:
            raise WitnessError(f"{where} lacks the hash of entry {checkpoint.size}")
        try:
            edge = MerkleAccumulator.resume(checkpoint.size - 1, subtrees)
        except ProofError as error:
            raise WitnessError(f"{where}: {error}") from None
        edge.append(last_leaf)
        if edge.root() != checkpoint.root:
            raise WitnessError(
                f"{where}: its tree edge gives the root {edge.root().hex()}, but its signed "
                f"checkpoint says {checkpoint.root.hex()}"
            )
        if checkpoints < 1:
            raise WitnessError(f"{where} counts {checkpoints} checkpoints but holds one")
        return cls(keys, note, checkpoint, subtrees, last_leaf, checkpoints, started)

    @property
    def size(self) -> int:
        """The tree size of the witnessed checkpoint (0 before the first)."""
        return 0 if self.checkpoint is None else self.checkpoint.size

    def tree(self) -> MerkleAccumulator:
        """The witnessed tree, ready to take the entries after it."""
        if self.last_leaf is None:
            return MerkleAccumulator()
        tree = MerkleAccumulator.resume(self.size - 1, self.subtrees)
        tree.append(self.last_leaf)
        return tree

    def with_keys(self, keys: KeyRing) -> Witness:
        """The same checkpoint under a key ring that has grown by a rotation."""
        return Witness._checked(
            keys,
            self.note,
            self.subtrees,
            self.last_leaf,
            self.checkpoints,
            self.started,
            "the witness",
        )

    def to_text(self) -> str:
        """The JSON text written to the witness file."""
        content: dict[str, Any] = {
            "format": WITNESS_FORMAT,
            "keys": [str(span) for span in self.keys.spans],
            "checkpoint": self.note,
            "subtrees": [subtree.hex() for subtree in self.subtrees],
            "last_leaf": None if self.last_leaf is None else self.last_leaf.hex(),
            "checkpoints": self.checkpoints,
            "started": self.started,
        }
        return json.dumps(content, indent=2) + "\n"

    @classmethod
    def from_text(cls, text: str, where: str) -> Witness:
        """Read and check a witness file's text; `where` names it in every error."""
        if len(text) > _MAX_WITNESS_BYTES:
            raise WitnessError(f"{where} is larger than {_MAX_WITNESS_BYTES} bytes")
        try:
            content = json.loads(text)
        except json.JSONDecodeError as error:
            raise WitnessError(f"{where} is not JSON: {error}") from None
        if not isinstance(content, dict) or content.get("format") != WITNESS_FORMAT:
            raise WitnessError(f"{where} is not a Candor audit witness ({WITNESS_FORMAT})")
        keys_text = content.get("keys")
        note = content.get("checkpoint")
        subtrees = content.get("subtrees")
        last_leaf = content.get("last_leaf")
        checkpoints = content.get("checkpoints")
        started = content.get("started")
        if (
            not isinstance(keys_text, list)
            or not keys_text
            or not all(isinstance(line, str) for line in keys_text)
            or not (note is None or isinstance(note, str))
            or not isinstance(subtrees, list)
            or not all(isinstance(item, str) for item in subtrees)
            or not (last_leaf is None or isinstance(last_leaf, str))
            or type(checkpoints) is not int
            or not isinstance(started, str)
        ):
            raise WitnessError(f"{where} lacks a field or holds one of the wrong type")
        try:
            keys = KeyRing.parse("\n".join(keys_text))
            edge = tuple(bytes.fromhex(item) for item in subtrees)
            leaf = None if last_leaf is None else bytes.fromhex(last_leaf)
        except SignatureError as error:
            raise WitnessError(f"{where}: its keys were rejected: {error}") from None
        except ValueError:
            raise WitnessError(f"{where} holds a hash that is not hex") from None
        return cls._checked(keys, note, edge, leaf, checkpoints, started, where)
