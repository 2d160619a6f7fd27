"""`candor evaluate --compare` and `--model`: recipes or face models side by side on the
same people, honestly.

A comparison has arms along one axis: named recipes with one face model (`--compare`),
or face models with one recipe (`--model`); the machinery is the same, a model is one
more thing an arm can vary. Every arm runs the same protocol on the same people (one
half of the folder, or all of it). Each figure gets a bootstrap interval over people,
and each arm after the first is compared with the first on the same resamples of people
(a paired bootstrap), so the interval of a difference is narrower than the two figures'
intervals would suggest, and a difference is called:
- "better" only when its whole interval lies on the good side of zero;
- "worse" when its whole interval lies on the bad side (the arm is then not "not
  worse": an accuracy figure dropped by more than its noise);
- "within noise" otherwise.
Costs are measured, not assumed: each arm's enrolment and search templates are made
afresh (no cache) for a sample of the folder's photos and timed, and the score
normalisation is timed over the run's probes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from candor.evaluation.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    people_weights,
    percentile_interval,
    unit_weights,
)
from candor.evaluation.identification import (
    Half,
    IdentificationReport,
    Protocol,
    list_people,
    people_of_half,
    run_identification_protocol,
)
from candor.evaluation.report_card import (
    Cohort,
    ModelLabel,
    SearchTable,
    fpir_key,
    identification_figures,
    other_half_cohort,
)
from candor.faces import EngineSettings, FaceEngine
from candor.faces.recipe import Recipe, Views
from candor.images import ImageError, load_image
from candor.index.cohort import COHORT_SIZE, CohortNormaliser

COMPARED_FPIRS = (0.01, 0.05)
# figure key -> True when higher is better
FIGURES: dict[str, bool] = {
    "rank1": True,
    "rank10": True,
    **{fpir_key("fnir_at_fpir", target): False for target in COMPARED_FPIRS},
}
THRESHOLDS = tuple(fpir_key("threshold_at_fpir", target) for target in COMPARED_FPIRS)
TIMING_SAMPLE = 8

# progress(stage, done, total); stage names an arm and what it is doing.
CompareProgress = Callable[[str, int, int], None]
# What the arms of a comparison differ in.
Axis = Literal["recipe", "model"]


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a name, the recipe, and the engine (face model) it runs."""

    name: str
    recipe: Recipe
    settings: EngineSettings
    # The face model as a report card names it (None: not named, as in a recipe comparison).
    model: ModelLabel | None = None


@dataclass(frozen=True)
class Difference:
    """An arm's figure minus the first arm's, with its paired interval and verdict."""

    value: float | None
    interval: tuple[float, float] | None
    verdict: str  # "better", "worse", "within noise", or "undefined"


@dataclass(frozen=True)
class RecipeCost:
    """Measured milliseconds per photo to make a template, and per search to normalise."""

    enrol_ms: float | None
    search_ms: float | None
    normalise_ms: float | None
    timed_photos: int


@dataclass(frozen=True)
class RecipeResult:
    """One arm's figures, intervals, differences from the first arm, and costs."""

    recipe: Recipe
    report: IdentificationReport
    figures: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None]
    differences: dict[str, Difference]
    cost: RecipeCost
    # The arm's name (the recipe's, or the model's) and its face model where named.
    name: str = ""
    model: ModelLabel | None = None

    @property
    def label(self) -> str:
        """What the arm is called in tables: its name, else its recipe's."""
        return self.name or self.recipe.name


@dataclass(frozen=True)
class Comparison:
    """The arms of one `--compare` (recipes) or `--model` (models) run, the first being
    the reference."""

    dataset: str
    protocol: Protocol
    half: Half | None
    people: int
    replicates: int
    level: float
    results: tuple[RecipeResult, ...]
    axis: Axis = "recipe"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: what `candor evaluate --compare/--model --json` prints.

        The arms are listed under "recipes" or "models", by the axis compared.
        """
        arms = "recipes" if self.axis == "recipe" else "models"
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "half": self.half,
            "people": self.people,
            "compared": arms,
            "bootstrap": {
                "resampled": f"people, with replacement, the same resamples for every {self.axis}",
                "replicates": self.replicates,
                "level": self.level,
            },
            "reference": self.results[0].label if self.results else None,
            arms: [_result_dict(result) for result in self.results],
        }


def _result_dict(result: RecipeResult) -> dict[str, Any]:
    report = result.report
    return {
        "name": result.label,
        "model": report.model,
        "face_model": None if result.model is None else result.model.to_dict(),
        "recipe_name": result.recipe.name,
        "description": result.recipe.description,
        "recipe": result.recipe.key,
        "score": report.score,
        "cohort": report.cohort,
        "gallery_size": report.gallery_size,
        "gallery_photos": report.gallery_photos,
        "failed_to_enrol": report.failed_to_enrol,
        "mated_searches": report.mated_searches,
        "nonmated_searches": report.non_mated_searches,
        "mated_probes_without_template": report.mated_probes_without_template,
        "nonmated_probes_without_template": report.non_mated_probes_without_template,
        "figures": result.figures,
        "ci": {key: None if ci is None else list(ci) for key, ci in result.intervals.items()},
        "differences": {
            key: {
                "value": diff.value,
                "ci": None if diff.interval is None else list(diff.interval),
                "verdict": diff.verdict,
            }
            for key, diff in result.differences.items()
        },
        "cost_ms": {
            "enrol_per_photo": result.cost.enrol_ms,
            "search_per_probe": result.cost.search_ms,
            "normalise_per_search": result.cost.normalise_ms,
            "timed_photos": result.cost.timed_photos,
        },
    }


def _verdict(interval: tuple[float, float] | None, higher_is_better: bool) -> str:
    if interval is None:
        return "undefined"
    low, high = interval
    if low > 0.0:
        return "better" if higher_is_better else "worse"
    if high < 0.0:
        return "worse" if higher_is_better else "better"
    return "within noise"


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _time_templates(
    paths: Sequence[Path], settings: EngineSettings, views: Views
) -> tuple[float | None, int]:
    """Mean ms per photo to decode, detect, choose and make a template, uncached."""
    engine = FaceEngine(settings)
    timed: list[float] = []
    for path in paths:
        try:
            image = load_image(path)
        except (ImageError, OSError):
            continue
        started = time.perf_counter()
        faces, chosen = engine.chosen_face(image)
        if chosen is not None:
            engine.face_template(image, faces[chosen], views)
            timed.append(time.perf_counter() - started)
    if not timed:
        return None, 0
    return 1000.0 * float(np.mean(timed)), len(timed)


def _time_normalisation(report: IdentificationReport, cohort: Cohort | None, k: int) -> float:
    """Mean ms to normalise one search's scores against a cohort of the deployment's size."""
    if cohort is not None:
        vectors = cohort.vectors
    else:
        vectors = np.vstack(
            [photo.vector for photo in report.photos if photo.vector is not None]
        ).astype(np.float32)
    if len(vectors) > COHORT_SIZE:
        vectors = vectors[:COHORT_SIZE]
    normaliser = CohortNormaliser(vectors, k)
    probes = [photo.vector for photo in report.photos if photo.vector is not None][:200]
    started = time.perf_counter()
    for probe in probes:
        normaliser.offset(probe)
    return 1000.0 * (time.perf_counter() - started) / max(len(probes), 1)


def compare_recipes(
    dataset_dir: Path,
    recipes: Sequence[Recipe],
    settings: EngineSettings | None = None,
    *,
    protocol: Protocol = "foundation",
    half: Half | None = None,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    candidate_list_length: int = 50,
    cache_dir: Path | None = None,
    workers: int = 1,
    timing_sample: int = TIMING_SAMPLE,
    progress: CompareProgress | None = None,
) -> Comparison:
    """Run each recipe on the same people and compare them with the first (module doc)."""
    if not recipes:
        raise ValueError("name at least one recipe to compare")
    base_settings = settings or EngineSettings()
    return compare_arms(
        dataset_dir,
        [Arm(recipe.name, recipe, base_settings) for recipe in recipes],
        axis="recipe",
        protocol=protocol,
        half=half,
        replicates=replicates,
        seed=seed,
        level=level,
        candidate_list_length=candidate_list_length,
        cache_dir=cache_dir,
        workers=workers,
        timing_sample=timing_sample,
        progress=progress,
    )


def compare_arms(
    dataset_dir: Path,
    arms: Sequence[Arm],
    *,
    axis: Axis,
    protocol: Protocol = "foundation",
    half: Half | None = None,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    candidate_list_length: int = 50,
    cache_dir: Path | None = None,
    workers: int = 1,
    timing_sample: int = TIMING_SAMPLE,
    progress: CompareProgress | None = None,
    reports: Sequence[IdentificationReport | None] | None = None,
) -> Comparison:
    """Run each arm on the same people and compare them with the first (module doc).

    reports: per arm, its identification already run with these options (an evaluation's
    report card of the arm, `Evaluation.identification`), used instead of running it again;
    None for an arm runs it.
    """
    if not arms:
        raise ValueError(f"name at least one {axis} to compare")
    if reports is not None and len(reports) != len(arms):
        raise ValueError(f"{len(reports)} reports for {len(arms)} arms")
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"a {axis} is named twice: {', '.join(names)}")
    if not dataset_dir.is_dir():
        raise ValueError(f"{dataset_dir} is not a folder")
    people = people_of_half(dataset_dir, half) if half is not None else None
    listed = list_people(dataset_dir, people)
    if len(listed) < 2:
        raise ValueError(f"{dataset_dir} holds fewer than two person folders with photos")
    names_listed = [name for name, _ in listed]
    ones = unit_weights(len(names_listed))
    # One draw of resampled people for every arm: the paired bootstrap.
    weights = people_weights(len(names_listed), replicates, seed)
    timing_paths = [photos[0] for _, photos in listed[:: max(1, len(listed) // 50)]]
    timing_paths = timing_paths[:timing_sample]

    results: list[RecipeResult] = []
    reference: dict[str, np.ndarray] | None = None
    for number, arm in enumerate(arms):
        recipe = arm.recipe
        engine = replace(arm.settings, fallback=recipe.fallback)

        def step(stage: str, arm_name: str = arm.name) -> Callable[[int, int], None]:
            def advance(done: int, total: int) -> None:
                if progress is not None:
                    progress(f"{arm_name}: {stage}", done, total)

            return advance

        cohort: Cohort | None = None
        if recipe.normalised and half is not None:
            cohort = other_half_cohort(
                dataset_dir,
                half,
                engine,
                recipe,
                cache_dir,
                workers=workers,
                progress=step("cohort"),
            )
        earlier = None if reports is None else reports[number]
        if earlier is not None:
            report = earlier
        else:
            report = run_identification_protocol(
                dataset_dir,
                engine,
                cache_dir,
                people=people,
                workers=workers,
                candidate_list_length=candidate_list_length,
                fpir_targets=COMPARED_FPIRS,
                progress=step("templates"),
                recipe=recipe,
                protocol=protocol,
                cohort=None if cohort is None else cohort.vectors,
                cohort_label=None if cohort is None else cohort.label,
            )
        searches = SearchTable.from_report(report, names_listed)
        point = identification_figures(searches, ones, COMPARED_FPIRS)
        replicated = identification_figures(searches, weights, COMPARED_FPIRS)
        figures: dict[str, float | None] = {}
        intervals: dict[str, tuple[float, float] | None] = {}
        for key in (*FIGURES, *THRESHOLDS):
            figures[key] = _number(float(point[key][0]))
            intervals[key] = (
                None if figures[key] is None else percentile_interval(replicated[key], level)[0]
            )
        differences: dict[str, Difference] = {}
        if reference is not None:
            for key, higher_is_better in FIGURES.items():
                delta = replicated[key] - reference[key]
                value = figures[key]
                base = results[0].figures[key]
                shown = None if value is None or base is None else value - base
                interval = percentile_interval(delta, level)[0]
                differences[key] = Difference(shown, interval, _verdict(interval, higher_is_better))
        else:
            reference = {key: replicated[key] for key in FIGURES}
        step("timing")(0, 2)
        enrol_ms, timed = _time_templates(timing_paths, engine, recipe.enrol_views)
        search_ms, _ = _time_templates(timing_paths, engine, recipe.search_views)
        step("timing")(2, 2)
        normalise_ms = (
            _time_normalisation(report, cohort, recipe.cohort_k)
            if recipe.cohort_k is not None
            else None
        )
        results.append(
            RecipeResult(
                recipe=recipe,
                report=report,
                figures=figures,
                intervals=intervals,
                differences=differences,
                cost=RecipeCost(enrol_ms, search_ms, normalise_ms, timed),
                name=arm.name,
                model=arm.model,
            )
        )
    return Comparison(
        dataset=str(dataset_dir),
        protocol=protocol,
        half=half,
        people=len(names_listed),
        replicates=replicates,
        level=level,
        results=tuple(results),
        axis=axis,
    )
