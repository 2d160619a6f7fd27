"""Score calibration: how often two different people's templates score above a threshold.

A calibration is the impostor score distribution's upper tail, measured on a labelled
folder: for per-comparison false match rates from 1e-1 down to what the number of
impostor pairs can resolve, the score threshold that gives each. The workflow turns it
into a 1:N threshold for a gallery of a given size (see candor.workflow.calibration).

Two kinds, named by `CalibrationTable.score`:
- "cosine" (`calibrate_folder`): every pair of photos of two different people;
- a recipe's normalised score (`calibrate_recipe`): pairs as a 1:N search makes them,
  a probe (the recipe's search views) against gallery templates (its enrolment views),
  the score being the cosine minus the probe's cohort offset. Each half of the folder's
  people is calibrated with the other half as its cohort, and the pairs are pooled.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from candor.evaluation.cache import PhotoOutcome, extract_photos
from candor.evaluation.identification import (
    Half,
    list_people,
    people_of_half,
    plan_identification_protocol,
)
from candor.evaluation.verification import VerifyPoint, verify_point
from candor.faces import EngineSettings, FaceEngine
from candor.faces.quality import OPEN_GATE, judge_quality
from candor.faces.recipe import Recipe
from candor.index.cohort import CohortNormaliser, gallery_cohort_ids, score_name, unit_rows

# Per-comparison false match rates tabulated: 8 points per decade.
_POINTS_PER_DECADE = 8
_MIN_PAIRS_PER_POINT = 10  # a rate is tabulated only where >= 10 impostor pairs exceed it
_BLOCK = 2048
_TAIL_KEPT = 2_000_000  # highest impostor scores kept: enough for rates down to 1e-7 of 2e13


@dataclass(frozen=True)
class CalibrationTable:
    """Cosine thresholds at per-comparison false match rates, for one model."""

    model_key: str
    dataset: str
    dataset_sha256: str
    templates: int
    impostor_pairs: int
    points: tuple[tuple[float, float], ...]  # (false match rate, score threshold), rate falling
    score: str = "cosine"

    def to_json(self) -> str:
        """The table as JSON text (what is stored and shipped)."""
        return json.dumps(
            {
                "model_key": self.model_key,
                "score": self.score,
                "dataset": self.dataset,
                "dataset_sha256": self.dataset_sha256,
                "templates": self.templates,
                "impostor_pairs": self.impostor_pairs,
                "points": [[rate, threshold] for rate, threshold in self.points],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> CalibrationTable:
        """Parse `to_json`'s output."""
        raw: dict[str, Any] = json.loads(text)
        return cls(
            model_key=str(raw["model_key"]),
            dataset=str(raw["dataset"]),
            dataset_sha256=str(raw["dataset_sha256"]),
            templates=int(raw["templates"]),
            impostor_pairs=int(raw["impostor_pairs"]),
            points=tuple((float(rate), float(threshold)) for rate, threshold in raw["points"]),
            score=str(raw.get("score", "cosine")),
        )


def impostor_threshold_points(
    vectors: npt.NDArray[np.floating], labels: npt.NDArray[np.str_]
) -> tuple[int, tuple[tuple[float, float], ...]]:
    """(impostor pair count, points) from templates and their people's labels.

    Every pair of templates of two different people is compared; the pairs are scored in
    blocks so memory stays at a few blocks' worth even for tens of thousands of templates.
    """
    unit = np.asarray(vectors, dtype=np.float32)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    count = len(unit)
    # Enough of the upper tail to resolve the smallest tabulated rate.
    pairs_total = count * (count - 1) // 2
    keep = max(1000, min(pairs_total, 2_000_000))
    tail = np.empty(0, dtype=np.float32)
    impostor_pairs = 0
    for start in range(0, count, _BLOCK):
        block = unit[start : start + _BLOCK] @ unit[start:].T
        rows, cols = np.triu_indices(block.shape[0], k=1, m=block.shape[1])
        different = labels[start + rows] != labels[start + cols]
        scores = block[rows[different], cols[different]]
        impostor_pairs += len(scores)
        tail = np.concatenate([tail, scores])
        if len(tail) > keep:
            tail = np.partition(tail, len(tail) - keep)[-keep:]
    return impostor_pairs, _points_of_tail(tail, impostor_pairs)


def _points_of_tail(
    tail: npt.NDArray[np.float32], impostor_pairs: int
) -> tuple[tuple[float, float], ...]:
    """(rate, threshold) points from the highest impostor scores out of `impostor_pairs`."""
    tail = np.sort(tail)[::-1]
    points: list[tuple[float, float]] = []
    decades = math.log10(impostor_pairs / _MIN_PAIRS_PER_POINT) if impostor_pairs else 0.0
    for step in range(_POINTS_PER_DECADE, int(decades * _POINTS_PER_DECADE) + 1):
        rate = 10 ** (-step / _POINTS_PER_DECADE)
        allowed = math.floor(rate * impostor_pairs)
        if allowed >= len(tail):
            continue
        # Just above the (allowed+1)-th highest score: at most `allowed` pairs reach it.
        points.append((rate, float(np.nextafter(tail[allowed], np.float32(np.inf)))))
    return tuple(points)


def score_at_rate(table: CalibrationTable, rate: float) -> tuple[float, bool]:
    """(threshold, extrapolated): the table's threshold at per-comparison rate `rate`.

    Interpolated in log(rate) between tabulated points; a rate above the first point gets
    the lowest threshold; a rate below the last gets the highest, and `extrapolated` says
    the table does not resolve it (the true threshold is higher).
    """
    points = table.points  # rate falling, threshold rising
    if not points:
        raise ValueError(f"calibration {table.dataset} has no tabulated points")
    if rate >= points[0][0]:
        return points[0][1], False
    if rate <= points[-1][0]:
        return points[-1][1], rate < points[-1][0]
    for (high_rate, low_threshold), (low_rate, high_threshold) in itertools.pairwise(points):
        if low_rate <= rate <= high_rate:
            weight = (math.log(high_rate) - math.log(rate)) / (
                math.log(high_rate) - math.log(low_rate)
            )
            return low_threshold + weight * (high_threshold - low_threshold), False
    raise AssertionError("unreachable: the rate lies within the table")


def rate_at_score(table: CalibrationTable, score: float) -> tuple[float, bool]:
    """(rate, extrapolated): the per-comparison false match rate at threshold `score`.

    The inverse of `score_at_rate`: log(rate) interpolated between tabulated points. A
    score beyond the table's highest threshold gets its lowest rate, flagged extrapolated
    (the true rate is lower); below its lowest, the highest rate, flagged too.
    """
    points = table.points
    if not points:
        raise ValueError(f"calibration {table.dataset} has no tabulated points")
    if score <= points[0][1]:
        return points[0][0], score < points[0][1]
    if score >= points[-1][1]:
        return points[-1][0], score > points[-1][1]
    for (high_rate, low_threshold), (low_rate, high_threshold) in itertools.pairwise(points):
        if low_threshold <= score <= high_threshold and high_threshold > low_threshold:
            weight = (score - low_threshold) / (high_threshold - low_threshold)
            log_rate = math.log(high_rate) + weight * (math.log(low_rate) - math.log(high_rate))
            return math.exp(log_rate), False
    raise AssertionError("unreachable: the score lies within the table")


def matched_min_sharpness(
    reference: Sequence[float], reference_min: float, measured: Sequence[float]
) -> float:
    """The sharpness limit for `measured` chips that refuses the share of them that
    `reference_min` refuses of the `reference` chips (the same faces through dlib's chip).

    Sharpness is the Laplacian's variance on a model's own aligned chip, whose size and
    framing differ between models, so a number does not carry over; a share of faces
    does. When the reference limit refuses no face, the limit is the reference limit
    scaled by the two softest chips' ratio (it refuses none either).
    """
    if not measured:
        raise ValueError("no face was measured to set a sharpness limit on")
    ordered = np.sort(np.asarray(measured, dtype=np.float64))
    lowest_reference = min(reference, default=0.0)
    refused = sum(1 for value in reference if value < reference_min)
    count = round(refused / len(reference) * len(ordered)) if reference else 0
    if count == 0:
        if lowest_reference <= 0.0:
            return 0.0
        return float(min(reference_min * ordered[0] / lowest_reference, ordered[0]))
    # The `count` softest chips fall strictly below the (count+1)-th softest.
    return float(ordered[min(count, len(ordered) - 1)])


def refused_share(values: Sequence[float], limit: float) -> float:
    """The share of `values` under `limit` (0 for none)."""
    return sum(1 for value in values if value < limit) / len(values) if values else 0.0


def _impostor_tail_1n(
    probes: npt.NDArray[np.floating],
    probe_labels: npt.NDArray[np.str_],
    gallery: npt.NDArray[np.floating],
    gallery_labels: npt.NDArray[np.str_],
    offsets: npt.NDArray[np.floating],
) -> tuple[int, npt.NDArray[np.float32]]:
    probe_unit = unit_rows(probes)
    gallery_unit = unit_rows(gallery)
    shifts = np.asarray(offsets, dtype=np.float32)
    tail = np.empty(0, dtype=np.float32)
    impostor_pairs = 0
    for start in range(0, len(probe_unit), _BLOCK):
        block = probe_unit[start : start + _BLOCK] @ gallery_unit.T
        block -= shifts[start : start + _BLOCK, None]
        different = probe_labels[start : start + _BLOCK, None] != gallery_labels[None, :]
        scores = block[different]
        impostor_pairs += len(scores)
        tail = np.concatenate([tail, scores])
        if len(tail) > _TAIL_KEPT:
            tail = np.partition(tail, len(tail) - _TAIL_KEPT)[-_TAIL_KEPT:]
    return impostor_pairs, tail


def normalised_impostor_points(
    probes: npt.NDArray[np.floating],
    probe_labels: npt.NDArray[np.str_],
    gallery: npt.NDArray[np.floating],
    gallery_labels: npt.NDArray[np.str_],
    offsets: npt.NDArray[np.floating],
) -> tuple[int, tuple[tuple[float, float], ...]]:
    """(impostor pair count, points) of probe-gallery pairs of two different people.

    Each pair scores cos(probe, gallery template) - offsets[probe]: the probe's cohort
    offset (`CohortNormaliser.offsets`); all zeros gives plain 1:N cosine pairs.
    """
    count, tail = _impostor_tail_1n(probes, probe_labels, gallery, gallery_labels, offsets)
    return count, _points_of_tail(tail, count)


def calibrate_folder(
    dataset_dir: Path,
    settings: EngineSettings | None = None,
    *,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationTable:
    """A calibration from every usable photo of a labelled folder (one folder per person)."""
    chosen = settings or EngineSettings()
    listed = list_people(dataset_dir)
    paths = [photo for _, photos in listed for photo in photos]
    names = [name for name, photos in listed for _ in photos]
    outcomes = extract_photos(paths, chosen, cache_dir, workers=workers, progress=progress)
    usable = [
        (o.vector, name) for o, name in zip(outcomes, names, strict=True) if o.vector is not None
    ]
    if len(usable) < 2:
        raise ValueError(f"{dataset_dir} has fewer than two usable photos to calibrate on")
    vectors = np.stack([vector for vector, _ in usable])
    labels = np.array([name for _, name in usable])
    impostor_pairs, points = impostor_threshold_points(vectors, labels)
    return CalibrationTable(
        model_key=FaceEngine(chosen).model.key,
        dataset=str(dataset_dir),
        dataset_sha256=_dataset_digest(outcomes),
        templates=len(usable),
        impostor_pairs=impostor_pairs,
        points=points,
    )


@dataclass(frozen=True)
class ModelMeasurement:
    """What a calibration run measures of one model on a labelled folder.

    cosine: the 1:N calibration of the cosine (every impostor pair of usable photos).
    verify: the 1:1 operating point at the target FMR (None: too few pairs to resolve it).
    min_sharpness: the quality gate's sharpness limit for this model's chips (see
        `matched_min_sharpness`); the templates above were judged with it.
    refused_share, reference_refused_share: the share of the folder's faces refused for
        sharpness, by this limit on this model's chips and by dlib's default on dlib's.
    faces: photos whose chosen face was measured.
    """

    cosine: CalibrationTable
    verify: VerifyPoint | None
    min_sharpness: float
    refused_share: float
    reference_refused_share: float
    faces: int


def measure_model(
    dataset_dir: Path,
    settings: EngineSettings,
    *,
    reference: EngineSettings | None,
    reference_min_sharpness: float,
    target_fmr: float = 1e-3,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ModelMeasurement:
    """Calibrate the model of `settings` on a labelled folder (one sub-folder per person).

    reference: dlib's engine settings to match the sharpness limit against, or None when
        `settings` are dlib's own (the limit is then `reference_min_sharpness` itself).
    The photos are extracted once per engine with the gate open (the evaluation cache);
    `settings.quality` with the matched sharpness limit then decides which are usable.
    progress(done, total) covers both extractions.
    """
    listed = list_people(dataset_dir)
    paths = [photo for _, photos in listed for photo in photos]
    persons = [number for number, (_, photos) in enumerate(listed) for _ in photos]
    stages = 1 if reference is None else 2

    def staged(stage: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(stage * total + done, stages * total)

    outcomes = extract_photos(
        paths,
        replace(settings, quality=OPEN_GATE),
        cache_dir,
        workers=workers,
        progress=staged(0),
    )
    measured = [o.quality.sharpness for o in outcomes if o.quality is not None]
    if not measured:
        raise ValueError(f"no face was found in any photo of {dataset_dir}")
    if reference is None:
        limit = reference_min_sharpness
        reference_share = refused_share(measured, limit)
    else:
        references = extract_photos(
            paths,
            replace(reference, quality=OPEN_GATE),
            cache_dir,
            workers=workers,
            progress=staged(1),
        )
        dlib_measured = [o.quality.sharpness for o in references if o.quality is not None]
        limit = matched_min_sharpness(dlib_measured, reference_min_sharpness, measured)
        reference_share = refused_share(dlib_measured, reference_min_sharpness)
    gate = replace(settings.quality, min_sharpness=limit)
    usable = [
        (o.vector, person)
        for o, person in zip(outcomes, persons, strict=True)
        if o.vector is not None and o.quality is not None and judge_quality(o.quality, gate).passed
    ]
    if len(usable) < 2:
        raise ValueError(f"{dataset_dir} has fewer than two usable photos to calibrate on")
    vectors = np.stack([vector for vector, _ in usable])
    labels = np.array([person for _, person in usable])
    impostor_pairs, points = impostor_threshold_points(vectors, labels.astype(str))
    cosine = CalibrationTable(
        model_key=FaceEngine(settings).model.key,
        dataset=str(dataset_dir),
        dataset_sha256=_dataset_digest(outcomes),
        templates=len(usable),
        impostor_pairs=impostor_pairs,
        points=points,
    )
    verify = verify_point(
        vectors, labels, [len(photos) for _, photos in listed], target_fmr=target_fmr
    )
    return ModelMeasurement(
        cosine=cosine,
        verify=verify,
        min_sharpness=limit,
        refused_share=refused_share(measured, limit),
        reference_refused_share=reference_share,
        faces=len(measured),
    )


def _dataset_digest(outcomes: Sequence[PhotoOutcome]) -> str:
    """sha256 over the photos' own sha256s in order ("-" for one that did not decode)."""
    digest = hashlib.sha256()
    for outcome in outcomes:
        digest.update((outcome.sha256 or "-").encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class HalfTemplates:
    """One half's 1:N templates: its foundation gallery and its other photos as probes.

    Vectors are raw (unnormalised) rows; labels are the people's folder names; sha256s
    are of every photo read, in order (None: could not be decoded), for a dataset digest.
    """

    gallery: npt.NDArray[np.float32]
    gallery_labels: npt.NDArray[np.str_]
    probes: npt.NDArray[np.float32]
    probe_labels: npt.NDArray[np.str_]
    sha256s: tuple[str | None, ...]


def half_templates(
    dataset_dir: Path,
    half: Half,
    recipe: Recipe,
    settings: EngineSettings,
    *,
    cache_dir: Path | None = None,
    workers: int = 1,
    with_probes: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> HalfTemplates:
    """The half's gallery (enrolment views) and, with_probes, its other photos (search views).

    `settings` are used as given: pass them with the recipe's fallback already set.
    progress(done, total) follows the gallery's extraction.
    """
    people = people_of_half(dataset_dir, half)
    plan = plan_identification_protocol(dataset_dir, people)
    in_gallery = {path for _, path in plan.gallery}
    probe_entries = [
        (name, photo)
        for name, photos in list_people(dataset_dir, people)
        for photo in photos
        if with_probes and photo not in in_gallery
    ]
    gallery_out = extract_photos(
        [path for _, path in plan.gallery],
        settings,
        cache_dir,
        views=recipe.enrol_views,
        workers=workers,
        progress=progress,
    )
    probe_out = extract_photos(
        [photo for _, photo in probe_entries],
        settings,
        cache_dir,
        views=recipe.search_views,
        workers=workers,
    )

    def usable(
        entries: list[tuple[str, Path]], outcomes: list[PhotoOutcome]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.str_]]:
        kept = [(o.vector, name) for o, (name, _) in zip(outcomes, entries, strict=True)]
        rows = [(vector, name) for vector, name in kept if vector is not None]
        dimension = FaceEngine(settings).model.dimension
        matrix = (
            np.stack([vector for vector, _ in rows]).astype(np.float32)
            if rows
            else np.zeros((0, dimension), dtype=np.float32)
        )
        return matrix, np.array([name for _, name in rows], dtype=np.str_)

    gallery, gallery_labels = usable(list(plan.gallery), gallery_out)
    probes, probe_labels = usable(probe_entries, probe_out)
    return HalfTemplates(
        gallery,
        gallery_labels,
        probes,
        probe_labels,
        tuple(outcome.sha256 for outcome in (*gallery_out, *probe_out)),
    )


def calibrate_recipe(
    dataset_dir: Path,
    recipe: Recipe,
    settings: EngineSettings | None = None,
    *,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    halves: tuple[Half, ...] = ("tune", "report"),
) -> CalibrationTable:
    """A 1:N calibration of a recipe's score (see the module docstring), halves pooled.

    For each half: the gallery is the half's foundation gallery (enrolment views), the
    probes are the half's other photos (search views), the cohort is COHORT_SIZE of the
    other half's gallery templates. Pairs of one person are left out. `halves` limits
    the pairs to some halves (a calibration on "tune" can be checked on "report").
    """
    engine = replace(settings or EngineSettings(), fallback=recipe.fallback)
    pieces: dict[Half, HalfTemplates] = {}
    digest = hashlib.sha256()
    both: tuple[Half, Half] = ("tune", "report")
    for number, half in enumerate(both, start=1):
        # A half outside `halves` gives only its gallery, as the other half's cohort.
        pieces[half] = half_templates(
            dataset_dir,
            half,
            recipe,
            engine,
            cache_dir=cache_dir,
            workers=workers,
            with_probes=half in halves,
        )
        for sha256 in pieces[half].sha256s:
            digest.update((sha256 or "-").encode())
        if progress is not None:
            progress(number, len(both))
    total_pairs = 0
    templates = 0
    tails: list[npt.NDArray[np.float32]] = []
    for half in halves:
        piece = pieces[half]
        other_gallery = pieces["report" if half == "tune" else "tune"].gallery
        offsets = np.zeros(len(piece.probes), dtype=np.float64)
        if recipe.cohort_k is not None:
            cohort = other_gallery[gallery_cohort_ids(range(len(other_gallery)))]
            offsets = CohortNormaliser(cohort, recipe.cohort_k).offsets(piece.probes)
        count, tail = _impostor_tail_1n(
            piece.probes, piece.probe_labels, piece.gallery, piece.gallery_labels, offsets
        )
        total_pairs += count
        templates += len(piece.gallery) + len(piece.probes)
        tails.append(tail)
    points = _points_of_tail(np.concatenate(tails), total_pairs)
    return CalibrationTable(
        model_key=FaceEngine(engine).model.key,
        dataset=str(dataset_dir),
        dataset_sha256=digest.hexdigest(),
        templates=templates,
        impostor_pairs=total_pairs,
        points=points,
        score=score_name(recipe.cohort_k),
    )
