"""The 1:N threshold keeps its meaning as the gallery grows."""

from __future__ import annotations

import numpy as np
import pytest

from candor.evaluation.calibration import CalibrationTable, impostor_threshold_points
from candor.workflow.calibration import threshold_for_gallery


def synthetic_table() -> CalibrationTable:
    rng = np.random.default_rng(7)
    people = np.repeat(np.arange(300), 4)
    centres = rng.normal(size=(300, 64))
    vectors = centres[people] + rng.normal(scale=0.8, size=(len(people), 64))
    pairs, points = impostor_threshold_points(vectors, people.astype(str))
    return CalibrationTable("m/1/x", "synthetic", "0" * 64, len(people), pairs, points)


def test_threshold_rises_with_gallery_size() -> None:
    table = synthetic_table()
    small = threshold_for_gallery(table, 10, 0.01)
    large = threshold_for_gallery(table, 10_000, 0.01)
    assert large.value > small.value
    assert large.per_comparison_fmr < small.per_comparison_fmr
    assert "1 in 100" in small.meaning.replace("about 1 in 100", "1 in 100")


def test_beyond_the_calibration_says_it_extrapolates() -> None:
    table = synthetic_table()
    huge = threshold_for_gallery(table, 10**9, 0.01)
    assert huge.extrapolated
    assert huge.value == table.points[-1][1]
    assert "calibration" in huge.meaning


@pytest.mark.parametrize("fpir", [0.0, 1.0, -0.1])
def test_target_fpir_must_be_a_rate(fpir: float) -> None:
    with pytest.raises(ValueError, match="FPIR"):
        threshold_for_gallery(synthetic_table(), 100, fpir)
