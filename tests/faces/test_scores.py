from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from candor.faces import (
    ModelMismatchError,
    Template,
    cosine_score,
    cosine_scores,
    euclidean_distance,
)
from candor.faces.scores import cosine_from_unit_distance, raw_distance_from_cosine
from tests.faces.helpers import FAKE_MODEL, OTHER_MODEL

finite = st.floats(min_value=-10, max_value=10, allow_nan=False, width=32)
vectors = arrays(np.float32, 4, elements=finite).filter(lambda v: np.linalg.norm(v) > 1e-2)


def template(values: list[float], model=FAKE_MODEL) -> Template:
    return Template(np.array(values, dtype=np.float32), model)


def test_cosine_of_known_vectors() -> None:
    assert cosine_score(template([1, 0, 0, 0]), template([0, 3, 0, 0])) == pytest.approx(0.0)
    assert cosine_score(template([1, 1, 0, 0]), template([2, 2, 0, 0])) == pytest.approx(1.0)
    assert cosine_score(template([1, 0, 0, 0]), template([-5, 0, 0, 0])) == pytest.approx(-1.0)
    assert cosine_score(template([1, 1, 0, 0]), template([1, 0, 0, 0])) == pytest.approx(
        1 / math.sqrt(2)
    )


def test_templates_of_different_models_are_never_compared() -> None:
    a = template([1, 0, 0, 0])
    b = template([1, 0, 0, 0], OTHER_MODEL)
    with pytest.raises(ModelMismatchError, match=r"fake/1/abab.*fake/2/cdcd"):
        cosine_score(a, b)
    with pytest.raises(ModelMismatchError):
        euclidean_distance(a, b)


def test_template_shape_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="shape"):
        Template(np.zeros(5, dtype=np.float32), FAKE_MODEL)


def test_zero_template_cannot_be_normalised() -> None:
    with pytest.raises(ValueError, match="zero"):
        template([0, 0, 0, 0]).normalised()


@given(vectors, vectors)
def test_raw_distance_follows_from_norms_and_cosine(a: np.ndarray, b: np.ndarray) -> None:
    ta, tb = Template(a, FAKE_MODEL), Template(b, FAKE_MODEL)
    n1, n2 = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    expected = raw_distance_from_cosine(cosine_score(ta, tb), n1, n2)
    # Squared: near d = 0 the square root magnifies float32 rounding in the cosine; the
    # squared distance itself carries float32 rounding of n1^2 + n2^2.
    tolerance = 1e-5 * n1 * n2 + 1e-6 * (n1**2 + n2**2) + 1e-6
    assert euclidean_distance(ta, tb) ** 2 == pytest.approx(expected**2, abs=tolerance)


@given(vectors, vectors)
def test_unit_vectors_distance_squared_is_two_minus_two_cosine(
    a: np.ndarray, b: np.ndarray
) -> None:
    ua = Template(Template(a, FAKE_MODEL).normalised(), FAKE_MODEL)
    ub = Template(Template(b, FAKE_MODEL).normalised(), FAKE_MODEL)
    distance = euclidean_distance(ua, ub)
    assert cosine_from_unit_distance(distance) == pytest.approx(cosine_score(ua, ub), abs=1e-5)


def test_dlib_distance_of_0_6_at_norm_1_46_is_a_cosine_near_0_92() -> None:
    # The figure docs/scores.md quotes: 0.36 = 2 * 1.46^2 * (1 - cos).
    cosine = 1 - 0.6**2 / (2 * 1.46**2)
    assert raw_distance_from_cosine(cosine, 1.46, 1.46) == pytest.approx(0.6)
    assert cosine == pytest.approx(0.9156, abs=1e-4)


def test_cosine_scores_against_a_gallery() -> None:
    gallery = np.array([[2, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [-1, -1, 0, 0]], np.float32)
    scores = cosine_scores(np.array([3, 0, 0, 0], np.float32), gallery)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.0, -1 / math.sqrt(2)], atol=1e-6)


def test_cosine_scores_rejects_bad_shapes_and_zero_queries() -> None:
    with pytest.raises(ValueError, match=r"shape|expected"):
        cosine_scores(np.zeros(4), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="zero"):
        cosine_scores(np.zeros(4), np.ones((2, 4)))
