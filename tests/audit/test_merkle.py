"""The RFC 9162 Merkle tree: known roots, every proof verifies, any changed bit fails."""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candor.audit import (
    EMPTY_ROOT,
    MerkleAccumulator,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# The transparency-log test vectors (RFC 6962 implementations, e.g. certificate-transparency-go).
VECTOR_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
VECTOR_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
VECTOR_HASHES = [leaf_hash(bytes.fromhex(leaf)) for leaf in VECTOR_LEAVES]


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 2.1.1 writes it, recursively."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def tree(size: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(size)]


def flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return bytes(data)


@pytest.mark.parametrize("size", sorted(VECTOR_ROOTS))
def test_roots_of_the_transparency_log_vectors(size: int) -> None:
    assert merkle_root(VECTOR_HASHES[:size]).hex() == VECTOR_ROOTS[size]
    assert MerkleAccumulator(VECTOR_HASHES[:size]).root().hex() == VECTOR_ROOTS[size]


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MerkleAccumulator().root() == EMPTY_ROOT


def test_inclusion_proof_of_the_vector_tree_is_the_sibling_path() -> None:
    h = VECTOR_HASHES
    proof = inclusion_proof(h, 0, 8)
    assert proof == [h[1], node_hash(h[2], h[3]), reference_root(h[4:8])]
    # The right edge of an odd tree skips the missing sibling level.
    assert inclusion_proof(h, 6, 7) == [node_hash(h[4], h[5]), reference_root(h[:4])]


def test_consistency_proof_of_the_vector_tree() -> None:
    h = VECTOR_HASHES
    # RFC 9162 2.1.4.3 example: PROOF(3, D[7]) = [c, d, g, l].
    assert consistency_proof(h, 3, 7) == [
        h[2],
        h[3],
        node_hash(h[0], h[1]),
        reference_root(h[4:7]),
    ]
    assert consistency_proof(h, 4, 7) == [reference_root(h[4:7])]
    assert consistency_proof(h, 6, 7) == [
        node_hash(h[4], h[5]),
        h[6],
        reference_root(h[:4]),
    ]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=3))
def test_iterative_root_equals_the_recursive_definition(size: int, salt: int) -> None:
    hashes = tree(size, salt)
    assert merkle_root(hashes) == reference_root(hashes)
    accumulator = MerkleAccumulator()
    for index, leaf in enumerate(hashes):
        accumulator.append(leaf)
        assert accumulator.size == index + 1
    assert accumulator.root() == reference_root(hashes)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=48), st.integers(min_value=0, max_value=3))
def test_every_inclusion_proof_verifies(size: int, salt: int) -> None:
    hashes = tree(size, salt)
    for n in range(1, size + 1):
        root = reference_root(hashes[:n])
        for index in range(n):
            verify_inclusion(hashes[index], index, n, inclusion_proof(hashes, index, n), root)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=3))
def test_every_consistency_proof_verifies(size: int, salt: int) -> None:
    hashes = tree(size, salt)
    roots = [reference_root(hashes[:n]) for n in range(size + 1)]
    for n in range(size + 1):
        for m in range(n + 1):
            verify_consistency(m, n, roots[m], roots[n], consistency_proof(hashes, m, n))


def inclusion_shape(index: int, size: int) -> list[str] | None:
    """Which side each proof hash joins on, per the RFC 9162 2.1.3.2 loop; None if invalid.

    A tree's root does not commit to its size: two sizes whose paths have the same shape
    accept the same proof (leaf 0 of 5 and of 7, say). The size is bound by the signed
    checkpoint that states it, not by the proof."""
    if not 0 <= index < size:
        return None
    fn, sn, steps = index, size - 1, []
    while sn:
        if fn & 1 or fn == sn:
            steps.append("left")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            steps.append("right")
        fn, sn = fn >> 1, sn >> 1
    return steps


def consistency_shape(old: int, new: int) -> tuple[bool, list[str]] | None:
    """The operations of the RFC 9162 2.1.4.2 loop for sizes 0 < old < new; else None."""
    if not 0 < old < new:
        return None
    fn, sn, steps = old - 1, new - 1, []
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    while sn:
        if fn & 1 or fn == sn:
            steps.append("both")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            steps.append("new")
        fn, sn = fn >> 1, sn >> 1
    return old & (old - 1) == 0, steps


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return tree(size, draw(st.integers(0, 3))), index, size


@settings(max_examples=300, deadline=None)
@given(inclusion_cases(), st.sampled_from(["proof", "leaf", "root", "index", "size"]), st.data())
def test_any_flipped_bit_fails_inclusion_unless_the_size_keeps_the_path_shape(
    case: tuple[list[bytes], int, int], part: str, data: st.DataObject
) -> None:
    hashes, index, size = case
    proof = inclusion_proof(hashes, index, size)
    leaf, root = hashes[index], merkle_root(hashes)
    verify_inclusion(leaf, index, size, proof, root)
    if part == "proof":
        if not proof:
            return
        at = data.draw(st.integers(0, len(proof) - 1))
        proof[at] = flip(proof[at], data.draw(st.integers(0, 255)))
    elif part == "leaf":
        leaf = flip(leaf, data.draw(st.integers(0, 255)))
    elif part == "root":
        root = flip(root, data.draw(st.integers(0, 255)))
    elif part == "index":
        index ^= 1 << data.draw(st.integers(0, 62))
    else:
        size ^= 1 << data.draw(st.integers(0, 62))
        if inclusion_shape(index, size) == inclusion_shape(*case[1:]):
            verify_inclusion(leaf, index, size, proof, root)
            return
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, root)


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    old = draw(st.integers(min_value=1, max_value=size))
    return tree(size, draw(st.integers(0, 3))), old, size


@settings(max_examples=300, deadline=None)
@given(
    consistency_cases(),
    st.sampled_from(["proof", "old_root", "new_root", "old_size", "new_size"]),
    st.data(),
)
def test_any_flipped_bit_fails_consistency_unless_the_sizes_keep_the_path_shape(
    case: tuple[list[bytes], int, int], part: str, data: st.DataObject
) -> None:
    hashes, old, new = case
    proof = consistency_proof(hashes, old, new)
    old_root, new_root = merkle_root(hashes[:old]), merkle_root(hashes)
    verify_consistency(old, new, old_root, new_root, proof)
    if part == "proof":
        if not proof:
            return
        at = data.draw(st.integers(0, len(proof) - 1))
        proof[at] = flip(proof[at], data.draw(st.integers(0, 255)))
    elif part == "old_root":
        old_root = flip(old_root, data.draw(st.integers(0, 255)))
    elif part == "new_root":
        new_root = flip(new_root, data.draw(st.integers(0, 255)))
    else:
        if part == "old_size":
            old ^= 1 << data.draw(st.integers(0, 62))
        else:
            new ^= 1 << data.draw(st.integers(0, 62))
        shape = consistency_shape(old, new)
        if shape is not None and shape == consistency_shape(*case[1:]):
            verify_consistency(old, new, old_root, new_root, proof)
            return
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, proof)


def test_the_size_is_not_bound_by_the_proof_but_by_the_checkpoint() -> None:
    hashes = tree(5)
    # Leaf 0's path is left-left-left in trees of 5 and of 7 leaves alike.
    verify_inclusion(hashes[0], 0, 7, inclusion_proof(hashes, 0, 5), merkle_root(hashes))
    with pytest.raises(ProofError):
        verify_inclusion(hashes[0], 0, 9, inclusion_proof(hashes, 0, 5), merkle_root(hashes))


def test_inclusion_errors_say_what_was_expected() -> None:
    hashes = tree(7)
    root = merkle_root(hashes)
    proof = inclusion_proof(hashes, 2, 7)
    with pytest.raises(ProofError, match="needs 3 hashes, got 2"):
        verify_inclusion(hashes[2], 2, 7, proof[:2], root)
    with pytest.raises(ProofError, match=f"expected {root.hex()}"):
        verify_inclusion(hashes[3], 2, 7, proof, root)
    with pytest.raises(ProofError, match="leaf index must be from 0 to 6, got 7"):
        verify_inclusion(hashes[2], 7, 7, proof, root)
    with pytest.raises(ProofError, match="must be 32 bytes, got 31"):
        verify_inclusion(hashes[2][:31], 2, 7, proof, root)
    with pytest.raises(ProofError, match="leaf index must be from 0 to -1"):
        verify_inclusion(hashes[0], 0, 0, [], EMPTY_ROOT)


def test_consistency_errors_say_what_was_expected() -> None:
    hashes = tree(9)
    roots = [merkle_root(hashes[:n]) for n in range(10)]
    proof = consistency_proof(hashes, 5, 9)
    with pytest.raises(ProofError, match=f"needs {len(proof)} hashes, got {len(proof) + 1}"):
        verify_consistency(5, 9, roots[5], roots[9], [*proof, roots[1]])
    with pytest.raises(ProofError, match=f"expected {roots[5].hex()}"):
        verify_consistency(5, 9, roots[5], roots[9], [roots[2], *proof[1:]])
    with pytest.raises(ProofError, match="old size must be from 0 to the new size 5, got 9"):
        verify_consistency(9, 5, roots[9], roots[5], proof)
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(9, 9, roots[9], roots[9], proof)
    with pytest.raises(ProofError, match="equal roots"):
        verify_consistency(9, 9, roots[8], roots[9], [])
    with pytest.raises(ProofError, match="root of the empty tree"):
        verify_consistency(0, 9, roots[1], roots[9], [])
    verify_consistency(0, 9, EMPTY_ROOT, roots[9], [])


def test_proof_generation_refuses_sizes_outside_the_tree() -> None:
    hashes = tree(4)
    with pytest.raises(ProofError, match="tree size must be from 0 to 4"):
        inclusion_proof(hashes, 0, 5)
    with pytest.raises(ProofError, match="leaf index must be from 0 to 3, got 4"):
        inclusion_proof(hashes, 4, 4)
    with pytest.raises(ProofError, match="old tree size must be from 0 to 3, got 4"):
        consistency_proof(hashes, 4, 3)
    assert consistency_proof(hashes, 0, 4) == []
    assert consistency_proof(hashes, 4, 4) == []


def test_large_trees_are_cheap() -> None:
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(150_001)]
    started = time.perf_counter()
    root = merkle_root(hashes)
    for index in (0, 77_777, 150_000):
        verify_inclusion(
            hashes[index], index, len(hashes), inclusion_proof(hashes, index, len(hashes)), root
        )
    old_root = merkle_root(hashes[:100_000])
    verify_consistency(
        100_000, len(hashes), old_root, root, consistency_proof(hashes, 100_000, len(hashes))
    )
    # Generous for a loaded machine: each step is O(n) node hashes (~0.15 s on one core).
    assert time.perf_counter() - started < 10
