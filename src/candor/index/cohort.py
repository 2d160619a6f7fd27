"""Open-set score normalisation against a cohort, and fusion of a subject's photos.

dlib's cosines crowd near 1, and how high a stranger scores depends on the probe: a probe
of an ordinary-looking face meets many near-lookalikes in any large gallery, an unusual
one few. A fixed cosine threshold therefore lets through many strangers for some probes
and few for others. `CohortNormaliser` judges a probe's scores against how it scores on
a cohort of faces of other people: the normalised score is the cosine minus the mean of
the probe's k highest cohort cosines (an adaptive, probe-side normalisation; measured
against Z-, T- and S-norm and cohort centring in bench/results/recipes_lfw.json). It
moves all of one probe's scores by the same amount, so it never reorders candidates: it
changes which searches return candidates above the threshold, not who ranks first.

The cohort in an evaluation comes from people who are not evaluated; in a deployment it
is a sample of the gallery itself (see `gallery_cohort_ids`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]

# A cohort is exactly this many templates, in an evaluation and in a deployment alike:
# the mean of a probe's top k cohort scores depends on the cohort's size (top 30 of 1,500
# is the top 2 %), so thresholds calibrated with one size mean something else with
# another. A gallery smaller than this is not normalised at all (its scores stay cosines,
# judged against the cosine calibration). One half of lfw-dev's gallery has about 1,600.
COHORT_SIZE = 1500


def score_name(cohort_k: int | None) -> str:
    """The score a threshold applies to: "cosine", or e.g. "cosine-cohort-mean-30/1500"."""
    return "cosine" if cohort_k is None else f"cosine-cohort-mean-{cohort_k}/{COHORT_SIZE}"


def unit_rows(vectors: npt.ArrayLike) -> FloatMatrix:
    """Each row scaled to length 1 (float32); a zero row stays zero."""
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0.0, 1.0, norms)).astype(np.float32)


class CohortNormaliser:
    """Normalised score = cosine - mean of the probe's `k` highest cosines on the cohort."""

    def __init__(self, cohort: npt.ArrayLike, k: int) -> None:
        matrix = unit_rows(cohort)
        if k < 1:
            raise ValueError("k must be 1 or more")
        if len(matrix) < k:
            raise ValueError(f"a cohort of {len(matrix)} templates is smaller than k = {k}")
        self.cohort = matrix
        self.k = k

    def __len__(self) -> int:
        return len(self.cohort)

    def offsets(self, probes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(n,) the amount subtracted from each probe's cosines (probes as (n, d) rows)."""
        scores = unit_rows(probes) @ self.cohort.T
        top = np.partition(scores, scores.shape[1] - self.k, axis=1)[:, -self.k :]
        means: npt.NDArray[np.float64] = top.astype(np.float64).mean(axis=1)
        return means

    def offset(self, probe: npt.ArrayLike) -> float:
        """The amount subtracted from one probe's cosines."""
        return float(self.offsets(np.asarray(probe)[None, :])[0])


def _mixed(ids: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a fixed, well-spread 64-bit hash of each id, vectorised."""
    with np.errstate(over="ignore"):
        mixed = ids + np.uint64(0x9E3779B97F4A7C15)
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return mixed ^ (mixed >> np.uint64(31))


def gallery_cohort_ids(template_ids: Iterable[int], size: int = COHORT_SIZE) -> list[int]:
    """A fixed sample of `size` of a gallery's templates to serve as its cohort, sorted.

    The templates whose ids hash lowest: the same gallery always gives the same cohort,
    enrolling one template changes it by at most one member, and an expunged template
    leaves it with the gallery. Vectorised: about 20 ms for a million ids. ValueError
    when the gallery has fewer than `size` templates.
    """
    listed = template_ids if isinstance(template_ids, np.ndarray) else list(template_ids)
    # np.sort, not np.unique: numpy 2.4's unique takes seconds for a million ids.
    ids = np.sort(np.asarray(listed, dtype=np.int64))
    if len(ids) > 1 and bool(np.any(ids[1:] == ids[:-1])):
        raise ValueError("template ids repeat: a gallery's ids are unique")
    if len(ids) < size:
        raise ValueError(
            f"a cohort of {size:,} needs that many templates; the gallery has {len(ids):,}"
        )
    keys = _mixed(ids.astype(np.uint64))
    chosen = np.argpartition(keys, size - 1)[:size] if size < len(ids) else np.arange(len(ids))
    return sorted(int(value) for value in ids[chosen])


def fuse_subject_scores(
    scores: npt.NDArray[np.floating], subjects: npt.NDArray[np.int64], fusion: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """One score per subject from per-template scores: (subject ids, scores), best first.

    fusion: "max" (the subject's best photo) or "mean-top2" (the mean of its best two
    photos; a subject with one photo keeps that photo's score). Ties keep subject order.
    """
    if fusion not in ("max", "mean-top2"):
        raise ValueError(f"unknown fusion {fusion!r}; use max or mean-top2")
    values = np.asarray(scores, dtype=np.float64)
    owners = np.asarray(subjects, dtype=np.int64)
    if values.shape != owners.shape:
        raise ValueError(f"{values.shape} scores for {owners.shape} subjects")
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    # Sort by subject, then by score falling: each subject's best photos come first.
    order = np.lexsort((-values, owners))
    owners, values = owners[order], values[order]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    best = values[starts]
    if fusion == "mean-top2":
        counts = np.diff(np.r_[starts, len(owners)])
        second = np.where(counts > 1, values[np.minimum(starts + 1, len(values) - 1)], best)
        best = (best + second) / 2.0
    ids = owners[starts]
    ranking = np.argsort(-best, kind="stable")
    return ids[ranking], best[ranking]
