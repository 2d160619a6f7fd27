"""TemplateIndex: exact cosine top-k, identical to brute force, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from candor.faces.registry import ModelId
from candor.index import TemplateIndex

MODEL = ModelId(name="test-model", version="1", weights_sha256="ab" * 32, dimension=8)


def unit_rows(count: int, dimension: int = 8, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, dimension))
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def brute_force(ids: list[int], vectors: np.ndarray, query: np.ndarray) -> list[tuple[int, float]]:
    """Every template's cosine with the query in float64, best first, ties by id."""
    gallery = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    probe = query / np.linalg.norm(query)
    scores = gallery @ probe
    return sorted(zip(ids, scores.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0]))


def assert_matches_brute_force(
    result: list[tuple[int, float]], reference: list[tuple[int, float]], k: int
) -> None:
    """Same list up to float32 rounding: scores agree, and ids agree wherever scores differ."""
    tolerance = 1e-5
    assert len(result) == min(k, len(reference))
    exact = dict(reference)
    for (got_id, got_score), (_, want_score) in zip(result, reference, strict=False):
        assert abs(got_score - want_score) < tolerance
        assert abs(exact[got_id] - got_score) < tolerance
    assert len({template_id for template_id, _ in result}) == len(result)
    scores = [score for _, score in result]
    assert scores == sorted(scores, reverse=True)
    if result:
        # Nothing left out scores clearly better than the worst candidate returned.
        chosen = {template_id for template_id, _ in result}
        floor = min(exact[template_id] for template_id in chosen)
        assert all(score <= floor + tolerance for i, score in reference if i not in chosen)


# Non-zero components keep every vector a direction (zero vectors are refused by add()).
components = st.one_of(st.floats(0.001, 10.0), st.floats(-10.0, -0.001))

gallery_strategy = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.integers(min_value=-(2**40), max_value=2**40), min_size=n, max_size=n, unique=True
        ),
        hnp.arrays(
            np.float64,
            (n, 8),
            elements=components,
        ),
    )
)


@settings(max_examples=200, deadline=None)
@given(
    gallery=gallery_strategy,
    query=hnp.arrays(np.float64, 8, elements=components),
    k=st.integers(min_value=0, max_value=70),
)
def test_search_equals_brute_force(
    gallery: tuple[list[int], np.ndarray], query: np.ndarray, k: int
) -> None:
    ids, vectors = gallery
    index = TemplateIndex(MODEL)
    index.add(ids, vectors)

    result = index.search(query, k)

    assert_matches_brute_force(result, brute_force(ids, vectors, query), k)
    # The partial-sort path (k < n) must pick exactly what the full sort (k = n) orders first.
    assert result == index.search(query, len(ids))[:k]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.sampled_from([0, 1, 2, 3]), min_size=1, max_size=40),
    axis=st.integers(min_value=0, max_value=3),
    k=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_exact_ties_are_broken_by_id(rows: list[int], axis: int, k: int, seed: int) -> None:
    # Basis vectors: every score is exactly 0.0 or 1.0, so ties are real, not rounding.
    vectors = np.eye(8)[rows]
    ids = [int(x) for x in np.random.default_rng(seed).permutation(1000)[: len(rows)]]
    index = TemplateIndex(MODEL)
    index.add(ids, vectors)

    result = index.search(np.eye(8)[axis], k)

    expected = sorted(
        ((i, 1.0 if row == axis else 0.0) for i, row in zip(ids, rows, strict=True)),
        key=lambda pair: (-pair[1], pair[0]),
    )[:k]
    assert result == expected


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=150),
    removals=st.lists(st.integers(min_value=0, max_value=160), max_size=60),
    k=st.integers(min_value=1, max_value=20),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_search_after_removals_equals_brute_force(
    count: int, removals: list[int], k: int, seed: int
) -> None:
    vectors = unit_rows(count, seed=seed % 1000)
    ids = list(range(count))
    index = TemplateIndex(MODEL)
    for template_id in ids:  # one at a time, as enrolment does, through several regrowths
        index.add([template_id], vectors[template_id : template_id + 1])

    removed = index.remove(removals)

    gone = {r for r in removals if r < count}
    assert removed == len(gone)
    assert len(index) == count - len(gone)
    keep = [i for i in ids if i not in gone]
    query = unit_rows(1, seed=seed % 997 + 1)[0]
    result = index.search(query, k)
    assert_matches_brute_force(result, brute_force(keep, vectors[keep], query) if keep else [], k)


def test_scores_are_cosines_of_unnormalised_input() -> None:
    index = TemplateIndex(MODEL)
    base = np.zeros(8)
    base[0] = 1.0
    tilted = np.zeros(8)
    tilted[:2] = (3.0, 4.0)
    index.add([7, 9], np.stack([base * 1.46, tilted * 10]))
    result = index.search(base * 0.2, 2)
    assert [i for i, _ in result] == [7, 9]
    assert result[0][1] == pytest.approx(1.0, abs=1e-6)
    assert result[1][1] == pytest.approx(0.6, abs=1e-6)
    assert all(isinstance(i, int) and isinstance(s, float) for i, s in result)


def test_empty_index_returns_empty_list() -> None:
    index = TemplateIndex(MODEL)
    assert len(index) == 0
    assert index.search(np.ones(8), 5) == []


def test_k_is_capped_and_zero_is_empty() -> None:
    index = TemplateIndex(MODEL)
    index.add([1, 2, 3], unit_rows(3))
    assert len(index.search(np.ones(8), 100)) == 3
    assert index.search(np.ones(8), 0) == []
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.ones(8), -1)


def test_add_rejects_wrong_dimension() -> None:
    index = TemplateIndex(MODEL)
    with pytest.raises(ValueError, match=r"test-model/1/abababababababab.*8-dimensional"):
        index.add([1], np.ones((1, 128)))
    with pytest.raises(ValueError, match="do not fit"):
        index.add([1], np.ones(8))
    assert len(index) == 0


def test_add_rejects_count_mismatch() -> None:
    with pytest.raises(ValueError, match="2 ids but 3 vectors"):
        TemplateIndex(MODEL).add([1, 2], unit_rows(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_add_rejects_non_finite_values(bad: float) -> None:
    vectors = unit_rows(3)
    vectors[1, 4] = bad
    index = TemplateIndex(MODEL)
    with pytest.raises(ValueError, match="vector 1 has NaN or infinite values"):
        index.add([1, 2, 3], vectors)
    assert len(index) == 0


def test_add_rejects_zero_vector() -> None:
    vectors = unit_rows(2)
    vectors[1] = 0
    with pytest.raises(ValueError, match="vector 1 is all zeros"):
        TemplateIndex(MODEL).add([1, 2], vectors)


def test_add_rejects_duplicate_ids() -> None:
    index = TemplateIndex(MODEL)
    with pytest.raises(ValueError, match="id 5 appears more than once"):
        index.add([5, 6, 5], unit_rows(3))
    index.add([5, 6], unit_rows(2))
    with pytest.raises(ValueError, match="id 6 is already in the index"):
        index.add([7, 6], unit_rows(2))
    assert len(index) == 2
    assert 7 not in index


@pytest.mark.parametrize("bad", [1.5, "3", True, None, 2**63])
def test_add_rejects_non_integer_ids(bad: object) -> None:
    with pytest.raises(ValueError, match="id"):
        TemplateIndex(MODEL).add([bad], unit_rows(1))  # type: ignore[list-item]


def test_numpy_integer_ids_are_accepted() -> None:
    index = TemplateIndex(MODEL)
    index.add(np.array([3, 4], dtype=np.int64), unit_rows(2))  # type: ignore[arg-type]
    assert sorted(i for i, _ in index.search(np.ones(8), 2)) == [3, 4]
    assert all(type(i) is int for i, _ in index.search(np.ones(8), 2))


def test_search_rejects_bad_queries() -> None:
    index = TemplateIndex(MODEL)
    index.add([1], unit_rows(1))
    with pytest.raises(ValueError, match="not one vector"):
        index.search(np.ones((1, 8)), 1)
    with pytest.raises(ValueError, match="8-dimensional"):
        index.search(np.ones(7), 1)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(8, np.nan), 1)
    with pytest.raises(ValueError, match="all zeros"):
        index.search(np.zeros(8), 1)


def test_remove_counts_and_ignores_unknown_ids() -> None:
    index = TemplateIndex(MODEL)
    index.add([1, 2, 3, 4], unit_rows(4))
    assert index.remove([2, 2, 99]) == 1
    assert index.remove([]) == 0
    assert len(index) == 3
    assert 2 not in index
    assert {i for i, _ in index.search(np.ones(8), 10)} == {1, 3, 4}
    assert index.remove(iter([1, 3, 4])) == 3
    assert index.search(np.ones(8), 10) == []


def test_removed_id_can_be_added_again() -> None:
    index = TemplateIndex(MODEL)
    vectors = unit_rows(2)
    index.add([1, 2], vectors)
    index.remove([1])
    index.add([1], vectors[1:2])
    assert sorted(i for i, _ in index.search(vectors[1], 2)) == [1, 2]


def test_removed_vectors_do_not_remain_in_the_index_arrays() -> None:
    index = TemplateIndex(MODEL)
    vectors = unit_rows(100, seed=5)
    for template_id in range(100):
        index.add([template_id], vectors[template_id : template_id + 1])
    secret = [10, 50, 99]
    stored = {i: vectors[i].astype(np.float32) for i in secret}

    index.remove(secret)

    memory = index._vectors  # the one place the index keeps vectors
    for vector in stored.values():
        assert not np.isclose(memory, vector, atol=1e-6).all(axis=1).any()
    assert not memory[len(index) :].any()


def test_growth_zeroes_the_arrays_it_lets_go() -> None:
    index = TemplateIndex(MODEL)
    index.add(list(range(64)), unit_rows(64))
    old = index._vectors
    index.add([64], unit_rows(1, seed=1))
    assert index._vectors is not old
    assert not old.any()


def test_one_by_one_growth_is_amortised() -> None:
    index = TemplateIndex(MODEL)
    vectors = unit_rows(1000)
    capacities = set()
    for template_id in range(1000):
        index.add([template_id], vectors[template_id : template_id + 1])
        capacities.add(index._vectors.shape[0])
    # Doubling: a handful of reallocations, not one per template.
    assert sorted(capacities) == [64, 128, 256, 512, 1024]


def test_repr_names_model_and_size_only() -> None:
    index = TemplateIndex(MODEL)
    index.add([1], unit_rows(1))
    assert repr(index) == "TemplateIndex(model='test-model/1/abababababababab', templates=1)"
    assert index.model is MODEL
    assert index.ids.tolist() == [1]


def test_dimension_comes_from_the_model() -> None:
    model = ModelId(name="arcface", version="2", weights_sha256="cd" * 32, dimension=512)
    index = TemplateIndex(model)
    index.add([1], np.ones((1, 512)))
    [(template_id, score)] = index.search(np.ones(512), 1)
    assert template_id == 1
    assert score == pytest.approx(1.0, abs=1e-6)


def test_integer_and_float32_inputs_are_normalised() -> None:
    index = TemplateIndex(MODEL)
    index.add([1], np.array([[3, 4, 0, 0, 0, 0, 0, 0]], dtype=np.int32))
    index.add([2], np.array([[0, 0, 5, 0, 0, 0, 0, 0]], dtype=np.float32))
    [(best, score)] = index.search(np.array([0.6, 0.8, 0, 0, 0, 0, 0, 0], dtype=np.float32), 1)
    assert best == 1
    assert score == pytest.approx(1.0, abs=1e-6)


def test_add_rejects_vectors_too_large_to_normalise() -> None:
    vectors = unit_rows(2)
    vectors[0] *= 1e200
    with pytest.raises(ValueError, match="vector 0 is too large"):
        TemplateIndex(MODEL).add([1, 2], vectors)


def test_add_rejects_non_numeric_vectors() -> None:
    with pytest.raises(ValueError, match="real numbers"):
        TemplateIndex(MODEL).add([1], np.full((1, 8), 1 + 1j))


def test_remove_with_a_bad_id_removes_nothing() -> None:
    index = TemplateIndex(MODEL)
    index.add([1, 2], unit_rows(2))
    with pytest.raises(ValueError, match="integer"):
        index.remove([1, "2"])  # type: ignore[list-item]
    assert len(index) == 2
