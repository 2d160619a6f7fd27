from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from candor.evaluation import MatedSearch, fnir_at, fpir_at, threshold_at_fpir


def mated(score: float | None, rank: int | None = 1) -> MatedSearch:
    return MatedSearch("p", Path("p.jpg"), rank, score, None, True, True)


def test_threshold_is_just_above_the_first_disallowed_score() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    # 10 searches: FPIR 0.1 allows one false positive, so T sits just above 0.8.
    threshold = threshold_at_fpir(scores, 0.1)
    assert threshold == float(np.nextafter(0.8, math.inf))
    assert fpir_at(scores, threshold) == pytest.approx(0.1)
    assert fpir_at(scores, 0.8) == pytest.approx(0.2)
    # FPIR 0.01 allows none: just above the highest score.
    assert threshold_at_fpir(scores, 0.01) == float(np.nextafter(0.9, math.inf))
    assert fpir_at(scores, threshold_at_fpir(scores, 0.01)) == 0.0


def test_searches_without_candidates_count_in_the_denominator_only() -> None:
    scores: list[float | None] = [0.9, None, None, None]
    assert fpir_at(scores, 0.5) == pytest.approx(0.25)
    # One false positive in four is allowed at FPIR 0.25: every score passes.
    assert threshold_at_fpir(scores, 0.25) == -1.0
    assert threshold_at_fpir(scores, 0.2) == float(np.nextafter(0.9, math.inf))


def test_threshold_rejects_impossible_targets() -> None:
    with pytest.raises(ValueError):
        threshold_at_fpir([0.5], 1.5)


def test_fnir_counts_mates_not_returned_at_or_above_threshold() -> None:
    searches = [mated(0.95), mated(0.9, rank=3), mated(0.5), mated(None, rank=None)]
    assert fnir_at(searches, 0.9) == pytest.approx(0.5)  # rank 3 above T is found
    assert fnir_at(searches, 0.95) == pytest.approx(0.75)
    assert fnir_at(searches, -1.0) == pytest.approx(0.25)
    assert fnir_at([], 0.5) == 0.0
