"""Calibration tables: thresholds at per-comparison false match rates."""

from __future__ import annotations

import numpy as np
import pytest

from candor.evaluation.calibration import (
    CalibrationTable,
    impostor_threshold_points,
    matched_min_sharpness,
    rate_at_score,
    refused_share,
    score_at_rate,
)
from candor.evaluation.verification import verify_point


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


def test_rate_and_score_are_inverse_within_the_table() -> None:
    table = CalibrationTable(
        "m/1/x", "synthetic", "0" * 64, 100, 10**6, ((1e-1, 0.2), (1e-2, 0.4), (1e-3, 0.7))
    )
    for score in (0.25, 0.4, 0.55, 0.69):
        rate, beyond = rate_at_score(table, score)
        assert not beyond
        assert score_at_rate(table, rate)[0] == pytest.approx(score)
    # Beyond the table: its last point, flagged.
    assert rate_at_score(table, 0.9) == (1e-3, True)
    assert score_at_rate(table, 1e-5) == (0.7, True)
    assert score_at_rate(table, 0.5) == (0.2, False)


def test_the_sharpness_limit_refuses_the_same_share() -> None:
    rng = np.random.default_rng(5)
    reference = list(rng.gamma(3.0, 4.0, size=1000))  # dlib's chips
    measured = [value * 7.0 + 1.0 for value in reference]  # another model's, rescaled
    limit = matched_min_sharpness(reference, 4.0, measured)
    assert refused_share(measured, limit) == pytest.approx(refused_share(reference, 4.0))
    assert limit == pytest.approx(4.0 * 7.0 + 1.0, rel=0.05)
    # dlib refuses none: neither does the matched limit.
    assert refused_share(measured, matched_min_sharpness(reference, 0.001, measured)) == 0.0


def test_the_verify_point_counts_photos_without_a_template_as_failures() -> None:
    rng = np.random.default_rng(11)
    people, photos = 200, 3
    centres = rng.normal(size=(people, 32))
    persons = np.repeat(np.arange(people), photos)
    vectors = centres[persons] + rng.normal(scale=0.5, size=(len(persons), 32))
    full = verify_point(vectors, persons, [photos] * people, target_fmr=1e-3)
    assert full is not None
    assert full.mated_pairs == people * 3 and full.mated_pairs_without_template == 0
    assert 0 < full.false_match_rate <= 1e-3
    # The same templates, with one more photo per person that gave none.
    missing = verify_point(vectors, persons, [photos + 1] * people, target_fmr=1e-3)
    assert missing is not None
    assert missing.threshold == full.threshold
    assert missing.mated_pairs == people * 6
    assert missing.false_non_match_rate == pytest.approx(
        (full.false_non_match_rate * people * 3 + people * 3) / (people * 6)
    )
    # Too few impostor pairs to resolve 1e-3: no point.
    assert verify_point(vectors[:30], persons[:30], [photos] * 10, target_fmr=1e-3) is None
