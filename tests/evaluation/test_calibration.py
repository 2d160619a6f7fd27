"""Calibration tables: thresholds at per-comparison false match rates."""

from __future__ import annotations

import numpy as np

from candor.evaluation.calibration import impostor_threshold_points


def test_points_count_only_pairs_of_different_people() -> None:
    labels = np.array(["a", "a", "b"])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    pairs, _ = impostor_threshold_points(vectors, labels)
    assert pairs == 2


def test_tabulated_thresholds_give_their_rates() -> None:
    rng = np.random.default_rng(3)
    labels = np.arange(2000).astype(str)
    vectors = rng.normal(size=(2000, 16))
    pairs, points = impostor_threshold_points(vectors, labels)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = (unit @ unit.T)[np.triu_indices(2000, k=1)]
    assert pairs == len(scores)
    # Scores at the very threshold may round either way between float32 products.
    slack = 10 / pairs
    for rate, threshold in points:
        assert np.mean(scores >= threshold) <= rate + slack
        assert np.mean(scores >= threshold - 1e-3) > rate * 0.5
