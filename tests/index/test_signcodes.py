"""Sign codes: Hamming distance tracks the angle, and the candidates keep every tie."""

from __future__ import annotations

import numpy as np
import pytest

from candor.index.signcodes import SignCoder, candidate_rows, candidates_for, hamming_distances


def units(count: int, dimension: int = 64, seed: int = 1) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, dimension))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def test_codes_are_fixed_by_seed_and_estimate_the_angle() -> None:
    vectors = units(400)
    coder = SignCoder(64)
    codes = coder.encode(vectors)
    assert codes.shape == (400, 64) and codes.dtype == np.uint8
    assert np.array_equal(codes, SignCoder(64).encode(vectors))  # same seed, same codes
    assert not np.array_equal(codes, SignCoder(64, seed=2).encode(vectors))
    assert hamming(coder.encode(vectors[:1])[0], coder.encode(-vectors[:1])[0]) == 512
    # Each bit differs with probability angle / pi: the estimate is within a few bits.
    errors = []
    for i in range(0, 400, 2):
        angle = np.arccos(np.clip(vectors[i] @ vectors[i + 1], -1, 1))
        errors.append(hamming(codes[i], codes[i + 1]) - 512 * angle / np.pi)
    assert abs(float(np.mean(errors))) < 3
    assert float(np.std(errors)) < 20  # a binomial over 512 bits has sd <= 11.3


def test_a_centre_is_subtracted_before_the_signs_are_taken() -> None:
    vectors = units(50)
    centre = vectors.mean(axis=0)
    assert np.array_equal(
        SignCoder(64, centre).encode(vectors), SignCoder(64).encode(vectors - centre)
    )
    assert not np.array_equal(SignCoder(64, centre).encode(vectors), SignCoder(64).encode(vectors))


def test_candidate_rows_hold_the_nearest_codes_and_every_tie() -> None:
    coder = SignCoder(64)
    vectors = units(20_000, seed=4)
    codes = coder.encode(vectors)
    probe = coder.encode(vectors[:1])[0]
    rows = candidate_rows(codes, probe, 500)
    assert len(rows) >= 500 and 0 in rows
    distances = np.array([hamming(code, probe) for code in codes])
    radius = distances[rows].max()
    assert set(rows.tolist()) == set(np.flatnonzero(distances <= radius).tolist())
    assert np.array_equal(candidate_rows(codes[:300], probe, 500), np.arange(300))
    with pytest.raises(ValueError, match="query code"):
        candidate_rows(codes, probe[:8], 10)


def test_candidates_grow_with_the_gallery() -> None:
    assert candidates_for(1_000, 20) == 2_000
    assert candidates_for(1_000_000, 20) == 8_000
    assert 20_000 <= candidates_for(10_000_000, 20) <= 20_200
    assert candidates_for(1_000_000, 20, scale=2.0) == 16_000
    assert candidates_for(1_000, 1_000) == 4_000


def test_distances_can_be_written_into_a_reused_buffer() -> None:
    coder = SignCoder(64)
    codes = coder.encode(units(100))
    buffer = np.full(150, -1, dtype=np.int32)
    written = hamming_distances(codes, codes[3], buffer)
    assert np.array_equal(written, hamming_distances(codes, codes[3]))
    assert written[3] == 0 and np.all(buffer[100:] == -1)
    with pytest.raises(ValueError, match="at least 100"):
        hamming_distances(codes, codes[3], np.empty(99, dtype=np.int32))
