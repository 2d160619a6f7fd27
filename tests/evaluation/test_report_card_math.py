"""Report card arithmetic on synthetic data: bootstrap, null rule, 1:1 all pairs, groups."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from candor.evaluation import MatedSearch, fnir_at, threshold_at_fpir
from candor.evaluation.bootstrap import (
    people_weights,
    percentile_interval,
    share_below,
    threshold_at_rate,
    too_few,
    unit_weights,
)
from candor.evaluation.groups import (
    GroupsFileError,
    group_figures,
    parse_groups,
    read_groups_file,
)
from candor.evaluation.report_card import SearchTable, identification_figures
from candor.evaluation.verification import det_points, score_all_pairs


def searches(mated_scores: list[float | None], nonmated_scores: list[float | None]) -> SearchTable:
    """One person per search: mated people first, then non-mated ones."""
    mated = len(mated_scores)
    return SearchTable(
        mated_person=np.arange(mated, dtype=np.int64),
        mate_rank=np.array([0 if s is None else 1 for s in mated_scores], dtype=np.int64),
        mate_score=np.array([-np.inf if s is None else s for s in mated_scores]),
        mate_within_distance=np.zeros(mated, dtype=np.bool_),
        nonmated_person=np.arange(mated, mated + len(nonmated_scores), dtype=np.int64),
        top_score=np.array([-np.inf if s is None else s for s in nonmated_scores]),
        nonmated_within_distance=np.zeros(len(nonmated_scores), dtype=np.bool_),
    )


def test_people_weights_resample_every_person_count() -> None:
    weights = people_weights(50, 200, seed=7)
    assert weights.shape == (200, 50)
    assert (weights.sum(axis=1) == 50).all()
    assert (weights >= 0).all()
    # Some people drawn twice, some not at all: a resample, not the identity.
    assert (weights == 0).any() and (weights >= 2).any()
    assert np.array_equal(weights, people_weights(50, 200, seed=7))
    assert not np.array_equal(weights, people_weights(50, 200, seed=8))


def test_percentile_interval_and_its_refusals() -> None:
    values = np.arange(1001, dtype=np.float64)
    interval, reason = percentile_interval(values, 0.95)
    assert reason is None and interval == pytest.approx((25.0, 975.0))
    holes = values.copy()
    holes[:100] = np.nan
    interval, reason = percentile_interval(holes, 0.95)
    assert interval is None and reason is not None and "100 of 1001" in reason
    few_holes = values.copy()
    few_holes[:10] = np.nan
    assert percentile_interval(few_holes, 0.95)[0] is not None


def test_unit_weight_figures_match_the_protocols_own_functions() -> None:
    rng = np.random.default_rng(3)
    nonmated = [float(x) for x in rng.uniform(0.8, 0.97, 400)] + [None] * 10
    mated = [float(x) for x in rng.uniform(0.85, 1.0, 300)] + [None] * 5
    table = searches(mated, nonmated)
    figures = identification_figures(table, unit_weights(len(mated) + len(nonmated)))
    for target in (0.01, 0.05):
        expected = threshold_at_fpir(nonmated, target)
        assert figures[f"threshold_at_fpir_{target:g}"][0] == expected
        rows = [
            MatedSearch("p", Path("p.jpg"), None if s is None else 1, s, None, True, True)
            for s in mated
        ]
        assert figures[f"fnir_at_fpir_{target:g}"][0] == pytest.approx(fnir_at(rows, expected))
    assert figures["rank1"][0] == pytest.approx(300 / 305)


def test_null_rule_at_two_allowed_false_positives() -> None:
    assert too_few(0.01, 199) and not too_few(0.01, 200)
    assert too_few(0.003, 563) and not too_few(0.003, 667)
    rng = np.random.default_rng(1)
    for count, defined in ((199, False), (200, True)):
        table = searches([0.99] * 20, [float(x) for x in rng.uniform(0, 0.9, count)])
        figures = identification_figures(table, unit_weights(20 + count))
        assert math.isnan(figures["fnir_at_fpir_0.01"][0]) is not defined
        assert math.isnan(figures["threshold_at_fpir_0.01"][0]) is not defined


def test_weighted_threshold_counts_a_person_drawn_twice_twice() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    totals = np.array([200.0])
    # 200 searches at FPIR 0.01 allow 2 false positives; doubled weight on 0.9 uses them up.
    doubled = threshold_at_rate(scores, np.array([[2, 1, 1, 1]]), totals, 0.01)
    single = threshold_at_rate(scores, np.array([[1, 1, 1, 1]]), totals, 0.01)
    assert doubled[0] == np.nextafter(0.8, np.inf)
    assert single[0] == np.nextafter(0.7, np.inf)
    truncated = threshold_at_rate(scores, np.array([[0, 0, 0, 1]]), totals, 0.01, complete=False)
    assert math.isnan(truncated[0])
    shares = share_below(np.array([-np.inf, 0.5, 0.9]), np.array([[1, 1, 2]]), np.array([0.8]))
    assert shares[0] == pytest.approx(0.5)


def brute_force_fnmr(vectors: np.ndarray, persons: np.ndarray, fmr: float) -> tuple[float, float]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = (unit.astype(np.float32) @ unit.astype(np.float32).T).astype(np.float64)
    first, second = np.triu_indices(len(unit), k=1)
    pair_scores = scores[first, second]
    genuine = persons[first] == persons[second]
    impostors = np.sort(pair_scores[~genuine])[::-1]
    allowed = math.floor(fmr * len(impostors) + 1e-9)
    threshold = float(np.nextafter(impostors[allowed], np.inf))
    return threshold, float(np.mean(pair_scores[genuine] < threshold))


@pytest.mark.parametrize("fmr", [1e-2, 1e-3])
def test_all_pairs_fnmr_at_fmr_matches_brute_force(fmr: float) -> None:
    rng = np.random.default_rng(11)
    people = 120
    persons = np.repeat(np.arange(people), rng.integers(1, 6, people))
    centres = rng.normal(size=(people, 16))
    vectors = centres[persons] + 0.6 * rng.normal(size=(len(persons), 16))
    pairs = score_all_pairs(vectors, persons, people, tail_fmr=fmr)
    threshold, fnmr = brute_force_fnmr(vectors, persons, fmr)
    ones = unit_weights(people)
    found = pairs.thresholds_at_fmr(ones, fmr)
    assert found[0] == pytest.approx(threshold, abs=1e-6)
    assert pairs.fnmr_at(ones, found)[0] == pytest.approx(fnmr)
    total = len(persons) * (len(persons) - 1) // 2
    assert pairs.impostor_pairs + pairs.genuine_pairs == total
    assert int(pairs.histogram.sum()) == pairs.impostor_pairs


def test_all_pairs_keeps_only_a_bounded_tail_in_small_blocks() -> None:
    rng = np.random.default_rng(5)
    people = 1500
    persons = np.repeat(np.arange(people), 2)
    # Close enough pairs that many genuine scores fall between the replicates' thresholds.
    vectors = rng.normal(size=(people, 8))[persons] + 0.5 * rng.normal(size=(len(persons), 8))
    pairs = score_all_pairs(vectors, persons, people, tail_fmr=1e-4)
    assert not pairs.tail_complete
    assert len(pairs.tail_scores) < pairs.impostor_pairs / 50
    assert np.all(np.diff(pairs.tail_scores) <= 0)
    threshold, fnmr = brute_force_fnmr(vectors, persons, 1e-4)
    ones = unit_weights(people)
    found = pairs.thresholds_at_fmr(ones, 1e-4)
    assert found[0] == pytest.approx(threshold, abs=1e-6)
    assert pairs.fnmr_at(ones, found)[0] == pytest.approx(fnmr)
    # Replicates re-weight people and still find their thresholds inside the kept tail,
    # the same ones as weighing every kept pair and every genuine pair would give.
    weights = people_weights(people, 50, seed=2)
    replicated = pairs.thresholds_at_fmr(weights, 1e-4)
    assert np.isfinite(replicated).all()
    whole_tail = threshold_at_rate(
        pairs.tail_scores,
        weights[:, pairs.tail_first] * weights[:, pairs.tail_second],
        pairs.impostor_totals(weights),
        1e-4,
        complete=False,
    )
    assert np.array_equal(replicated, whole_tail)
    every_pair = share_below(pairs.genuine_scores, weights[:, pairs.genuine_person], replicated)
    positions = np.searchsorted(pairs.genuine_scores, replicated)
    assert positions.max() - positions.min() > 10
    assert np.allclose(pairs.fnmr_at(weights, replicated), every_pair)
    points = det_points(pairs)
    assert [p.fmr for p in points] == sorted((p.fmr for p in points), reverse=True)
    assert all(a.fnmr <= b.fnmr for a, b in itertools.pairwise(points))
    assert points[0].fnmr == pytest.approx(pairs.fnmr_at(ones, np.array([points[0].threshold]))[0])


def test_groups_file_parsing_reports_file_and_line(tmp_path: Path) -> None:
    good = parse_groups("person\tgroup\n# synthetic\nAna\tA\n\nBo\tB\r\n", source="g.tsv")
    assert good.groups == {"Ana": "A", "Bo": "B"}
    cases = {
        "Ana\tA\nBo B\n": "g.tsv:2: expected person<TAB>group",
        "Ana\tA\tx\n": "g.tsv:1: expected person<TAB>group, found 2 tabs",
        "Ana\tA\n\tB\n": "g.tsv:2: the person is blank",
        "Ana\t \n": "g.tsv:1: the group of 'Ana' is blank",
        "Ana\tA\n# c\nAna\tB\n": "g.tsv:3: 'Ana' is already listed on line 1",
        "# nothing\n": "g.tsv:1: no person<TAB>group lines",
    }
    for text, message in cases.items():
        with pytest.raises(GroupsFileError) as caught:
            parse_groups(text, source="g.tsv")
        assert str(caught.value).startswith(message), str(caught.value)
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("Ana\tA\nJos\xe9\tB\n".encode("latin-1"))
    with pytest.raises(GroupsFileError, match=r"latin\.tsv:2: is not UTF-8"):
        read_groups_file(latin)


def test_group_figures_only_for_groups_with_thirty_searches_of_each_kind() -> None:
    # Group A: 40 mated (10 miss), 40 non-mated (2 false); B: 30 and 30 (15 miss, 6 false);
    # C: 29 mated only 29 non-mated: too few.
    names, groups = [], {}
    mated_missed, nonmated_false, mated_person, nonmated_person = [], [], [], []
    layout = {"A": (40, 10, 40, 2), "B": (30, 15, 30, 6), "C": (29, 0, 29, 0)}
    for group, (mated, missed, nonmated, false) in layout.items():
        for number in range(mated):
            mated_person.append(len(names))
            mated_missed.append(number < missed)
            names.append(f"{group}m{number}")
            groups[names[-1]] = group
        for number in range(nonmated):
            nonmated_person.append(len(names))
            nonmated_false.append(number < false)
            names.append(f"{group}n{number}")
            groups[names[-1]] = group
    groups["Nobody_here"] = "A"
    assignment = parse_groups("".join(f"{p}\t{g}\n" for p, g in groups.items()))
    section = group_figures(
        assignment,
        names,
        np.array(mated_person),
        np.array(mated_missed),
        np.array(nonmated_person),
        np.array(nonmated_false),
        people_weights(len(names), 300, seed=4),
        0.95,
    )
    reported = {group["group"]: group for group in section["groups"]}
    assert set(reported) == {"A", "B"}
    assert reported["A"]["fnir"] == pytest.approx(0.25)
    assert reported["B"]["fpir"] == pytest.approx(0.2)
    assert section["fnir_ratio"] == pytest.approx(0.5 / 0.25)
    assert section["fpir_ratio"] == pytest.approx(0.2 / 0.05)
    low, high = reported["A"]["ci"]["fnir"]
    assert low < 0.25 < high
    assert [group["group"] for group in section["excluded"]] == ["C"]
    assert section["listed_people_not_in_dataset"] == 1
