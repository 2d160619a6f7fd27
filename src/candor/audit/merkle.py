"""The Merkle tree of RFC 9162 section 2.1 over audit entries, with the standard library only.

Leaves are SHA-256(0x00 || entry bytes) and interior nodes SHA-256(0x01 || left || right).
The root of n leaves splits at k, the largest power of two smaller than n. Roots are
computed iteratively (a stack of perfect subtrees, as a binary counter), so a root over
n leaves costs n - 1 node hashes and no recursion; proofs recurse only log2(n) deep.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from candor.audit.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleAccumulator",
    "consistency_proof",
    "fold_root",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "shared_subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


def leaf_hash(entry_bytes: bytes) -> bytes:
    """SHA-256(0x00 || entry_bytes): the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleAccumulator:
    """A growing tree that keeps only its perfect subtrees (one per set bit of the size).

    Appending costs one leaf plus, on average, one node hash; `root()` costs at most
    log2(size) node hashes. The verifier and checkpoint writers use it to get the root
    at every checkpoint size in one pass.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._size = 0
        self._stack: list[bytes] = []
        for leaf in leaf_hashes:
            self.append(leaf)

    @classmethod
    def resume(cls, size: int, subtrees: Sequence[bytes]) -> MerkleAccumulator:
        """The tree of `size` leaves from its perfect subtrees' roots, largest first (what
        `subtrees` gave): one per set bit of `size`. ProofError if they do not fit."""
        if size < 0 or len(subtrees) != size.bit_count():
            raise ProofError(
                f"a tree of {size} leaves has {max(size, 0).bit_count()} perfect subtrees, "
                f"got {len(subtrees)}"
            )
        for position, subtree in enumerate(subtrees):
            _check_hash(f"subtree {position}", subtree)
        accumulator = cls()
        accumulator._size = size
        accumulator._stack = list(subtrees)
        return accumulator

    @property
    def size(self) -> int:
        """How many leaves have been appended."""
        return self._size

    @property
    def subtrees(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees so far, largest (leftmost) first: with the size,
        all that is needed to go on appending (a compact range of the tree's right edge)."""
        return tuple(self._stack)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the right edge of the tree."""
        stack = self._stack
        stack.append(leaf)
        self._size += 1
        # Each trailing zero bit of the new size completes one perfect subtree.
        merges = self._size
        while not merges & 1:
            right = stack.pop()
            stack[-1] = hashlib.sha256(_NODE_PREFIX + stack[-1] + right).digest()
            merges >>= 1

    def root(self) -> bytes:
        """MTH of the leaves so far (sha256(b"") for none)."""
        return fold_root(self._stack)

    def to_bytes(self) -> bytes:
        """The perfect subtrees' roots, largest first, end to end (32 bytes each): with the
        size, the compact range that `from_bytes` reads back."""
        return b"".join(self._stack)

    @classmethod
    def from_bytes(cls, size: int, packed: bytes) -> MerkleAccumulator:
        """The tree of `size` leaves from `to_bytes`'s output; ProofError if it does not fit."""
        if len(packed) != HASH_SIZE * max(size, 0).bit_count():
            raise ProofError(
                f"a tree of {size} leaves has {max(size, 0).bit_count()} perfect subtrees "
                f"({HASH_SIZE} bytes each), got {len(packed)} bytes"
            )
        subtrees = [packed[at : at + HASH_SIZE] for at in range(0, len(packed), HASH_SIZE)]
        return cls.resume(size, subtrees)


def shared_subtrees(old_size: int, new_size: int) -> int:
    """How many of the perfect subtrees of the tree of `old_size` leaves (largest first) are
    perfect subtrees of the tree of `new_size` >= old_size too: one per set bit of old_size
    above the highest bit where the two sizes differ. Two trees that share a prefix agree on
    these without any other node, so comparing them is a consistency check in O(log n)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size must be from 0 to the new size {new_size}, got {old_size}")
    return (old_size >> (old_size ^ new_size).bit_length()).bit_count()


def fold_root(subtrees: Sequence[bytes]) -> bytes:
    """The root of a tree given its perfect subtrees' roots, largest (leftmost) first."""
    if not subtrees:
        return EMPTY_ROOT
    root = subtrees[-1]
    for subtree in reversed(subtrees[:-1]):
        root = node_hash(subtree, root)
    return root


_Memo = dict[tuple[int, int], bytes]


def _subtree_root(
    leaf_hashes: Sequence[bytes], start: int, end: int, memo: _Memo | None = None
) -> bytes:
    """MTH(D[start:end]) for end > start, iteratively; `memo` keeps the subtrees that
    proofs name, so many proofs into one tree share them."""
    if memo is not None and (start, end) in memo:
        return memo[(start, end)]
    accumulator = MerkleAccumulator()
    for index in range(start, end):
        accumulator.append(leaf_hashes[index])
    root = accumulator.root()
    if memo is not None:
        memo[(start, end)] = root
    return root


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 2.1.1; the empty tree's root is sha256(b"")."""
    return MerkleAccumulator(leaf_hashes).root()


def _check_sizes(available: int, *, index: int | None = None, size: int, old: int = 0) -> None:
    if not 0 <= size <= available:
        raise ProofError(f"tree size must be from 0 to {available} (leaves given), got {size}")
    if index is not None and not 0 <= index < size:
        raise ProofError(f"leaf index must be from 0 to {size - 1}, got {index}")
    if not 0 <= old <= size:
        raise ProofError(f"old tree size must be from 0 to {size}, got {old}")


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1, leaf-side hash first."""
    _check_sizes(len(leaf_hashes), index=index, size=size)
    proof: list[bytes] = []
    _path(leaf_hashes, index, 0, size, proof)
    return proof


def _path(leaf_hashes: Sequence[bytes], index: int, start: int, end: int, out: list[bytes]) -> None:
    """Append PATH(index - start, D[start:end]) to `out`, innermost sibling first."""
    if end - start <= 1:
        return
    k = _split(end - start)
    if index < start + k:
        _path(leaf_hashes, index, start, start + k, out)
        out.append(_subtree_root(leaf_hashes, start + k, end))
    else:
        _path(leaf_hashes, index, start + k, end, out)
        out.append(_subtree_root(leaf_hashes, start, start + k))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1; empty when old_size is 0 or new_size."""
    return consistency_proof_shared(leaf_hashes, old_size, new_size, None)


def consistency_proof_shared(
    leaf_hashes: Sequence[bytes], old_size: int, new_size: int, memo: _Memo | None
) -> list[bytes]:
    """`consistency_proof`, reusing subtree roots kept in `memo` across calls (the
    verifier proves many held checkpoints against one tree)."""
    _check_sizes(len(leaf_hashes), size=new_size, old=old_size)
    proof: list[bytes] = []
    if 0 < old_size < new_size:
        _subproof(leaf_hashes, old_size, 0, new_size, True, proof, memo)
    return proof


def _subproof(
    leaf_hashes: Sequence[bytes],
    old: int,
    start: int,
    end: int,
    whole: bool,
    out: list[bytes],
    memo: _Memo | None,
) -> None:
    """Append SUBPROOF(old - start, D[start:end], whole) to `out`."""
    if old == end:
        if not whole:
            out.append(_subtree_root(leaf_hashes, start, end, memo))
        return
    k = _split(end - start)
    if old - start <= k:
        _subproof(leaf_hashes, old, start, start + k, whole, out, memo)
        out.append(_subtree_root(leaf_hashes, start + k, end, memo))
    else:
        _subproof(leaf_hashes, old, start + k, end, False, out, memo)
        out.append(_subtree_root(leaf_hashes, start, start + k, memo))


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _inclusion_length(index: int, size: int) -> int:
    """Hashes in PATH(index, D[size]): levels below the split from the right edge, plus
    one per left sibling above it."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash `leaf` sits at `index` in the tree of `size` with `root`
    (RFC 9162 2.1.3.2); raise ProofError saying what was expected and what was found."""
    _check_hash("leaf hash", leaf)
    _check_hash("root hash", root)
    for position, step in enumerate(proof):
        _check_hash(f"proof hash {position}", step)
    if not 0 <= index < size:
        raise ProofError(f"leaf index must be from 0 to {size - 1}, got {index}")
    expected = _inclusion_length(index, size)
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} needs {expected} hashes, got {len(proof)}"
        )
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof for leaf {index} of {size} is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof for leaf {index} of {size} is too short")
    if r != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} leads to root {r.hex()}, "
            f"expected {root.hex()}"
        )


def _consistency_length(old_size: int, new_size: int) -> int:
    """Hashes in PROOF(old_size, D[new_size]) for 0 < old_size < new_size."""
    shift = (old_size & -old_size).bit_length() - 1
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> inner).bit_count()
    seeded = 0 if old_size == 1 << shift else 1
    return seeded + inner - shift + border


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `new_size` with `new_root` extends the tree of `old_size` with
    `old_root` (RFC 9162 2.1.4.2); raise ProofError saying what was expected and found."""
    _check_hash("old root hash", old_root)
    _check_hash("new root hash", new_root)
    for position, step in enumerate(proof):
        _check_hash(f"proof hash {position}", step)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size must be from 0 to the new size {new_size}, got {old_size}")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise ProofError(
                f"consistency proof from {old_size} to {new_size} must be empty, "
                f"got {len(proof)} hashes"
            )
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError(
                f"the root of the empty tree is {EMPTY_ROOT.hex()}, got {old_root.hex()}"
            )
        if old_size == new_size and old_root != new_root:
            raise ProofError(
                f"trees of equal size {new_size} must have equal roots, "
                f"got {old_root.hex()} and {new_root.hex()}"
            )
        return
    expected = _consistency_length(old_size, new_size)
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} needs {expected} hashes, "
            f"got {len(proof)}"
        )
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is too short")
    if fr != old_root:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} leads to old root {fr.hex()}, "
            f"expected {old_root.hex()}"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} leads to new root {sr.hex()}, "
            f"expected {new_root.hex()}"
        )
