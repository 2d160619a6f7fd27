"""A report card: the accuracy harness's figures on one labelled folder, with intervals.

`evaluate_folder(DIR)` extracts every photo of DIR once (through the template cache, in
scratch space), then:
- runs the 1:N identification protocol of `candor.evaluation.identification` on those
  outcomes, with the options' recipe, protocol and half (a normalising recipe on a half
  is normalised against the other half's gallery; on the whole folder, against the
  gallery itself) (rank-1, rank-10; FNIR at FPIR 0.01, 0.05 and 0.003 with their thresholds;
  FPIR and FNIR at dlib's raw distance 0.6);
- scores every pair of usable templates of DIR (`candor.evaluation.verification`): FNMR
  at FMR 1e-3 and 1e-4 with their thresholds, and DET/ROC points;
- puts a bootstrap interval over people (`candor.evaluation.bootstrap`) on every figure;
- with a groups file (`candor.evaluation.groups`), FNIR and FPIR per group at the
  deployment threshold: the one the caller gives, else this run's threshold at FPIR 0.01.

DIR is all it uses: the gallery, the probes, the cohort and the pairs all come from DIR,
and no calibration from elsewhere enters any figure. The pairs use the templates of the
recipe's search views.

The null rule: a rate x estimated from n trials (FNIR at FPIR x from n non-mated
searches; FNMR at FMR x from n impostor pairs) is null, with the reason in
`null_reasons`, when x * n is under 2, since the threshold would then rest on at most
one false match. A figure with nothing to count (rank-1 without mated searches, say) is
null with its reason too. `result` is the JSON object `candor evaluate --json` prints and
the report card stores. It names the face model that made the templates (`face_model`:
the name the operator knows it by, its key, embedding size and licence as declared).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from candor.evaluation.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    BoolArray,
    FloatArray,
    IntArray,
    people_weights,
    percentile_interval,
    share_below,
    threshold_at_rate,
    too_few,
    unit_weights,
    weighted_mean,
)
from candor.evaluation.cache import PhotoOutcome, extract_photos
from candor.evaluation.calibration import half_templates
from candor.evaluation.groups import GroupAssignment, group_figures
from candor.evaluation.identification import (
    DLIB_DISTANCE,
    Half,
    IdentificationReport,
    Protocol,
    list_people,
    people_of_half,
    run_identification_protocol,
)
from candor.evaluation.verification import AllPairs, det_points, score_all_pairs
from candor.faces import EngineSettings, FaceEngine
from candor.faces.recipe import DEFAULT_RECIPE, Recipe
from candor.index.cohort import COHORT_SIZE, gallery_cohort_ids

FPIR_TARGETS = (0.01, 0.05, 0.003)
FMR_TARGETS = (1e-3, 1e-4)
REPORT_CARD_FORMAT = 1
DEFAULT_LIMITS = (
    "The limits of this dataset were not stated: who is in it, how and where its photos "
    "were taken and how reliable its labels are is unknown, so these figures may not hold "
    "for the photos this agency searches."
)

# progress(stage, done, total); stages: "extracting", "cohort", "gallery", "identification",
# "pairs", "bootstrap" ("cohort" and "gallery" only for recipes that need them).
EvaluationProgress = Callable[[str, int, int], None]


def fpir_key(kind: str, rate: float) -> str:
    """The result key of a figure at a rate, e.g. fnir_at_fpir_0.01, fnmr_at_fmr_0.0001."""
    return f"{kind}_{rate:g}"


# A model nobody named or declared a licence for (e.g. run straight from the library).
UNSTATED_LICENCE = "not stated"


@dataclass(frozen=True)
class ModelLabel:
    """The face model a report card is about, as the operator knows it.

    name: the registry's name ("dlib" for the built-in model), or the file's name when
        a file is evaluated in scratch space.
    key: the `ModelId.key` its templates carry (the bytes that made them).
    licence: as declared when the model was added; Candor cannot check it.
    """

    name: str
    key: str
    dimension: int
    licence: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, as the report card stores them."""
        return {
            "name": self.name,
            "key": self.key,
            "dimension": self.dimension,
            "licence": self.licence,
        }


@dataclass(frozen=True)
class EvaluationOptions:
    """How an evaluation is run and summarised (the engine settings are separate)."""

    replicates: int = DEFAULT_REPLICATES
    seed: int = DEFAULT_SEED
    level: float = DEFAULT_LEVEL
    candidate_list_length: int = 50
    deployment_threshold: float | None = None
    limits: str | None = None
    recipe: Recipe = DEFAULT_RECIPE
    protocol: Protocol = "foundation"
    half: Half | None = None


@dataclass(frozen=True)
class Cohort:
    """Templates of people not evaluated, to normalise scores against, and their story."""

    vectors: npt.NDArray[np.float32]
    label: str


def other_half_cohort(
    dataset_dir: Path,
    half: Half,
    engine: EngineSettings,
    recipe: Recipe,
    cache_dir: Path | None = None,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Cohort | None:
    """COHORT_SIZE of the other half's gallery templates, made with the enrolment views.

    Disjoint from the people of `half` by construction, and of the size a deployment's
    cohort has (see `candor.index.cohort.COHORT_SIZE`). None when the other half has
    fewer usable gallery photos than that: scores then stay cosines, as in a deployment
    whose gallery is too small to be its own cohort.
    """
    other: Half = "tune" if half == "report" else "report"
    gallery = half_templates(
        dataset_dir,
        other,
        recipe,
        replace(engine, fallback=recipe.fallback),
        cache_dir=cache_dir,
        workers=workers,
        with_probes=False,
        progress=progress,
    ).gallery
    if len(gallery) < COHORT_SIZE:
        return None
    label = (
        f"{COHORT_SIZE:,} of the {other} half's {len(gallery):,} gallery templates, people "
        "not evaluated (in a deployment: a sample of the gallery itself)"
    )
    return Cohort(gallery[gallery_cohort_ids(range(len(gallery)))], label)


@dataclass(frozen=True)
class SearchTable:
    """The identification run's searches as arrays; persons index the people list."""

    mated_person: IntArray
    mate_rank: IntArray  # 0: the mate was not among the candidates
    mate_score: FloatArray  # -inf: the mate was not returned
    mate_within_distance: BoolArray
    nonmated_person: IntArray
    top_score: FloatArray  # -inf: no candidate
    nonmated_within_distance: BoolArray

    @classmethod
    def from_report(cls, report: IdentificationReport, people: list[str]) -> SearchTable:
        index = {name: position for position, name in enumerate(people)}
        mated, non_mated = report.mated, report.non_mated
        return cls(
            mated_person=np.array([index[m.person] for m in mated], dtype=np.int64),
            mate_rank=np.array([m.mate_rank or 0 for m in mated], dtype=np.int64),
            mate_score=np.array(
                [-np.inf if m.mate_score is None else m.mate_score for m in mated],
                dtype=np.float64,
            ),
            mate_within_distance=np.array(
                [m.mate_distance is not None and m.mate_distance <= DLIB_DISTANCE for m in mated],
                dtype=np.bool_,
            ),
            nonmated_person=np.array([index[s.person] for s in non_mated], dtype=np.int64),
            top_score=np.array(
                [-np.inf if s.top_score is None else s.top_score for s in non_mated],
                dtype=np.float64,
            ),
            nonmated_within_distance=np.array(
                [
                    s.nearest_distance is not None and s.nearest_distance <= DLIB_DISTANCE
                    for s in non_mated
                ],
                dtype=np.bool_,
            ),
        )

    def nonmated_thresholds(self, weights: IntArray, fpir: float) -> FloatArray:
        """Per replicate, the threshold at FPIR `fpir` (NaN under the null rule)."""
        order = np.argsort(-self.top_score, kind="stable")
        returned = order[np.isfinite(self.top_score[order])]
        nonmated_weights = weights[:, self.nonmated_person]
        return threshold_at_rate(
            self.top_score[returned],
            nonmated_weights[:, returned],
            nonmated_weights.sum(axis=1).astype(np.float64),
            fpir,
        )

    def fnir_at(self, weights: IntArray, thresholds: FloatArray) -> FloatArray:
        """Per replicate, the weighted share of mated searches whose mate scores under T."""
        order = np.argsort(self.mate_score, kind="stable")
        return share_below(self.mate_score[order], weights[:, self.mated_person[order]], thresholds)


def identification_figures(
    searches: SearchTable, weights: IntArray, fpir_targets: tuple[float, ...] = FPIR_TARGETS
) -> dict[str, FloatArray]:
    """Every 1:N figure per replicate (NaN: undefined in that replicate)."""
    mated_weights = weights[:, searches.mated_person]
    nonmated_weights = weights[:, searches.nonmated_person]
    rank = searches.mate_rank
    figures = {
        "rank1": weighted_mean((rank >= 1) & (rank <= 1), mated_weights),
        "rank10": weighted_mean((rank >= 1) & (rank <= 10), mated_weights),
    }
    for target in fpir_targets:
        thresholds = searches.nonmated_thresholds(weights, target)
        figures[fpir_key("threshold_at_fpir", target)] = thresholds
        figures[fpir_key("fnir_at_fpir", target)] = searches.fnir_at(weights, thresholds)
    figures["fpir_at_distance_0.6"] = weighted_mean(
        searches.nonmated_within_distance, nonmated_weights
    )
    figures["fnir_at_distance_0.6"] = 1.0 - weighted_mean(
        searches.mate_within_distance, mated_weights
    )
    return figures


def verification_figures(
    pairs: AllPairs, weights: IntArray, fmr_targets: tuple[float, ...] = FMR_TARGETS
) -> dict[str, FloatArray]:
    """FNMR at each FMR target and its threshold, per replicate."""
    figures: dict[str, FloatArray] = {}
    for target in fmr_targets:
        thresholds = pairs.thresholds_at_fmr(weights, target)
        figures[fpir_key("threshold_at_fmr", target)] = thresholds
        figures[fpir_key("fnmr_at_fmr", target)] = pairs.fnmr_at(weights, thresholds)
    return figures


def _null_reasons(
    report: IdentificationReport, pairs: AllPairs | None, templates: int
) -> dict[str, str]:
    reasons: dict[str, str] = {}
    nonmated = report.non_mated_searches
    mated = report.mated_searches
    if mated == 0:
        for key in ("rank1", "rank10", "fnir_at_distance_0.6"):
            reasons[key] = "no mated searches"
    if nonmated == 0:
        reasons["fpir_at_distance_0.6"] = "no non-mated searches"
    for target in FPIR_TARGETS:
        fnir, threshold = fpir_key("fnir_at_fpir", target), fpir_key("threshold_at_fpir", target)
        if too_few(target, nonmated):
            reason = (
                f"FPIR {target:g} x {nonmated} non-mated searches = {target * nonmated:.2f}, "
                "under 2: too few non-mated searches to set this threshold"
            )
            reasons[fnir] = reasons[threshold] = reason
        elif mated == 0:
            reasons[fnir] = "no mated searches"
    impostors = 0 if pairs is None else pairs.impostor_pairs
    genuine = 0 if pairs is None else pairs.genuine_pairs
    for target in FMR_TARGETS:
        fnmr, threshold = fpir_key("fnmr_at_fmr", target), fpir_key("threshold_at_fmr", target)
        if pairs is None:
            reasons[fnmr] = reasons[threshold] = f"only {templates} usable templates"
        elif too_few(target, impostors):
            reason = (
                f"FMR {target:g} x {impostors} impostor pairs = {target * impostors:.2f}, "
                "under 2: too few impostor pairs to set this threshold"
            )
            reasons[fnmr] = reasons[threshold] = reason
        elif genuine == 0:
            reasons[fnmr] = "no genuine pairs (nobody has two usable photos)"
    return reasons


def dataset_digest(
    dataset_dir: Path, paths: list[Path], outcomes: Mapping[Path, PhotoOutcome]
) -> str:
    """sha256 over the sorted relative paths of the photos, each with its file's sha256."""
    lines = []
    for path in paths:
        known = outcomes[path].sha256
        if known is None:
            try:
                known = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                known = "-"
        lines.append((path.relative_to(dataset_dir).as_posix(), known))
    digest = hashlib.sha256()
    for relative, file_sha256 in sorted(lines):
        digest.update(f"{relative}\t{file_sha256}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's report card and what identifies it."""

    dataset: str
    dataset_sha256: str
    model_key: str
    settings: dict[str, Any]
    settings_key: str
    limits: str
    result: dict[str, Any]
    face_model: ModelLabel | None = None
    # The searches behind the card, for a comparison of the same arms to reuse rather than
    # run again (`compare_arms`' reports); never stored.
    identification: IdentificationReport | None = field(default=None, repr=False, compare=False)

    @property
    def face_model_name(self) -> str:
        """The model's name as the operator knows it (its key when it was not named)."""
        return self.model_key if self.face_model is None else self.face_model.name

    def figure(self, key: str) -> float | None:
        """One figure of the result (None: null)."""
        value = self.result[key]
        return None if value is None else float(value)


def _settings(
    engine: EngineSettings, options: EvaluationOptions, model_key: str
) -> tuple[dict[str, Any], str]:
    settings = {
        "model": model_key,
        "detector": engine.key,
        "quality_thresholds": engine.quality.key,
        "recipe": options.recipe.key,
        "recipe_name": options.recipe.name,
        "protocol": options.protocol,
        "half": options.half,
        "candidate_list_length": options.candidate_list_length,
        "fpir_targets": list(FPIR_TARGETS),
        "fmr_targets": list(FMR_TARGETS),
        "bootstrap_replicates": options.replicates,
        "bootstrap_seed": options.seed,
        "confidence_level": options.level,
        "deployment_threshold": options.deployment_threshold,
    }
    key = ";".join(
        [
            engine.key,
            engine.quality.key,
            options.recipe.key,
            options.protocol,
            f"half={options.half or 'all'}",
            f"L={options.candidate_list_length}",
            f"B={options.replicates}",
            f"seed={options.seed}",
            f"level={options.level:g}",
            "T=run"
            if options.deployment_threshold is None
            else f"T={options.deployment_threshold!r}",
        ]
    )
    return settings, key


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def evaluate_folder(
    dataset_dir: Path,
    engine_settings: EngineSettings | None = None,
    options: EvaluationOptions | None = None,
    *,
    groups: GroupAssignment | None = None,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: EvaluationProgress | None = None,
    model: ModelLabel | None = None,
) -> Evaluation:
    """Evaluate the model and settings on a labelled folder (see the module docstring).

    model: how the report card names the engine's face model (None: by its `ModelId`'s
    name, licence not stated); its key must be the engine's.
    """
    chosen = options or EvaluationOptions()
    recipe = chosen.recipe
    engine = replace(engine_settings or EngineSettings(), fallback=recipe.fallback)
    if not dataset_dir.is_dir():
        raise ValueError(f"{dataset_dir} is not a folder")
    model_id = FaceEngine(engine).model
    if model is None:
        model = ModelLabel(model_id.name, model_id.key, model_id.dimension, UNSTATED_LICENCE)
    elif model.key != model_id.key:
        # A label for other bytes than the engine runs would misname every figure.
        raise ValueError(
            f"the model named {model.name} is {model.key}, the engine runs {model_id.key}"
        )
    half_people = None if chosen.half is None else people_of_half(dataset_dir, chosen.half)
    listed = list_people(dataset_dir, half_people)
    if len(listed) < 2:
        raise ValueError(f"{dataset_dir} holds fewer than two person folders with photos")
    people = [name for name, _ in listed]
    paths = [photo for _, photos in listed for photo in photos]
    persons = [number for number, (_, photos) in enumerate(listed) for _ in photos]

    def report_progress(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    outcomes = extract_photos(
        paths,
        engine,
        cache_dir,
        views=recipe.search_views,
        workers=workers,
        progress=lambda done, total: report_progress("extracting", done, total),
    )
    by_path = dict(zip(paths, outcomes, strict=True))
    cohort: Cohort | None = None
    if recipe.normalised and chosen.half is not None:
        cohort = other_half_cohort(
            dataset_dir,
            chosen.half,
            engine,
            recipe,
            cache_dir,
            workers=workers,
            progress=lambda done, total: report_progress("cohort", done, total),
        )
    report_progress("identification", 0, 1)
    report = run_identification_protocol(
        dataset_dir,
        engine,
        cache_dir,
        people=half_people,
        workers=workers,
        candidate_list_length=chosen.candidate_list_length,
        fpir_targets=FPIR_TARGETS,
        photos=by_path,
        progress=lambda done, total: report_progress("gallery", done, total),
        recipe=recipe,
        protocol=chosen.protocol,
        cohort=None if cohort is None else cohort.vectors,
        cohort_label=None if cohort is None else cohort.label,
    )
    report_progress("identification", 1, 1)
    searches = SearchTable.from_report(report, people)
    usable = [
        (persons[number], outcome.vector)
        for number, outcome in enumerate(outcomes)
        if outcome.vector is not None
    ]
    pairs: AllPairs | None = None
    if len(usable) >= 2:
        pairs = score_all_pairs(
            np.stack([vector for _, vector in usable]),
            [person for person, _ in usable],
            len(people),
            tail_fmr=max(FMR_TARGETS),
            progress=lambda done, total: report_progress("pairs", done, total),
        )

    report_progress("bootstrap", 0, 1)
    ones = unit_weights(len(people))
    weights = people_weights(len(people), chosen.replicates, chosen.seed)
    point = identification_figures(searches, ones)
    replicated = identification_figures(searches, weights)
    if pairs is not None:
        point |= verification_figures(pairs, ones)
        replicated |= verification_figures(pairs, weights)
    null_reasons = _null_reasons(report, pairs, len(usable))
    figures: dict[str, float | None] = {}
    intervals: dict[str, list[float] | None] = {}
    interval_reasons: dict[str, str] = {}
    keys = [
        "rank1",
        "rank10",
        *(fpir_key("fnir_at_fpir", t) for t in FPIR_TARGETS),
        *(fpir_key("threshold_at_fpir", t) for t in FPIR_TARGETS),
        *(fpir_key("fnmr_at_fmr", t) for t in FMR_TARGETS),
        *(fpir_key("threshold_at_fmr", t) for t in FMR_TARGETS),
        "fpir_at_distance_0.6",
        "fnir_at_distance_0.6",
    ]
    for key in keys:
        value = _number(float(point[key][0])) if key in point else None
        if key in null_reasons:
            value = None
        figures[key] = value
        if value is None:
            intervals[key] = None
            null_reasons.setdefault(key, "undefined on this folder")
            continue
        interval, reason = percentile_interval(replicated[key], chosen.level)
        intervals[key] = None if interval is None else list(interval)
        if reason is not None:
            interval_reasons[key] = reason
    report_progress("bootstrap", 1, 1)

    group_section: dict[str, Any] | None = None
    if groups is not None:
        group_section = _groups_section(groups, people, searches, weights, chosen, figures)

    detail = det_points(pairs) if pairs is not None else []
    settings, settings_key = _settings(engine, chosen, report.model)
    digest = dataset_digest(dataset_dir, paths, by_path)
    limits = chosen.limits if chosen.limits and chosen.limits.strip() else DEFAULT_LIMITS
    warnings = [f"{key} is null: {reason}" for key, reason in null_reasons.items()]
    if group_section is not None and group_section.get("listed_people_not_in_dataset"):
        warnings.append(
            f"{group_section['listed_people_not_in_dataset']} people in the groups file "
            f"are not in {dataset_dir}"
        )
    result: dict[str, Any] = {
        "report_card_format": REPORT_CARD_FORMAT,
        "dataset": str(dataset_dir),
        "dataset_sha256": digest,
        "dataset_limits": limits,
        "model": report.model,
        "face_model": model.to_dict(),
        "settings": settings,
        "settings_key": settings_key,
        "people": len(people),
        "photos": len(paths),
        "templates": len(usable),
        "gallery_photos": report.gallery_photos,
        "gallery_size": report.gallery_size,
        "failed_to_enrol": report.failed_to_enrol,
        "mated_searches": report.mated_searches,
        "nonmated_searches": report.non_mated_searches,
        "candidate_list_length": report.candidate_list_length,
        "score": report.score,
        "cohort": report.cohort,
        "genuine_pairs": 0 if pairs is None else pairs.genuine_pairs,
        "impostor_pairs": 0 if pairs is None else pairs.impostor_pairs,
        **figures,
        "ci": intervals,
        "null_reasons": null_reasons,
        "ci_null_reasons": interval_reasons,
        "bootstrap": {
            "resampled": "people, with replacement; gallery held fixed",
            "replicates": chosen.replicates,
            "seed": chosen.seed,
            "level": chosen.level,
            "interval": "percentile",
        },
        "det": [{"fmr": p.fmr, "fnmr": p.fnmr, "threshold": p.threshold} for p in detail],
        "roc": [{"fmr": p.fmr, "tmr": 1.0 - p.fnmr} for p in detail],
        "groups": group_section,
        "warnings": warnings,
    }
    return Evaluation(
        dataset=str(dataset_dir),
        dataset_sha256=digest,
        model_key=report.model,
        settings=settings,
        settings_key=settings_key,
        limits=limits,
        result=result,
        face_model=model,
        identification=report,
    )


def _groups_section(
    groups: GroupAssignment,
    people: list[str],
    searches: SearchTable,
    weights: IntArray,
    options: EvaluationOptions,
    figures: Mapping[str, float | None],
) -> dict[str, Any]:
    if options.deployment_threshold is not None:
        threshold: float | None = options.deployment_threshold
        source = "given by the evaluator"
    else:
        threshold = figures[fpir_key("threshold_at_fpir", 0.01)]
        source = "this run's threshold at FPIR 0.01"
    if threshold is None:
        return {
            "source": groups.source,
            "sha256": groups.sha256,
            "threshold": None,
            "threshold_source": source,
            "reason": "no deployment threshold: the threshold at FPIR 0.01 is null",
            "groups": [],
            "excluded": [],
        }
    section = group_figures(
        groups,
        people,
        searches.mated_person,
        searches.mate_score < threshold,
        searches.nonmated_person,
        searches.top_score >= threshold,
        weights,
        options.level,
    )
    return {"threshold": threshold, "threshold_source": source, **section}
