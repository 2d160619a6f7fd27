"""Cohort normalisation, the gallery's own cohort sample, and fusion of a subject's photos."""

from __future__ import annotations

import numpy as np
import pytest

from candor.index.cohort import (
    CohortNormaliser,
    fuse_subject_scores,
    gallery_cohort_ids,
    score_name,
    unit_rows,
)


def test_the_offset_is_the_mean_of_the_probes_top_k_cohort_cosines() -> None:
    rng = np.random.default_rng(3)
    cohort = rng.normal(size=(200, 16))
    probes = rng.normal(size=(5, 16))
    normaliser = CohortNormaliser(cohort, 7)
    expected = [np.sort(unit_rows(cohort) @ unit_rows(probe)[0])[-7:].mean() for probe in probes]
    np.testing.assert_allclose(normaliser.offsets(probes), expected, rtol=1e-5)
    assert normaliser.offset(probes[2]) == pytest.approx(expected[2], rel=1e-5)


def test_a_cohort_smaller_than_k_is_refused() -> None:
    with pytest.raises(ValueError, match="smaller than k"):
        CohortNormaliser(np.ones((3, 4)), 5)
    with pytest.raises(ValueError, match="k must be"):
        CohortNormaliser(np.ones((3, 4)), 0)


def test_the_gallery_cohort_is_fixed_stable_and_sized() -> None:
    ids = list(range(1, 5001))
    cohort = gallery_cohort_ids(ids, 1500)
    assert len(cohort) == 1500 == len(set(cohort))
    assert cohort == sorted(cohort) == gallery_cohort_ids(list(reversed(ids)), 1500)
    grown = gallery_cohort_ids([*ids, 5001], 1500)
    assert len(set(grown) ^ set(cohort)) <= 2  # at most one member swapped
    shrunk = gallery_cohort_ids([i for i in ids if i != cohort[0]], 1500)
    assert cohort[0] not in shrunk
    with pytest.raises(ValueError, match="gallery has 10"):
        gallery_cohort_ids(list(range(10)), 1500)


def test_fusion_keeps_one_score_per_subject_best_first() -> None:
    scores = np.array([0.5, 0.9, 0.7, 0.2, 0.8])
    subjects = np.array([1, 1, 2, 3, 2])
    ids, best = fuse_subject_scores(scores, subjects, "max")
    assert ids.tolist() == [1, 2, 3]
    np.testing.assert_allclose(best, [0.9, 0.8, 0.2])
    ids, mean = fuse_subject_scores(scores, subjects, "mean-top2")
    # subject 2: (0.8 + 0.7) / 2 beats subject 1: (0.9 + 0.5) / 2; subject 3 keeps 0.2.
    assert ids.tolist() == [2, 1, 3]
    np.testing.assert_allclose(mean, [0.75, 0.7, 0.2])
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse_subject_scores(scores, subjects, "min")
    empty_ids, empty_scores = fuse_subject_scores(np.zeros(0), np.zeros(0, dtype=np.int64), "max")
    assert empty_ids.size == empty_scores.size == 0


def test_score_names_say_what_a_threshold_applies_to() -> None:
    assert score_name(None) == "cosine"
    assert score_name(30) == "cosine-cohort-mean-30/1500"
