"""The 1:N threshold for the gallery as it is now, from a target FPIR and a calibration.

The policy sets a target false positive identification rate (FPIR): the share of
searches for someone not enrolled that return a false candidate. With a gallery of N
templates and a per-comparison false match rate p, FPIR = 1 - (1 - p)^N if comparisons
are independent, so p = 1 - (1 - FPIR)^(1/N); the threshold is the calibration's score
at that p, interpolated in log(p). As the gallery grows, p falls and the threshold rises,
so the threshold keeps its meaning. Where p is below what the calibration resolves, the
highest tabulated threshold is used and the choice says it is an extrapolation. How well
this extrapolation model holds was measured on sub-galleries of 250 templates up to a
full half of lfw-dev (bench/threshold_by_gallery_size.py, docs/scores.md).

A threshold applies to one kind of score (`CalibrationTable.score`): the cosine, or the
recipe's cohort-normalised score when the gallery is large enough to be its own cohort
(`Workflow.cohort_normaliser`). The calibration used is always of the score in use.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from sqlalchemy.orm import Session

from candor.evaluation.calibration import CalibrationTable, calibrate_folder, calibrate_recipe
from candor.store.calibrations import active_calibration_row, add_active_calibration
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.permissions import require_permission

DEFAULT_CALIBRATION = "default-calibration.json"


@dataclass(frozen=True)
class ThresholdChoice:
    """A 1:N threshold on one kind of score, and the facts that give it meaning."""

    value: float
    score: str
    target_fpir: float
    gallery_size: int
    per_comparison_fmr: float
    calibration: str
    extrapolated: bool

    @property
    def meaning(self) -> str:
        """One sentence for the candidate list."""
        per_hundred = self.target_fpir * 100
        applies_to = (
            f"cosine {self.value:.4f}"
            if self.score == "cosine"
            else f"normalised score {self.value:.4f}: the cosine minus the probe's mean "
            "score on the gallery's cohort; the cosines are shown"
        )
        sentence = (
            f"at this threshold ({applies_to}), about {per_hundred:.2g} in 100 searches "
            f"for someone not enrolled return a false candidate, for a gallery of "
            f"{self.gallery_size:,} templates ({self.calibration})"
        )
        if self.extrapolated:
            sentence += (
                "; the gallery is larger than the calibration resolves, so the threshold is "
                "the calibration's highest and the true rate may differ"
            )
        return sentence

    def to_dict(self) -> dict[str, object]:
        """For the search record and its audit entry (numbers as text: no floats in audit)."""
        return {
            "value": f"{self.value:.6f}",
            "score": self.score,
            "target_fpir": f"{self.target_fpir:g}",
            "gallery_size": self.gallery_size,
            "per_comparison_fmr": f"{self.per_comparison_fmr:.3e}",
            "calibration": self.calibration,
            "extrapolated": self.extrapolated,
        }


@functools.cache
def shipped_calibrations() -> tuple[CalibrationTable, ...]:
    """The calibrations that ship with Candor (dlib ResNet on lfw-dev; see bench/).

    Read once per process: they are package data and cannot change while it runs.
    """
    folder = files("candor.workflow").joinpath("data")
    return tuple(
        CalibrationTable.from_json(entry.read_text())
        for entry in sorted(folder.iterdir(), key=lambda item: item.name)
        if entry.name.startswith("default-calibration") and entry.name.endswith(".json")
    )


def shipped_calibration(model_key: str | None = None, score: str = "cosine") -> CalibrationTable:
    """The shipped calibration of `score` (and of `model_key` when given).

    LookupError when none ships for them.
    """
    for table in shipped_calibrations():
        if table.score == score and (model_key is None or table.model_key == model_key):
            return table
    raise LookupError(f"no calibration of {score} scores ships for model {model_key or 'any'}")


def threshold_for_gallery(
    table: CalibrationTable, gallery_size: int, target_fpir: float
) -> ThresholdChoice:
    """The cosine threshold giving `target_fpir` for a gallery of `gallery_size` templates."""
    if not 0 < target_fpir < 1:
        raise ValueError(f"target FPIR must be between 0 and 1, not {target_fpir}")
    if not table.points:
        raise ValueError(f"calibration {table.dataset} has no tabulated points")
    size = max(gallery_size, 1)
    rate = -math.expm1(math.log1p(-target_fpir) / size)
    described = (
        f"calibration on {table.dataset}: {table.impostor_pairs:,} impostor pairs, "
        f"model {table.model_key}"
    )
    points = table.points  # rate falling, threshold rising
    if rate >= points[0][0]:
        return ThresholdChoice(
            points[0][1], table.score, target_fpir, gallery_size, rate, described, False
        )
    if rate <= points[-1][0]:
        extrapolated = rate < points[-1][0]
        return ThresholdChoice(
            points[-1][1], table.score, target_fpir, gallery_size, rate, described, extrapolated
        )
    for (high_rate, low_threshold), (low_rate, high_threshold) in itertools.pairwise(points):
        if low_rate <= rate <= high_rate:
            weight = (math.log(high_rate) - math.log(rate)) / (
                math.log(high_rate) - math.log(low_rate)
            )
            value = low_threshold + weight * (high_threshold - low_threshold)
            return ThresholdChoice(
                value, table.score, target_fpir, gallery_size, rate, described, False
            )
    raise AssertionError("unreachable: the rate lies within the table")


def active_calibration(
    workflow: Workflow, score: str = "cosine", session: Session | None = None
) -> CalibrationTable:
    """The active calibration of `score` for the engine's model: the workspace's, else shipped.

    session: read in this session's transaction (a governed search decides in one); None
    opens one.
    """
    model_key = workflow.engine.model.key
    if session is not None:
        row = active_calibration_row(session, model_key, score)
    else:
        with workflow.workspace.session() as own:
            row = active_calibration_row(own, model_key, score)
    if row is not None:
        return CalibrationTable(
            model_key=row.model_key,
            dataset=row.dataset,
            dataset_sha256=row.dataset_sha256,
            templates=row.templates,
            impostor_pairs=row.impostor_pairs,
            points=tuple((float(rate), float(value)) for rate, value in row.points),
            score=row.score,
        )
    try:
        return shipped_calibration(model_key, score)
    except LookupError:
        raise WorkflowError(
            f"no calibration of {score} scores for model {model_key}; record one with "
            "`candor calibrate DIR`"
        ) from None


@dataclass(frozen=True)
class Recalibration:
    """What `recalibrate` recorded: the cosine calibration, and the normalised one or why not."""

    cosine: CalibrationTable
    normalised: CalibrationTable | None
    normalised_note: str | None


def recalibrate(
    workflow: Workflow,
    actor: Actor,
    dataset: Path,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Recalibration:
    """Measure calibrations on a labelled folder and make them the active ones (audited).

    Always the cosine calibration (what a gallery smaller than a cohort is judged by);
    also the recipe's normalised score when the recipe normalises and each half of the
    folder has the COHORT_SIZE gallery photos a cohort needs (else the shipped or
    earlier normalised calibration stays active, and the note says why).
    The folder's photos are processed in scratch space (the evaluation cache), never
    enrolled; only the tables of thresholds are stored, each with its audit entry.
    """
    require_permission(workflow, actor, "evaluation.run")
    cosine = calibrate_folder(dataset, workflow.settings, workers=workers, progress=progress)
    normalised: CalibrationTable | None = None
    note: str | None = None
    if workflow.recipe.normalised:
        try:
            normalised = calibrate_recipe(
                dataset, workflow.recipe, workflow.settings, workers=workers, progress=progress
            )
        except ValueError as error:
            note = f"the normalised score was not calibrated: {error}"
    _store_calibration(workflow, actor, cosine)
    if normalised is not None:
        _store_calibration(workflow, actor, normalised)
    return Recalibration(cosine, normalised, note)


def _store_calibration(workflow: Workflow, actor: Actor, table: CalibrationTable) -> None:
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        row = add_active_calibration(
            session,
            model_key=table.model_key,
            score=table.score,
            dataset=table.dataset,
            dataset_sha256=table.dataset_sha256,
            impostor_pairs=table.impostor_pairs,
            templates=table.templates,
            points=[[rate, value] for rate, value in table.points],
            created_at=workflow.now(),
            created_by=actor.user_id,
        )
        record(
            session,
            workflow,
            actor.username,
            "calibration.recorded",
            {"calibration": row.id},
            {
                "dataset": table.dataset,
                "dataset_sha256": table.dataset_sha256,
                "model": table.model_key,
                "score": table.score,
                "templates": table.templates,
                "impostor_pairs": table.impostor_pairs,
            },
        )
