"""Bootstrap confidence intervals over people, and the weighted figures they need.

A replicate draws the dataset's people with replacement, as many draws as there are
people; a person drawn k times counts k times in every figure of that replicate (each of
their searches, and each of their genuine pairs, weighs k; an impostor pair of two people
weighs the product of their draws), and a person not drawn counts not at all. Figures
are recomputed from the per-search and per-pair results already measured, never from new
extractions or searches, so the gallery stays as it was: an interval says how much a
figure would move with another sample of the people searched and compared, not with
another gallery.

Every function here takes weights as a (replicates, items) array, so the point estimate
is the same function with one replicate of unit weights: the figure and its interval
cannot disagree on a definition.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 20_260_101
# An interval is given only where nearly every replicate defines the figure; otherwise
# the percentiles would describe the replicates that happened to define it.
MIN_DEFINED_SHARE = 0.975
# Most (replicate, item) cells one step holds, so memory stays bounded for 10^5+ items.
CELLS = 4_000_000
# x * n at or above 2 (bar rounding: 0.01 * 200 must count as 2) gives an estimate.
NULL_BELOW = 2 - 1e-9

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def people_weights(people: int, replicates: int, seed: int) -> IntArray:
    """(replicates, people) draw counts: each row is one resample of the people."""
    if people < 1:
        raise ValueError("a bootstrap needs at least one person")
    if replicates < 1:
        raise ValueError("a bootstrap needs at least one replicate")
    generator = np.random.default_rng(seed)
    counts = generator.multinomial(people, np.full(people, 1.0 / people), size=replicates)
    return np.asarray(counts, dtype=np.int64)


def unit_weights(people: int) -> IntArray:
    """The one 'replicate' that is the data as measured."""
    return np.ones((1, people), dtype=np.int64)


def percentile_interval(
    values: npt.ArrayLike, level: float = DEFAULT_LEVEL
) -> tuple[tuple[float, float] | None, str | None]:
    """((low, high), None) from replicate values (NaN: undefined), or (None, reason)."""
    if not 0 < level < 1:
        raise ValueError(f"a confidence level lies between 0 and 1, not {level}")
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return None, "no bootstrap replicates"
    defined = array[np.isfinite(array)]
    if len(defined) < MIN_DEFINED_SHARE * len(array):
        return None, (
            f"the figure is undefined in {len(array) - len(defined)} of {len(array)} "
            "bootstrap replicates"
        )
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return (float(low), float(high)), None


def row_steps(rows: int, columns: int) -> list[slice]:
    """Slices of replicate rows small enough that rows x columns stays bounded."""
    step = max(1, CELLS // max(columns, 1))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def weighted_mean(flags: npt.ArrayLike, weights: IntArray) -> FloatArray:
    """Per replicate, the weighted share of items whose flag is true (NaN: no weight)."""
    values = np.asarray(flags, dtype=np.float64)
    totals = weights.sum(axis=1).astype(np.float64)
    hits = weights @ values
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.where(totals > 0, totals, 1.0), np.nan)


def threshold_at_rate(
    scores_descending: FloatArray,
    weights: npt.NDArray[np.int64] | FloatArray,
    totals: FloatArray,
    rate: float,
    *,
    complete: bool = True,
) -> FloatArray:
    """Per replicate, the smallest threshold T with (weight of scores >= T) / total <= rate.

    scores_descending: the listed scores, highest first (items without a score are left
    out of the list but counted in `totals`). weights: (replicates, listed) weights of the
    listed scores. With m = floor(rate * total) false matches allowed, T is the next float
    above the score at which the running weight first exceeds m, as in
    `threshold_at_fpir`. When the listed weight never exceeds m, T is -1.0 (every cosine)
    if the list is `complete`, else NaN (the list is a truncated upper tail). NaN also
    where rate * total < 2: fewer than two false matches allowed is no estimate.
    """
    replicates = len(totals)
    allowed = np.floor(rate * totals + 1e-9)
    thresholds = np.full(replicates, np.nan)
    if len(scores_descending) == 0:
        if complete:
            thresholds[:] = -1.0
        thresholds[rate * totals < NULL_BELOW] = np.nan
        return thresholds
    above = np.nextafter(scores_descending, np.inf)
    for rows in row_steps(replicates, len(scores_descending)):
        running = np.cumsum(weights[rows], axis=1, dtype=np.float64)
        exceeds = running > allowed[rows, None]
        found = exceeds[:, -1]
        first = np.argmax(exceeds, axis=1)
        chunk = np.where(found, above[first], -1.0 if complete else np.nan)
        thresholds[rows] = chunk
    thresholds[rate * totals < NULL_BELOW] = np.nan
    return thresholds


def share_below(
    scores_ascending: FloatArray,
    weights: npt.NDArray[np.int64] | FloatArray,
    thresholds: FloatArray,
) -> FloatArray:
    """Per replicate r, the weighted share of scores < thresholds[r] (NaN threshold: NaN).

    scores_ascending: every item's score, lowest first (-inf for an item that can never
    reach a threshold, such as a mate that was not returned).
    """
    replicates = len(thresholds)
    shares = np.full(replicates, np.nan)
    if len(scores_ascending) == 0:
        return shares
    defined = np.isfinite(thresholds)
    positions = np.searchsorted(scores_ascending, np.where(defined, thresholds, 0.0), "left")
    for rows in row_steps(replicates, len(scores_ascending)):
        block = np.asarray(weights[rows], dtype=np.float64)
        running = np.concatenate([np.zeros((block.shape[0], 1)), np.cumsum(block, axis=1)], axis=1)
        totals = running[:, -1]
        below = running[np.arange(block.shape[0]), positions[rows]]
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[rows] = np.where(totals > 0, below / np.where(totals > 0, totals, 1.0), np.nan)
    shares[~defined] = np.nan
    return shares


def too_few(rate: float, count: float) -> bool:
    """The null rule: a rate x is not estimated from n trials when x * n < 2."""
    return math.isnan(count) or rate * count < NULL_BELOW
