"""The 1:N identification protocol on a labelled folder, NIST style, and its figures.

Folder layout: one sub-folder per person, named by the person, holding that person's
photos (files with an image suffix; others are ignored).

Protocol (one photo per enrolled person):
- people with two or more photos, in Python `sorted()` order of their folder names: the
  1st, 3rd, 5th ... are enrolled with their first photo (in `sorted()` file order) and
  searched with their second (mated searches); the 2nd, 4th ... are not enrolled and are
  searched with their first photo (non-mated searches);
- people with one photo are enrolled as distractors.
Every photo goes through `extract_faces` (same decoding, face choice and quality gate as
bulk enrolment). A gallery photo without a usable face fails to enrol (and its person's
mated search, if any, can only miss); a mated probe without one is a miss; a non-mated
probe without one returns no candidate. The search is exact, over every template.

The multi-photo protocol (`plan_multi_photo_protocol`) enrols two photos of each mated
person and searches with a third; a recipe's fusion turns a subject's photo scores into
one. A recipe (`candor.faces.recipe`) also says which views make the gallery's and the
probes' templates, and whether scores are normalised against a cohort
(`candor.index.cohort`); the candidate list then holds subjects ranked by their fused,
normalised score, and every threshold below applies to that score. People are split into
two fixed halves by `half_of`: one to tune recipes on, one to report on.

Definitions, with L the candidate list length and T a threshold on the cosine score:
- rank-k hit rate: fraction of mated searches whose mate is among the first k
  candidates, whatever the score.
- FPIR(T): fraction of non-mated searches whose top candidate scores >= T.
- FNIR(T): fraction of mated searches whose mate is not among the L candidates with a
  score >= T (NIST IREX/FRVT's FNIR(N, L, T); a mate at rank 2 above T counts as found,
  since every candidate above T goes to an examiner).
- Threshold at FPIR x: the smallest T with FPIR(T) <= x, from the non-mated top scores
  (just above the score of the (floor(x*n)+1)-th highest).
- FPIR and FNIR at dlib's raw Euclidean distance 0.6, for comparison with the customary
  1:1 cut-off: a non-mated search is a false positive when its nearest unnormalised
  gallery descriptor is at distance <= 0.6; a mated search is found when its mate is among
  the L nearest and at distance <= 0.6.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from candor.evaluation.cache import PhotoOutcome, extract_photos
from candor.faces import EngineSettings, FaceEngine
from candor.faces.recipe import DEFAULT_RECIPE, Recipe
from candor.index.cohort import (
    COHORT_SIZE,
    CohortNormaliser,
    fuse_subject_scores,
    gallery_cohort_ids,
    unit_rows,
)

Protocol = Literal["foundation", "multi-photo"]
PROTOCOLS: tuple[Protocol, ...] = ("foundation", "multi-photo")
Half = Literal["tune", "report"]
HALVES: tuple[Half, ...] = ("tune", "report")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
DEFAULT_FPIR_TARGETS = (0.01, 0.05)
DLIB_DISTANCE = 0.6


@dataclass(frozen=True)
class ProtocolPlan:
    """Who is enrolled with which photo, and which photos are searched."""

    people: int
    gallery: tuple[tuple[str, Path], ...]
    mated: tuple[tuple[str, Path], ...]
    non_mated: tuple[tuple[str, Path], ...]


def list_people(
    dataset_dir: Path, people: Sequence[str] | None = None
) -> list[tuple[str, list[Path]]]:
    """(name, photos) per person folder in `sorted()` order, photos in `sorted()` order.

    `people` restricts the run to those folder names (all must exist); folders without an
    image file are left out.
    """
    if people is None:
        names = sorted(entry.name for entry in dataset_dir.iterdir() if entry.is_dir())
    else:
        names = sorted(set(people))
        absent = [name for name in names if not (dataset_dir / name).is_dir()]
        if absent:
            raise ValueError(f"no folder for {len(absent)} people in {dataset_dir}: {absent[:3]}")
    listed: list[tuple[str, list[Path]]] = []
    for name in names:
        photos = sorted(
            (
                entry
                for entry in (dataset_dir / name).iterdir()
                if entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith(".")
            ),
            key=lambda entry: entry.name,
        )
        if photos:
            listed.append((name, photos))
    return listed


def plan_identification_protocol(
    dataset_dir: Path, people: Sequence[str] | None = None
) -> ProtocolPlan:
    """Split a labelled folder into gallery, mated and non-mated probes (see module doc)."""
    listed = list_people(dataset_dir, people)
    gallery: list[tuple[str, Path]] = []
    mated: list[tuple[str, Path]] = []
    non_mated: list[tuple[str, Path]] = []
    multi = 0
    for name, photos in listed:
        if len(photos) == 1:
            gallery.append((name, photos[0]))
            continue
        if multi % 2 == 0:
            gallery.append((name, photos[0]))
            mated.append((name, photos[1]))
        else:
            non_mated.append((name, photos[0]))
        multi += 1
    return ProtocolPlan(len(listed), tuple(gallery), tuple(mated), tuple(non_mated))


def plan_multi_photo_protocol(
    dataset_dir: Path, people: Sequence[str] | None = None
) -> ProtocolPlan:
    """The multi-photo protocol: several photos enrolled per person, fused at search.

    People with three or more photos, in `sorted()` order: the 1st, 3rd ... are enrolled
    with their first two photos and searched with their third (mated); the 2nd, 4th ...
    are not enrolled and are searched with their first photo (non-mated). Everyone else
    is enrolled with their first photo as a distractor.
    """
    listed = list_people(dataset_dir, people)
    gallery: list[tuple[str, Path]] = []
    mated: list[tuple[str, Path]] = []
    non_mated: list[tuple[str, Path]] = []
    multi = 0
    for name, photos in listed:
        if len(photos) < 3:
            gallery.append((name, photos[0]))
            continue
        if multi % 2 == 0:
            gallery += [(name, photos[0]), (name, photos[1])]
            mated.append((name, photos[2]))
        else:
            non_mated.append((name, photos[0]))
        multi += 1
    return ProtocolPlan(len(listed), tuple(gallery), tuple(mated), tuple(non_mated))


def plan_protocol(
    dataset_dir: Path, protocol: Protocol, people: Sequence[str] | None = None
) -> ProtocolPlan:
    """The plan of `protocol` ("foundation" or "multi-photo") on a labelled folder."""
    if protocol == "foundation":
        return plan_identification_protocol(dataset_dir, people)
    if protocol == "multi-photo":
        return plan_multi_photo_protocol(dataset_dir, people)
    raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def half_of(name: str) -> Half:
    """The fixed half a person belongs to: int(sha256(name)[:8], 16) % 2, 1 = report."""
    value = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
    return "report" if value % 2 == 1 else "tune"


def people_of_half(dataset_dir: Path, half: Half) -> list[str]:
    """The folder names of `dataset_dir` (with photos) in `half`, in `sorted()` order."""
    if half not in HALVES:
        raise ValueError(f"unknown half {half!r}; use tune or report")
    return [name for name, _ in list_people(dataset_dir) if half_of(name) == half]


@dataclass(frozen=True)
class OperatingPoint:
    """FNIR at the threshold that gives a target FPIR."""

    target_fpir: float
    threshold: float
    fpir: float
    fnir: float


@dataclass(frozen=True)
class MatedSearch:
    """One mated search: where the mate came, with what score (None: not returned)."""

    person: str
    probe: Path
    mate_rank: int | None
    mate_score: float | None
    mate_distance: float | None
    probe_usable: bool
    mate_enrolled: bool


@dataclass(frozen=True)
class NonMatedSearch:
    """One non-mated search: its top candidate's score (None: no candidate)."""

    person: str
    probe: Path
    top_score: float | None
    nearest_distance: float | None


@dataclass(frozen=True)
class IdentificationReport:
    """Every figure of one protocol run; `to_dict()` gives the JSON form."""

    dataset: str
    model: str
    detector: str
    recipe: str
    quality_thresholds: str
    protocol: str
    score: str
    cohort: str | None
    people: int
    gallery_photos: int
    gallery_size: int
    failed_to_enrol: int
    mated_searches: int
    non_mated_searches: int
    mated_probes_without_template: int
    non_mated_probes_without_template: int
    mated_searches_without_enrolled_mate: int
    candidate_list_length: int
    rank_1: float
    rank_10: float
    operating_points: tuple[OperatingPoint, ...]
    fpir_at_distance_0_6: float
    fnir_at_distance_0_6: float
    mated: tuple[MatedSearch, ...]
    non_mated: tuple[NonMatedSearch, ...]
    photos: tuple[PhotoOutcome, ...]

    def fnir_at_fpir(self, target: float) -> OperatingPoint:
        """The operating point computed for `target` (one of the run's FPIR targets)."""
        for point in self.operating_points:
            if math.isclose(point.target_fpir, target):
                return point
        raise KeyError(f"FPIR {target} was not among this run's targets")

    def to_dict(self) -> dict[str, Any]:
        """The summary figures as plain JSON types (no per-search rows, no templates)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "detector": self.detector,
            "recipe": self.recipe,
            "quality_thresholds": self.quality_thresholds,
            "protocol": self.protocol,
            "score": self.score,
            "cohort": self.cohort,
            "people": self.people,
            "gallery_photos": self.gallery_photos,
            "gallery_size": self.gallery_size,
            "failed_to_enrol": self.failed_to_enrol,
            "mated_searches": self.mated_searches,
            "non_mated_searches": self.non_mated_searches,
            "mated_probes_without_template": self.mated_probes_without_template,
            "non_mated_probes_without_template": self.non_mated_probes_without_template,
            "mated_searches_without_enrolled_mate": self.mated_searches_without_enrolled_mate,
            "candidate_list_length": self.candidate_list_length,
            "rank_1": self.rank_1,
            "rank_10": self.rank_10,
            "fnir_at_fpir": [
                {
                    "target_fpir": point.target_fpir,
                    "threshold": point.threshold,
                    "fpir": point.fpir,
                    "fnir": point.fnir,
                }
                for point in self.operating_points
            ],
            "fpir_at_distance_0_6": self.fpir_at_distance_0_6,
            "fnir_at_distance_0_6": self.fnir_at_distance_0_6,
        }


def threshold_at_fpir(non_mated_top_scores: Sequence[float | None], target: float) -> float:
    """Smallest cosine threshold T with FPIR(T) <= target; None scores never exceed T.

    With n searches and m = floor(target * n) false positives allowed, T is the next float
    above the (m+1)-th highest top score; -1.0 (every score) when few enough searches have
    a candidate at all.
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError("a target FPIR lies between 0 and 1")
    n = len(non_mated_top_scores)
    scores = sorted((float(s) for s in non_mated_top_scores if s is not None), reverse=True)
    allowed = math.floor(target * n + 1e-9)
    if len(scores) <= allowed:
        return -1.0
    return float(np.nextafter(scores[allowed], math.inf))


def fpir_at(non_mated_top_scores: Sequence[float | None], threshold: float) -> float:
    """Fraction of non-mated searches whose top candidate scores >= threshold."""
    n = len(non_mated_top_scores)
    if n == 0:
        return 0.0
    hits = sum(1 for s in non_mated_top_scores if s is not None and s >= threshold)
    return hits / n


def fnir_at(mated: Sequence[MatedSearch], threshold: float) -> float:
    """Fraction of mated searches whose mate is not among the candidates scoring >= threshold."""
    if not mated:
        return 0.0
    found = sum(1 for m in mated if m.mate_score is not None and m.mate_score >= threshold)
    return 1.0 - found / len(mated)


def _rank_rate(mated: Sequence[MatedSearch], rank: int) -> float:
    if not mated:
        return 0.0
    return sum(1 for m in mated if m.mate_rank is not None and m.mate_rank <= rank) / len(mated)


def run_identification_protocol(
    dataset_dir: Path,
    settings: EngineSettings | None = None,
    cache_dir: Path | None = None,
    *,
    people: Sequence[str] | None = None,
    workers: int = 1,
    candidate_list_length: int = 50,
    fpir_targets: Sequence[float] = DEFAULT_FPIR_TARGETS,
    progress: Callable[[int, int], None] | None = None,
    photos: Mapping[Path, PhotoOutcome] | None = None,
    recipe: Recipe = DEFAULT_RECIPE,
    protocol: Protocol = "foundation",
    cohort: npt.ArrayLike | None = None,
    cohort_label: str | None = None,
) -> IdentificationReport:
    """Run a protocol of this module's docstring on `dataset_dir` and report every figure.

    settings: engine settings (default EngineSettings()); the recipe's detector fallback
        replaces theirs. cache_dir: template cache root (default `default_cache_dir()`).
    people: restrict to these folder names. workers: extraction processes.
    candidate_list_length: L, the candidates per search (subjects, after fusion).
    fpir_targets: the FPIRs to report FNIR at. progress(done, total): extraction progress.
    photos: outcomes already extracted with these settings and the recipe's search views
        (by path); when given, every probe of the plan must be among them (and every
        gallery photo too when the recipe enrols with the same views).
    recipe: views at enrolment and search, fallback, fusion and score normalisation.
    protocol: "foundation" (one photo enrolled per person) or "multi-photo".
    cohort: raw template vectors of people who are not evaluated, for a normalising
        recipe; None uses a COHORT_SIZE sample of the gallery itself (as a deployment
        does), which holds mates, or plain cosines when the gallery is smaller than that
        (as a deployment does too). cohort_label: how the report card describes it.
    """
    if candidate_list_length < 10:
        raise ValueError("the candidate list must hold at least 10 candidates (rank-10)")
    chosen_settings = replace(settings or EngineSettings(), fallback=recipe.fallback)
    model = FaceEngine(chosen_settings).model
    plan = plan_protocol(dataset_dir, protocol, people)
    probe_entries = [*plan.mated, *plan.non_mated]
    gallery_out, probe_out = _role_outcomes(
        plan, probe_entries, chosen_settings, cache_dir, workers, progress, photos, recipe
    )
    mated_out = probe_out[: len(plan.mated)]
    non_mated_out = probe_out[len(plan.mated) :]

    subject_of: dict[str, int] = {}
    rows: list[npt.NDArray[np.float32]] = []
    owners: list[int] = []
    for (name, _), outcome in zip(plan.gallery, gallery_out, strict=True):
        if outcome.vector is not None:
            owners.append(subject_of.setdefault(name, len(subject_of)))
            rows.append(outcome.vector)
    dimension = model.dimension
    raw_gallery = np.vstack(rows) if rows else np.zeros((0, dimension), dtype=np.float32)
    gallery = unit_rows(raw_gallery) if rows else raw_gallery
    subjects = np.asarray(owners, dtype=np.int64)
    normaliser: CohortNormaliser | None = None
    cohort_text: str | None = None
    score_text = "cosine"
    if recipe.cohort_k is not None and rows:
        if cohort is None and len(rows) < COHORT_SIZE:
            # As in a deployment: a gallery this small is not its own cohort.
            score_text = (
                f"cosine (the recipe normalises, but a gallery of {len(rows):,} templates is "
                f"smaller than the {COHORT_SIZE:,} a cohort needs)"
            )
        elif cohort is None:
            sample = gallery_cohort_ids(range(len(rows)))
            normaliser = CohortNormaliser(raw_gallery[sample], recipe.cohort_k)
            cohort_text = (
                f"{len(sample):,} of the gallery's own {len(rows):,} templates, as in a "
                "deployment (the mates among them)"
            )
        else:
            normaliser = CohortNormaliser(cohort, recipe.cohort_k)
            cohort_text = cohort_label or f"{len(normaliser):,} templates of other people"
    searcher = _Searcher(gallery, raw_gallery, subjects, recipe, normaliser)
    limit = candidate_list_length

    mated: list[MatedSearch] = []
    for (name, probe), outcome in zip(plan.mated, mated_out, strict=True):
        mate = subject_of.get(name)
        rank: int | None = None
        score: float | None = None
        distance: float | None = None
        if outcome.vector is not None and mate is not None:
            ranked, scores = searcher.ranked(outcome.vector)
            position = int(np.flatnonzero(ranked == mate)[0])
            if position < limit:
                rank, score = position + 1, float(scores[position])
            distance = searcher.mate_distance(outcome.vector, mate, limit)
        mated.append(
            MatedSearch(
                person=name,
                probe=probe,
                mate_rank=rank,
                mate_score=score,
                mate_distance=distance,
                probe_usable=outcome.vector is not None,
                mate_enrolled=mate is not None,
            )
        )

    non_mated: list[NonMatedSearch] = []
    for (name, probe), outcome in zip(plan.non_mated, non_mated_out, strict=True):
        top: float | None = None
        nearest: float | None = None
        if outcome.vector is not None and rows:
            _, scores = searcher.ranked(outcome.vector)
            top = float(scores[0])
            nearest = float(searcher.distances(outcome.vector).min())
        non_mated.append(NonMatedSearch(name, probe, top, nearest))

    top_scores = [search.top_score for search in non_mated]
    points = []
    for target in fpir_targets:
        threshold = threshold_at_fpir(top_scores, target)
        points.append(
            OperatingPoint(
                target_fpir=float(target),
                threshold=threshold,
                fpir=fpir_at(top_scores, threshold),
                fnir=fnir_at(mated, threshold),
            )
        )
    fp_distance = sum(
        1
        for s in non_mated
        if s.nearest_distance is not None and s.nearest_distance <= DLIB_DISTANCE
    )
    found_distance = sum(
        1 for m in mated if m.mate_distance is not None and m.mate_distance <= DLIB_DISTANCE
    )
    enrolled_photos = len(plan.gallery)
    return IdentificationReport(
        dataset=dataset_dir.name,
        model=model.key,
        detector=chosen_settings.key,
        recipe=recipe.key,
        quality_thresholds=chosen_settings.quality.key,
        protocol=protocol,
        score=score_text
        if normaliser is None
        else f"cosine - cohort mean of top {recipe.cohort_k}",
        cohort=cohort_text,
        people=plan.people,
        gallery_photos=enrolled_photos,
        gallery_size=len(subject_of),
        failed_to_enrol=len({name for name, _ in plan.gallery}) - len(subject_of),
        mated_searches=len(mated),
        non_mated_searches=len(non_mated),
        mated_probes_without_template=sum(1 for o in mated_out if o.vector is None),
        non_mated_probes_without_template=sum(1 for o in non_mated_out if o.vector is None),
        mated_searches_without_enrolled_mate=sum(1 for m in mated if not m.mate_enrolled),
        candidate_list_length=candidate_list_length,
        rank_1=_rank_rate(mated, 1),
        rank_10=_rank_rate(mated, 10),
        operating_points=tuple(points),
        fpir_at_distance_0_6=fp_distance / len(non_mated) if non_mated else 0.0,
        fnir_at_distance_0_6=1.0 - found_distance / len(mated) if mated else 0.0,
        mated=tuple(mated),
        non_mated=tuple(non_mated),
        photos=(*gallery_out, *probe_out),
    )


def _role_outcomes(
    plan: ProtocolPlan,
    probe_entries: list[tuple[str, Path]],
    settings: EngineSettings,
    cache_dir: Path | None,
    workers: int,
    progress: Callable[[int, int], None] | None,
    photos: Mapping[Path, PhotoOutcome] | None,
    recipe: Recipe,
) -> tuple[list[PhotoOutcome], list[PhotoOutcome]]:
    """(gallery outcomes with the enrolment views, probe outcomes with the search views)."""
    gallery_paths = [path for _, path in plan.gallery]
    probe_paths = [path for _, path in probe_entries]
    same_views = recipe.enrol_views == recipe.search_views
    if photos is not None:
        probes = [photos[path] for path in probe_paths]
        if same_views:
            return [photos[path] for path in gallery_paths], probes
        gallery = extract_photos(
            gallery_paths,
            settings,
            cache_dir,
            views=recipe.enrol_views,
            workers=workers,
            progress=progress,
        )
        return gallery, probes
    if same_views:
        both = extract_photos(
            [*gallery_paths, *probe_paths],
            settings,
            cache_dir,
            views=recipe.search_views,
            workers=workers,
            progress=progress,
        )
        return both[: len(gallery_paths)], both[len(gallery_paths) :]
    total = len(gallery_paths) + len(probe_paths)

    def gallery_progress(done: int, _: int) -> None:
        if progress is not None:
            progress(done, total)

    def probe_progress(done: int, _: int) -> None:
        if progress is not None:
            progress(len(gallery_paths) + done, total)

    gallery = extract_photos(
        gallery_paths,
        settings,
        cache_dir,
        views=recipe.enrol_views,
        workers=workers,
        progress=gallery_progress,
    )
    probes = extract_photos(
        probe_paths,
        settings,
        cache_dir,
        views=recipe.search_views,
        workers=workers,
        progress=probe_progress,
    )
    return gallery, probes


class _Searcher:
    """Exact 1:N search of one probe as the recipe scores it: normalise, then fuse."""

    def __init__(
        self,
        gallery: npt.NDArray[np.float32],
        raw_gallery: npt.NDArray[np.float32],
        subjects: npt.NDArray[np.int64],
        recipe: Recipe,
        normaliser: CohortNormaliser | None,
    ) -> None:
        self.gallery = gallery
        self.raw_gallery = raw_gallery.astype(np.float64)
        self.subjects = subjects
        self.recipe = recipe
        self.normaliser = normaliser

    def ranked(
        self, probe: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Subjects best first, with their fused (and normalised) scores."""
        unit = unit_rows(probe)[0]
        scores = (self.gallery @ unit).astype(np.float64)
        if self.normaliser is not None:
            scores = scores - self.normaliser.offset(unit)
        return fuse_subject_scores(scores, self.subjects, self.recipe.fusion)

    def distances(self, probe: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """dlib's raw Euclidean distance to every gallery template."""
        difference = self.raw_gallery - probe.astype(np.float64)
        distances: npt.NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", difference, difference))
        return distances

    def mate_distance(self, probe: npt.NDArray[np.float32], mate: int, limit: int) -> float | None:
        """The mate's nearest raw distance, when fewer than `limit` subjects come nearer."""
        distances = self.distances(probe)
        nearest = np.full(int(self.subjects.max()) + 1, np.inf)
        np.minimum.at(nearest, self.subjects, distances)
        mate_distance = float(nearest[mate])
        nearer = int(np.count_nonzero(nearest < mate_distance))
        return mate_distance if nearer < limit else None
