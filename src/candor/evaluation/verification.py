"""1:1 figures over every pair of usable templates in a labelled folder.

Every pair of two templates is scored (cosine of the L2-normalised templates): a genuine
pair when both are of the same person, an impostor pair otherwise. Definitions, with T a
cosine threshold:
- FMR(T): share of impostor pairs scoring >= T; FNMR(T): share of genuine pairs < T.
- Threshold at FMR x: the smallest T with FMR(T) <= x (just above the
  (floor(x*N)+1)-th highest of the N impostor scores, as the threshold at FPIR is).
- FNMR at FMR x: FNMR at that threshold; null when x * N < 2.

Pairs are scored in blocks of rows so memory stays at a few blocks' worth for tens of
thousands of templates. Kept: every genuine score with its person; the upper tail of the
impostor scores, with both people of each pair, long enough for the smallest reported
FMR many times over (so a bootstrap replicate that re-weights people still finds its
threshold inside it); and a histogram of all impostor scores at 2/2**17 cosine
resolution, which places the DET curve's points below the tail.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from candor.evaluation.bootstrap import (
    CELLS,
    NULL_BELOW,
    FloatArray,
    IntArray,
    threshold_at_rate,
    too_few,
    unit_weights,
)

HISTOGRAM_BINS = 2**17
# The kept tail holds this many times the impostor pairs the tail rate allows.
TAIL_MARGIN = 10
MIN_TAIL = 10_000
_BLOCK = 1024
# DET points: 8 per decade from FMR 10^-0.125 down to 1e-6 (and the null rule).
_DET_POINTS_PER_DECADE = 8
_DET_DECADES = 6


@dataclass(frozen=True)
class AllPairs:
    """What the figures need of every pair's score; persons index the people list."""

    templates_per_person: IntArray
    genuine_scores: FloatArray  # ascending
    genuine_person: IntArray
    impostor_pairs: int
    tail_scores: FloatArray  # descending: the highest impostor scores
    tail_first: IntArray
    tail_second: IntArray
    tail_complete: bool  # the tail holds every impostor pair
    histogram: IntArray  # impostor scores per bin over [-1, 1]

    @property
    def genuine_pairs(self) -> int:
        return len(self.genuine_scores)

    def impostor_totals(self, weights: IntArray) -> FloatArray:
        """Per replicate, the impostor pairs' total weight: sum over i < j of w_i t_i w_j t_j."""
        per_person = weights * self.templates_per_person[None, :]
        total = per_person.sum(axis=1).astype(np.float64)
        squares = (per_person.astype(np.float64) ** 2).sum(axis=1)
        totals: FloatArray = (total * total - squares) / 2
        return totals

    def thresholds_at_fmr(self, weights: IntArray, fmr: float) -> FloatArray:
        """Per replicate, the threshold at FMR `fmr` (NaN: null rule, or beyond the tail)."""
        totals = self.impostor_totals(weights)
        thresholds = np.full(len(weights), np.nan)
        pending = np.flatnonzero(fmr * totals >= NULL_BELOW)
        # A replicate's threshold lies near the floor(fmr * total)-th pair of the tail (pair
        # weights average about 1), so only a prefix of the tail is weighed, lengthened for
        # the replicates it does not resolve: weighing the whole tail for every replicate
        # would cost replicates x tail cells.
        length = min(len(self.tail_scores), 2 * math.floor(fmr * totals.max(initial=0)) + 1024)
        while len(pending):
            whole = length == len(self.tail_scores)
            first, second = self.tail_first[:length], self.tail_second[:length]
            for rows in np.array_split(pending, max(1, len(pending) * length // CELLS)):
                block = weights[rows]
                thresholds[rows] = threshold_at_rate(
                    self.tail_scores[:length],
                    block[:, first] * block[:, second],
                    totals[rows],
                    fmr,
                    complete=self.tail_complete and whole,
                )
            if whole:
                break
            pending = pending[np.isnan(thresholds[pending])]
            length = min(len(self.tail_scores), 4 * length)
        return thresholds

    def fnmr_at(self, weights: IntArray, thresholds: FloatArray) -> FloatArray:
        """Per replicate, the weighted share of genuine pairs scoring under its threshold."""
        people = len(self.templates_per_person)
        totals = weights @ np.bincount(self.genuine_person, minlength=people)
        shares = np.full(len(weights), np.nan)
        defined = np.flatnonzero(np.isfinite(thresholds) & (totals > 0))
        if len(defined) == 0:
            return shares
        positions = np.searchsorted(self.genuine_scores, thresholds[defined], "left")
        # Below the lowest replicate's position, per-person counts do; only the window of
        # genuine pairs between the replicates' thresholds is weighed pair by pair.
        low, high = int(positions.min()), int(positions.max())
        below = (
            weights[defined] @ np.bincount(self.genuine_person[:low], minlength=people)
        ).astype(np.float64)
        window = self.genuine_person[low:high]
        for part in np.array_split(
            np.arange(len(defined)), max(1, len(defined) * len(window) // CELLS)
        ):
            block = weights[defined[part]][:, window].astype(np.float64)
            running = np.concatenate([np.zeros((len(part), 1)), np.cumsum(block, axis=1)], axis=1)
            below[part] += running[np.arange(len(part)), positions[part] - low]
        shares[defined] = below / totals[defined]
        return shares


def score_all_pairs(
    vectors: npt.NDArray[np.floating],
    persons: Sequence[int] | IntArray,
    people: int,
    *,
    tail_fmr: float = 1e-3,
    progress: Callable[[int, int], None] | None = None,
) -> AllPairs:
    """Score every pair of `vectors` (one row per template; persons[i] is row i's person).

    tail_fmr: the largest FMR whose threshold a bootstrap must find in the kept tail.
    progress(done, total): rows scored so far.
    """
    unit = np.asarray(vectors, dtype=np.float32)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    labels = np.asarray(persons, dtype=np.int64)
    count = len(unit)
    templates = np.bincount(labels, minlength=people).astype(np.int64)
    impostor_total = int((int(templates.sum()) ** 2 - int((templates**2).sum())) // 2)
    keep = min(impostor_total, max(MIN_TAIL, math.ceil(TAIL_MARGIN * tail_fmr * impostor_total)))
    histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    genuine_scores: list[npt.NDArray[np.float32]] = []
    genuine_person: list[IntArray] = []
    tail_scores: list[npt.NDArray[np.float32]] = [np.empty(0, dtype=np.float32)]
    tail_first: list[IntArray] = [np.empty(0, dtype=np.int64)]
    tail_second: list[IntArray] = [np.empty(0, dtype=np.int64)]
    kept = 0
    cutoff = -np.inf
    for start in range(0, count, _BLOCK):
        stop = min(start + _BLOCK, count)
        block = unit[start:stop] @ unit[start:].T
        row_ids = np.arange(start, stop)[:, None]
        col_ids = np.arange(start, count)[None, :]
        later = col_ids > row_ids
        same = labels[start:stop, None] == labels[None, start:]
        genuine = later & same
        rows, cols = np.nonzero(genuine)
        genuine_scores.append(block[rows, cols])
        genuine_person.append(labels[start + rows])
        impostor = later & ~same
        scores = block[impostor]
        bins = ((scores.astype(np.float64) + 1.0) * (HISTOGRAM_BINS / 2)).astype(np.int64)
        histogram += np.bincount(np.clip(bins, 0, HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS)
        # Only scores that could still be among the `keep` highest are worth their indices.
        floor = cutoff
        if len(scores) > keep:
            floor = max(floor, float(np.partition(scores, len(scores) - keep)[len(scores) - keep]))
        rows, cols = np.nonzero(impostor & (block >= floor))
        tail_scores.append(block[rows, cols])
        tail_first.append(labels[start + rows])
        tail_second.append(labels[start + cols])
        kept += len(rows)
        if kept > 2 * keep:
            merged = np.concatenate(tail_scores)
            order = np.argpartition(merged, len(merged) - keep)[len(merged) - keep :]
            tail_scores = [merged[order]]
            tail_first = [np.concatenate(tail_first)[order]]
            tail_second = [np.concatenate(tail_second)[order]]
            kept = keep
            cutoff = float(tail_scores[0].min())
        if progress is not None:
            progress(stop, count)
    scores_all = np.concatenate(tail_scores).astype(np.float64)
    order = np.argsort(-scores_all, kind="stable")[:keep]
    genuine_all = np.concatenate(genuine_scores).astype(np.float64)
    genuine_order = np.argsort(genuine_all, kind="stable")
    return AllPairs(
        templates_per_person=templates,
        genuine_scores=genuine_all[genuine_order],
        genuine_person=np.concatenate(genuine_person)[genuine_order],
        impostor_pairs=impostor_total,
        tail_scores=scores_all[order],
        tail_first=np.concatenate(tail_first)[order],
        tail_second=np.concatenate(tail_second)[order],
        tail_complete=keep == impostor_total,
        histogram=histogram,
    )


def threshold_from_histogram(pairs: AllPairs, fmr: float) -> float:
    """The threshold at FMR `fmr` to the histogram's resolution (for DET points)."""
    allowed = math.floor(fmr * pairs.impostor_pairs + 1e-9)
    from_top = np.cumsum(pairs.histogram[::-1])
    exceeding = np.nonzero(from_top > allowed)[0]
    if len(exceeding) == 0:
        return -1.0
    top_bin = HISTOGRAM_BINS - 1 - int(exceeding[0])
    return -1.0 + (top_bin + 1) * (2.0 / HISTOGRAM_BINS)


@dataclass(frozen=True)
class DetPoint:
    """One point of the DET (and ROC) curve."""

    fmr: float
    threshold: float
    fnmr: float


def det_points(pairs: AllPairs) -> list[DetPoint]:
    """(FMR, threshold, FNMR) at log-spaced FMRs down to what the impostor pairs resolve."""
    if pairs.genuine_pairs == 0:
        return []
    ones = unit_weights(len(pairs.templates_per_person))
    points = []
    for step in range(1, _DET_POINTS_PER_DECADE * _DET_DECADES + 1):
        fmr = 10 ** (-step / _DET_POINTS_PER_DECADE)
        if too_few(fmr, pairs.impostor_pairs):
            break
        threshold = float(pairs.thresholds_at_fmr(ones, fmr)[0])
        if math.isnan(threshold):
            threshold = threshold_from_histogram(pairs, fmr)
        fnmr = float(pairs.fnmr_at(ones, np.array([threshold]))[0])
        points.append(DetPoint(fmr, threshold, fnmr))
    return points


@dataclass(frozen=True)
class VerifyPoint:
    """The 1:1 operating point at a target FMR, as `candor calibrate` stores it per model.

    threshold: the smallest cosine at which at most `target_fmr` of impostor pairs pass.
    false_match_rate: the share of impostor pairs at or above it (at most the target).
    false_non_match_rate: the share of mated pairs under it, where a mated pair with a
        photo that gave no template counts as a non-match (it cannot pass a verify), as
        bench/verification_lfw.py counted the 0.926 threshold's 7.2%.
    mated_pairs: every pair of two photos of one person in the folder, usable or not.
    """

    target_fmr: float
    threshold: float
    false_match_rate: float
    false_non_match_rate: float
    impostor_pairs: int
    mated_pairs: int
    mated_pairs_without_template: int


def verify_point(
    vectors: npt.NDArray[np.floating],
    persons: Sequence[int] | IntArray,
    photos_per_person: Sequence[int],
    *,
    target_fmr: float = 1e-3,
) -> VerifyPoint | None:
    """The operating point at `target_fmr` over every pair of `vectors` (row i of person
    persons[i]; photos_per_person counts each person's photos, with or without template).

    None when the pairs cannot resolve it: no mated pair, or fewer than two impostor pairs
    allowed at the target (the null rule).
    """
    people = len(photos_per_person)
    pairs = score_all_pairs(vectors, persons, people, tail_fmr=target_fmr)
    mated = sum(count * (count - 1) // 2 for count in photos_per_person)
    if pairs.genuine_pairs == 0 or too_few(target_fmr, pairs.impostor_pairs):
        return None
    threshold = float(pairs.thresholds_at_fmr(unit_weights(people), target_fmr)[0])
    if math.isnan(threshold):
        return None
    passing = int(np.count_nonzero(pairs.tail_scores >= threshold))
    if passing == 0:
        return None  # ties at the top: no rate above zero to state
    below = int(np.searchsorted(pairs.genuine_scores, threshold, "left"))
    without = mated - pairs.genuine_pairs
    return VerifyPoint(
        target_fmr=target_fmr,
        threshold=threshold,
        false_match_rate=passing / pairs.impostor_pairs,
        false_non_match_rate=(below + without) / mated,
        impostor_pairs=pairs.impostor_pairs,
        mated_pairs=mated,
        mated_pairs_without_template=without,
    )
