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
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session

from candor.evaluation.calibration import (
    CalibrationTable,
    ModelMeasurement,
    calibrate_recipe,
    measure_model,
    rate_at_score,
    score_at_rate,
)
from candor.evaluation.identification import half_of, list_people
from candor.faces import EngineSettings, QualityThresholds, dlib_resnet_model_id
from candor.faces.recipe import Recipe
from candor.index.cohort import COHORT_SIZE, score_name
from candor.store.calibrations import active_calibration_row, add_active_calibration
from candor.store.face_models import (
    BUILTIN_MODEL_NAME,
    ModelCalibration,
    active_model_calibration,
    add_model_calibration,
    face_model_by_key,
)
from candor.workflow.accounts import Actor, policy_in_force
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.models import active_model, model_settings
from candor.workflow.permissions import require_permission

DEFAULT_CALIBRATION = "default-calibration.json"
# The 1:1 verify threshold is set at this false match rate for every model (dlib's 0.926 is
# its threshold at 1e-3 on lfw-dev: bench/verification_lfw.py).
VERIFY_TARGET_FMR: Final = 1e-3
# ModelCalibration.details: what the stored repeat similarity was derived from.
REPEAT_RULE: Final = "repeat_rule"


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
    # The registry name of the calibration's model ("dlib" for the built-in one); None
    # where the caller did not look it up (the meaning then names the model by its key).
    model_name: str | None = None

    @property
    def meaning(self) -> str:
        """One sentence for the candidate list (naming the model: its name and key)."""
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
            "model_name": self.model_name,
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
    table: CalibrationTable,
    gallery_size: int,
    target_fpir: float,
    *,
    model_name: str | None = None,
) -> ThresholdChoice:
    """The threshold giving `target_fpir` for a gallery of `gallery_size` templates.

    model_name: the registry name of the table's model, for the meaning sentence.
    """
    if not 0 < target_fpir < 1:
        raise ValueError(f"target FPIR must be between 0 and 1, not {target_fpir}")
    if not table.points:
        raise ValueError(f"calibration {table.dataset} has no tabulated points")
    size = max(gallery_size, 1)
    rate = -math.expm1(math.log1p(-target_fpir) / size)
    model = table.model_key if model_name is None else f"{model_name} ({table.model_key})"
    described = (
        f"calibration on {table.dataset}: {table.impostor_pairs:,} impostor pairs, model {model}"
    )
    value, extrapolated = score_at_rate(table, rate)
    return ThresholdChoice(
        value, table.score, target_fpir, gallery_size, rate, described, extrapolated, model_name
    )


def active_calibration(
    workflow: Workflow, score: str = "cosine", session: Session | None = None
) -> CalibrationTable:
    """The active calibration of `score` for the engine's model: the workspace's, else shipped.

    session: read in this session's transaction (a governed search decides in one); None
    opens one.
    """
    model_key = workflow.engine.model.key
    if session is None:
        with workflow.workspace.session() as own:
            return _active_calibration(own, model_key, score)
    return _active_calibration(session, model_key, score)


def _active_calibration(session: Session, model_key: str, score: str) -> CalibrationTable:
    row = active_calibration_row(session, model_key, score)
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
        name = model_name(session, model_key)
        raise WorkflowError(
            f"no calibration of {score} scores for model {name} ({model_key}); record one "
            f"with `candor calibrate DIR --model {name}`"
        ) from None


def model_name(session: Session, model_key: str) -> str:
    """The registry name of the model with `model_key` ("dlib" for the built-in model); the
    key itself for a model file the registry does not hold (given in settings directly)."""
    record = face_model_by_key(session, model_key)
    if record is not None:
        return record.name
    return BUILTIN_MODEL_NAME if is_builtin(model_key) else model_key


def is_builtin(model_key: str) -> bool:
    """True for dlib's ResNet as it ships (the model of the shipped calibrations)."""
    return model_key == dlib_resnet_model_id().key


def is_calibrated(session: Session, model_key: str, recipe: Recipe | None = None) -> bool:
    """True when every threshold of the model has a source: an active cosine 1:N calibration
    and an active ModelCalibration of this workspace, or, for dlib, the shipped ones; and,
    for a `recipe` that normalises, the 1:N calibration of its normalised score.

    A model that is not calibrated cannot be made active (`reenrol` asks before switching).
    """
    return calibration_gap(session, model_key, recipe) is None


def calibration_gap(session: Session, model_key: str, recipe: Recipe | None = None) -> str | None:
    """What the model lacks before it can be made active, in words; None when nothing.

    recipe: the workspace's. One that normalises scores searches a gallery of COHORT_SIZE
    templates or more on the normalised score, which then needs this model's table: without
    it, every search would be refused once the gallery grows that large.
    """
    if is_builtin(model_key):
        return None
    if (
        active_calibration_row(session, model_key, "cosine") is None
        or active_model_calibration(session, model_key) is None
    ):
        return "it has no calibration"
    if recipe is not None and recipe.normalised:
        score = score_name(recipe.cohort_k)
        if active_calibration_row(session, model_key, score) is None:
            return (
                f"recipe {recipe.name} judges searches of {COHORT_SIZE:,} templates or more "
                f"on the normalised score ({score}), which has no calibration for it; "
                f"calibrate on a folder with {COHORT_SIZE:,} people in each half"
            )
    return None


@dataclass(frozen=True)
class RepeatSimilarity:
    """A model's repeat-search cosine, derived from the policy's (a cosine of dlib's
    templates) by impostor rate.

    impostor_rate: the share of impostor pairs dlib's templates pass at the policy's value
    (dlib's shipped calibration; NaN where the policy's value is used as it stands);
    `similarity` passes that share of the model's. extrapolated: a calibration does not
    resolve that rate, so the value is its highest tabulated threshold (lower than the true
    one: more searches count as repeats, never fewer).
    """

    similarity: float
    policy_similarity: float
    impostor_rate: float
    extrapolated: bool

    def to_dict(self) -> dict[str, object]:
        """For ModelCalibration.details and audit entries (numbers as text)."""
        return {
            "similarity": f"{self.similarity:.6f}",
            "policy_similarity": f"{self.policy_similarity:g}",
            "impostor_rate": f"{self.impostor_rate:.6e}",
            "extrapolated": self.extrapolated,
        }


def derive_repeat_similarity(policy_similarity: float, table: CalibrationTable) -> RepeatSimilarity:
    """The cosine at which `table`'s model passes the share of impostor pairs that dlib's
    templates pass at `policy_similarity` (by dlib's shipped cosine calibration)."""
    reference = shipped_calibration(dlib_resnet_model_id().key)
    rate, beyond_reference = rate_at_score(reference, policy_similarity)
    value, beyond_table = score_at_rate(table, rate)
    return RepeatSimilarity(value, policy_similarity, rate, beyond_reference or beyond_table)


@dataclass(frozen=True)
class Recalibration:
    """What `recalibrate` recorded for one model.

    cosine: the 1:N cosine calibration; normalised: the recipe's, or None (`normalised_note`
    says why). measurement: the model's 1:1 point and sharpness figures; model_calibration:
    the ModelCalibration row's id, or None when the folder could not resolve the 1:1
    threshold (`model_note` says so: the model then stays uncalibrated).
    """

    model_name: str
    cosine: CalibrationTable
    normalised: CalibrationTable | None
    normalised_note: str | None
    measurement: ModelMeasurement
    repeat: RepeatSimilarity
    model_calibration: int | None
    model_note: str | None


def recalibrate(
    workflow: Workflow,
    actor: Actor,
    dataset: Path,
    *,
    model: str | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Recalibration:
    """Measure a model's calibrations on a labelled folder and make them its active ones
    (each audited as `calibration.recorded`, naming the model).

    model: the registry name ("dlib" or a confirmed model); None: the active model.
    Recorded: the cosine 1:N calibration; the recipe's normalised one when the recipe
    normalises and each half of the folder has the COHORT_SIZE gallery photos a cohort
    needs (else the earlier or shipped normalised calibration stays, and the note says
    why); and the model's `ModelCalibration`: its 1:1 threshold at VERIFY_TARGET_FMR with
    the rates measured, its repeat-search similarity and its quality gate's sharpness
    limit (docs/scores.md gives each rule). The folder's photos are processed in scratch
    space (the evaluation cache), never enrolled. progress(done, total) covers the run.
    """
    require_permission(workflow, actor, "evaluation.run")
    with workflow.workspace.session() as session:
        name = model if model is not None else active_model(session).name
        settings = model_settings(session, name, workflow.base_settings)
        policy = policy_in_force(session)
    # dlib's own limit is the reference every other model's is matched to.
    dlib_limit = QualityThresholds().min_sharpness
    reference: EngineSettings | None = None
    if name != BUILTIN_MODEL_NAME:
        reference = replace(settings, embedder_model=None, quality=QualityThresholds())
    # One bar over the run, in photos: this model's extraction, dlib's (to match the
    # sharpness limit), then the recipe's two halves (about the folder's photos again).
    try:
        people = list_people(dataset)
    except ValueError as error:
        raise WorkflowError(str(error)) from None
    photos = sum(len(listed) for _, listed in people)
    # The normalised score's cohort is COHORT_SIZE of the other half's gallery (one photo a
    # person): a folder with fewer people in a half is told so before any photo is read
    # for it, not after its templates are made with the recipe's views.
    halves = Counter(half_of(name) for name, _ in people)
    cohort_short: str | None = None
    if min(halves["tune"], halves["report"]) < COHORT_SIZE:
        cohort_short = (
            f"its cohort needs {COHORT_SIZE:,} people in each half of the folder; "
            f"{dataset} has {halves['tune']:,} and {halves['report']:,}"
        )
    normalising = workflow.recipe.normalised and cohort_short is None
    extractions = photos * (1 if reference is None else 2)
    bar = extractions + (photos if normalising else 0)

    def extraction_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(done, bar)

    def recipe_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(extractions + done * photos // max(total, 1), bar)

    try:
        measured = measure_model(
            dataset,
            settings,
            reference=reference,
            reference_min_sharpness=dlib_limit,
            target_fmr=VERIFY_TARGET_FMR,
            workers=workers,
            progress=extraction_progress,
        )
    except ValueError as error:
        raise WorkflowError(str(error)) from None
    cosine = measured.cosine
    gated = replace(
        settings, quality=replace(settings.quality, min_sharpness=measured.min_sharpness)
    )
    normalised: CalibrationTable | None = None
    note: str | None = None
    if workflow.recipe.normalised:
        try:
            if cohort_short is not None:
                raise ValueError(cohort_short)
            normalised = calibrate_recipe(
                dataset, workflow.recipe, gated, workers=workers, progress=recipe_progress
            )
        except ValueError as error:
            note = f"the normalised score was not calibrated: {error}"
            if name != BUILTIN_MODEL_NAME:
                # dlib has the shipped table to fall back on; another model has none.
                note += (
                    f"; searches of a gallery of {COHORT_SIZE:,} templates or more with model "
                    f"{name} need it, and the model is not made active without it: calibrate "
                    "on a folder with that many people in each half"
                )
    if progress is not None:
        progress(bar, bar)
    # With no policy in force no search runs; the rule is then stated for dlib's value of
    # the example policies, and applied again to the policy's value at each search.
    similarity = policy.repeat.similarity if policy is not None else _EXAMPLE_REPEAT_SIMILARITY
    repeat = derive_repeat_similarity(similarity, cosine)
    model_note: str | None = None
    with workflow.workspace.session() as session, session.begin():
        _store_calibration(session, workflow, actor, cosine, name)
        if normalised is not None:
            _store_calibration(session, workflow, actor, normalised, name)
        row_id: int | None = None
        if measured.verify is None:
            model_note = (
                f"the 1:1 threshold at a false match rate of {VERIFY_TARGET_FMR:g} needs at "
                f"least {math.ceil(2 / VERIFY_TARGET_FMR):,} impostor pairs and one mated "
                f"pair of usable photos; model {name} keeps its earlier thresholds"
            )
        else:
            row_id = _store_model_calibration(session, workflow, actor, name, measured, repeat)
    return Recalibration(name, cosine, normalised, note, measured, repeat, row_id, model_note)


# The repeat similarity of the example policies (src/candor/policy/examples): the value a
# ModelCalibration states its rule for when no policy is in force yet.
_EXAMPLE_REPEAT_SIMILARITY: Final = 0.95


def _store_model_calibration(
    session: Session,
    workflow: Workflow,
    actor: Actor,
    name: str,
    measured: ModelMeasurement,
    repeat: RepeatSimilarity,
) -> int:
    verify = measured.verify
    assert verify is not None  # the caller stores none without it
    cosine = measured.cosine
    details: dict[str, object] = {
        "model_name": name,
        "verify": {
            "target_fmr": f"{verify.target_fmr:g}",
            "mated_pairs_without_template": verify.mated_pairs_without_template,
        },
        REPEAT_RULE: repeat.to_dict(),
        "sharpness": {
            "reference_min_sharpness": f"{QualityThresholds().min_sharpness:g}",
            "reference_refused_share": f"{measured.reference_refused_share:.6f}",
            "refused_share": f"{measured.refused_share:.6f}",
            "faces": measured.faces,
        },
        "templates": cosine.templates,
    }
    row = add_model_calibration(
        session,
        ModelCalibration(
            model_key=cosine.model_key,
            dataset=cosine.dataset,
            dataset_sha256=cosine.dataset_sha256,
            verify_threshold=verify.threshold,
            verify_false_match_rate=verify.false_match_rate,
            verify_false_non_match_rate=verify.false_non_match_rate,
            impostor_pairs=verify.impostor_pairs,
            mated_pairs=verify.mated_pairs,
            repeat_similarity=repeat.similarity,
            min_sharpness=measured.min_sharpness,
            recipe=None,  # measured by `candor evaluate` per model, not here
            details=details,
            created_at=workflow.now(),
            created_by=actor.user_id,
        ),
    )
    record(
        session,
        workflow,
        actor.username,
        "calibration.recorded",
        {"model_calibration": row.id},
        {
            "model": cosine.model_key,
            "model_name": name,
            "dataset": cosine.dataset,
            "dataset_sha256": cosine.dataset_sha256,
            "verify_threshold": f"{verify.threshold:.6f}",
            "verify_false_match_rate": f"{verify.false_match_rate:.6e}",
            "verify_false_non_match_rate": f"{verify.false_non_match_rate:.6f}",
            "impostor_pairs": verify.impostor_pairs,
            "mated_pairs": verify.mated_pairs,
            "repeat_similarity": f"{repeat.similarity:.6f}",
            "min_sharpness": f"{measured.min_sharpness:.6g}",
        },
    )
    return row.id


def _store_calibration(
    session: Session, workflow: Workflow, actor: Actor, table: CalibrationTable, name: str
) -> None:
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
            "model_name": name,
            "score": table.score,
            "templates": table.templates,
            "impostor_pairs": table.impostor_pairs,
        },
    )
