"""`candor evaluate`: the accuracy harness as an audited action, or in scratch space.

In a workspace, an evaluation is run by an admin or an auditor: the policy permission
`evaluation.run`, or `audit.read` (the example policies give `evaluation.run` to admins
only, and an auditor checking the agency's accuracy claims must be able to measure them).
The permission is checked before any photo is read. The labelled folder is processed in
scratch space (the evaluation's template cache), never enrolled; only the report card is
stored, and it is stored in the same transaction as its audit entry `evaluation.run`
(objects: the report card; details: the folder's path and content hash, the settings
key, the model, and every figure as text).

In scratch space (`evaluate_scratch`) nothing is opened, needed or recorded: no
workspace, no login, no audit entry.

Face models: a report card names the model that made its templates (registry name, key,
embedding size, licence as declared). `run_model_comparison` evaluates several of the
workspace's models (`--model`) on the same people: one report card each, stored and
audited like any evaluation, and the comparison itself (`compare_arms` with a model on
each arm, paired bootstrap) audited as `evaluation.compared`. `evaluate_model_file_scratch`
evaluates one ONNX file that was never added (`--scratch --model-file`), recording nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from candor.evaluation.bootstrap import DEFAULT_SEED
from candor.evaluation.compare import (
    Arm,
    CompareProgress,
    Comparison,
    compare_arms,
    compare_recipes,
)
from candor.evaluation.det_plot import write_det_svg
from candor.evaluation.groups import GroupAssignment, GroupsFileError, read_groups_file
from candor.evaluation.identification import Half, Protocol
from candor.evaluation.report_card import (
    DEFAULT_LIMITS,
    UNSTATED_LICENCE,
    Evaluation,
    EvaluationOptions,
    EvaluationProgress,
    ModelLabel,
    evaluate_folder,
)
from candor.faces import EngineSettings, FaceEngine
from candor.faces.onnx_models import OnnxModelError, inspect_model_file
from candor.faces.recipe import RECIPES, Recipe, recipe_named
from candor.faces.registry import ModelId
from candor.policy import Policy, has_permission
from candor.store import ReportCard, Workspace
from candor.store.evaluation import add_report_card
from candor.store.face_models import BUILTIN_MODEL_NAME, face_model_by_key
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.models import model_record_view, model_settings
from candor.workflow.permissions import PermissionDeniedError, require_policy

EVALUATOR_PERMISSIONS = ("evaluation.run", "audit.read")
AUDIT_ACTION = "evaluation.run"

COMPARE_ACTION = "evaluation.compared"

__all__ = [
    "AUDIT_ACTION",
    "COMPARE_ACTION",
    "DEFAULT_LIMITS",
    "DEFAULT_SEED",
    "EVALUATOR_PERMISSIONS",
    "RECIPES",
    "CompareProgress",
    "Comparison",
    "Evaluation",
    "EvaluationError",
    "EvaluationOptions",
    "EvaluationProgress",
    "ModelComparison",
    "RecordedEvaluation",
    "compare_scratch",
    "evaluate_model_file_scratch",
    "evaluate_scratch",
    "recipes_named",
    "require_evaluator",
    "run_comparison",
    "run_evaluation",
    "run_model_comparison",
    "write_det_svg",
]

# How a file evaluated in scratch space is named: it was never added, so nobody declared
# a licence for it, and its templates are keyed by these bytes only.
SCRATCH_MODEL_VERSION = "scratch"
SCRATCH_LICENCE = "not declared (a file evaluated in scratch space, never added)"


class EvaluationError(WorkflowError):
    """The folder or the groups file cannot be evaluated; the message says why."""


@dataclass(frozen=True)
class RecordedEvaluation:
    """An evaluation stored as a report card, and the audit entry that records it."""

    evaluation: Evaluation
    report_card_id: int
    audit_seq: int


def require_evaluator(workflow: Workflow, actor: Actor) -> Policy:
    """The active policy, if the actor may evaluate (admin or auditor; see module doc)."""
    policy = require_policy(workflow)
    if actor.disabled:
        raise PermissionDeniedError(f"{actor.username} is disabled")
    if any(has_permission(policy, actor.roles, name) for name in EVALUATOR_PERMISSIONS):
        return policy
    roles = ", ".join(sorted(actor.roles)) or "no role"
    raise PermissionDeniedError(
        f"{actor.username} ({roles}) may not evaluation.run: admins and auditors evaluate"
    )


def _groups(groups_file: Path | None) -> GroupAssignment | None:
    if groups_file is None:
        return None
    try:
        return read_groups_file(groups_file)
    except GroupsFileError as error:
        raise EvaluationError(str(error)) from error


def _evaluate(
    dataset: Path,
    settings: EngineSettings | None,
    options: EvaluationOptions,
    groups: GroupAssignment | None,
    workers: int,
    progress: EvaluationProgress | None,
    model: ModelLabel | None = None,
) -> Evaluation:
    try:
        return evaluate_folder(
            dataset,
            settings,
            options,
            groups=groups,
            workers=workers,
            progress=progress,
            model=model,
        )
    except ValueError as error:
        raise EvaluationError(str(error)) from error


def evaluate_scratch(
    dataset: Path,
    *,
    settings: EngineSettings | None = None,
    options: EvaluationOptions | None = None,
    groups_file: Path | None = None,
    workers: int = 1,
    progress: EvaluationProgress | None = None,
) -> Evaluation:
    """Evaluate a labelled folder without any workspace: nothing is recorded anywhere."""
    groups = _groups(groups_file)
    return _evaluate(dataset, settings, options or EvaluationOptions(), groups, workers, progress)


def _audit_figure(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    raise TypeError(f"{type(value).__name__} is not a figure")


def _label(session: Session, model: ModelId) -> ModelLabel:
    """How a report card names `model`: by its registry row, as the built-in model, or
    (an engine given explicitly, never added) by its own name with no licence stated."""
    record = face_model_by_key(session, model.key)
    if record is not None:
        return ModelLabel(record.name, record.model_key, record.dimension, record.licence)
    builtin = model_record_view(session, BUILTIN_MODEL_NAME, check_file=False)
    if builtin.model_key == model.key:
        return ModelLabel(BUILTIN_MODEL_NAME, model.key, model.dimension, builtin.licence)
    return ModelLabel(model.name, model.key, model.dimension, UNSTATED_LICENCE)


_AUDITED_FIGURES = (
    "gallery_size",
    "failed_to_enrol",
    "mated_searches",
    "nonmated_searches",
    "genuine_pairs",
    "impostor_pairs",
    "rank1",
    "rank10",
    "fnir_at_fpir_0.01",
    "fnir_at_fpir_0.05",
    "fnir_at_fpir_0.003",
    "threshold_at_fpir_0.01",
    "threshold_at_fpir_0.05",
    "threshold_at_fpir_0.003",
    "fnmr_at_fmr_0.001",
    "fnmr_at_fmr_0.0001",
)


def _store_report_card(
    session: Session,
    workspace: Workspace,
    actor: Actor,
    dataset: Path,
    evaluation: Evaluation,
    groups: GroupAssignment | None,
) -> tuple[int, int]:
    """Store the report card with its `evaluation.run` audit entry: (card id, entry seq)."""
    result = evaluation.result
    details: dict[str, object] = {
        "dataset": str(dataset.absolute()),
        "dataset_sha256": evaluation.dataset_sha256,
        "settings": evaluation.settings_key,
        "model": evaluation.model_key,
        "figures": {key: _audit_figure(result[key]) for key in _AUDITED_FIGURES},
    }
    if evaluation.face_model is not None:
        details["model_name"] = evaluation.face_model.name
    if groups is not None:
        details["groups_file_sha256"] = groups.sha256
    row = add_report_card(
        session,
        ReportCard(
            created_at=datetime.now(UTC),
            created_by=actor.user_id,
            dataset=evaluation.dataset,
            dataset_sha256=evaluation.dataset_sha256,
            settings=evaluation.settings,
            model_key=evaluation.model_key,
            result=result,
            dataset_limits=evaluation.limits,
        ),
    )
    seq = record(session, workspace, actor.username, AUDIT_ACTION, {"report_card": row.id}, details)
    return row.id, seq


def run_evaluation(
    workflow: Workflow,
    actor: Actor,
    dataset: Path,
    *,
    options: EvaluationOptions | None = None,
    groups_file: Path | None = None,
    workers: int = 1,
    progress: EvaluationProgress | None = None,
) -> RecordedEvaluation:
    """Evaluate a labelled folder and store its report card, audited (see module doc)."""
    require_evaluator(workflow, actor)
    groups = _groups(groups_file)
    workspace = workflow.workspace
    with workspace.session() as session:
        label = _label(session, workflow.engine.model)
    evaluation = _evaluate(
        dataset.absolute(),
        workflow.settings,
        replace(options or EvaluationOptions(), recipe=workflow.recipe),
        groups,
        workers,
        progress,
        label,
    )
    with workspace.session() as session, session.begin():
        report_card_id, seq = _store_report_card(
            session, workspace, actor, dataset, evaluation, groups
        )
    return RecordedEvaluation(evaluation, report_card_id, seq)


def recipes_named(names: list[str]) -> list[Recipe]:
    """The recipes called `names`, in order; EvaluationError naming the unknown one."""
    try:
        return [recipe_named(name) for name in names]
    except ValueError as error:
        raise EvaluationError(str(error)) from error


def _compare(
    dataset: Path,
    settings: EngineSettings | None,
    recipes: list[Recipe],
    protocol: Protocol,
    half: Half | None,
    options: EvaluationOptions,
    workers: int,
    progress: CompareProgress | None,
) -> Comparison:
    try:
        return compare_recipes(
            dataset,
            recipes,
            settings,
            protocol=protocol,
            half=half,
            replicates=options.replicates,
            seed=options.seed,
            level=options.level,
            candidate_list_length=options.candidate_list_length,
            workers=workers,
            progress=progress,
        )
    except ValueError as error:
        raise EvaluationError(str(error)) from error


def compare_scratch(
    dataset: Path,
    recipes: list[Recipe],
    *,
    protocol: Protocol = "foundation",
    half: Half | None = None,
    options: EvaluationOptions | None = None,
    workers: int = 1,
    progress: CompareProgress | None = None,
) -> Comparison:
    """Compare recipes on a labelled folder without any workspace: nothing is recorded."""
    chosen = options or EvaluationOptions()
    return _compare(dataset, None, recipes, protocol, half, chosen, workers, progress)


def run_comparison(
    workflow: Workflow,
    actor: Actor,
    dataset: Path,
    recipes: list[Recipe],
    *,
    protocol: Protocol = "foundation",
    half: Half | None = None,
    options: EvaluationOptions | None = None,
    workers: int = 1,
    progress: CompareProgress | None = None,
) -> tuple[Comparison, int]:
    """Compare recipes on a labelled folder, audited as `evaluation.compared`.

    Same permission as an evaluation. The audit entry holds the folder, the settings and
    each recipe's figures as text; nothing else is stored (no report card: a comparison
    is a measurement of choices, not of the agency's configuration).
    """
    require_evaluator(workflow, actor)
    chosen = options or EvaluationOptions()
    comparison = _compare(
        dataset.absolute(), workflow.settings, recipes, protocol, half, chosen, workers, progress
    )
    summary = {
        result.recipe.name: {
            "recipe": result.recipe.key,
            **{key: _audit_figure(value) for key, value in result.figures.items()},
        }
        for result in comparison.results
    }
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        seq = record(
            session,
            workspace,
            actor.username,
            COMPARE_ACTION,
            {},
            {
                "dataset": str(dataset.absolute()),
                "protocol": protocol,
                "half": half or "all",
                "settings": workflow.settings.key,
                "model": workflow.engine.model.key,
                "recipes": summary,
            },
        )
    return comparison, seq


@dataclass(frozen=True)
class ModelComparison:
    """Face models side by side: the paired comparison, and each model's stored card."""

    comparison: Comparison
    evaluations: tuple[Evaluation, ...]
    report_card_ids: tuple[int, ...]
    audit_seq: int


def run_model_comparison(
    workflow: Workflow,
    actor: Actor,
    dataset: Path,
    names: list[str],
    *,
    options: EvaluationOptions | None = None,
    groups_file: Path | None = None,
    workers: int = 1,
    progress: EvaluationProgress | None = None,
) -> ModelComparison:
    """Evaluate the workspace's models `names` on the same people, side by side.

    Same permission as an evaluation. Each model runs the workspace's detector, quality
    gate and recipe with its own embedder (`model_settings`: dlib, or a confirmed model
    whose file is unchanged); the options' protocol and half apply to all. Each model's
    report card is stored with its own `evaluation.run` entry, and the comparison with
    an `evaluation.compared` entry naming the cards, all in one transaction after every
    figure is measured (a failure midway records nothing).
    """
    require_evaluator(workflow, actor)
    if len(set(names)) != len(names):
        raise EvaluationError(f"a model is named twice: {', '.join(names)}")
    chosen = replace(options or EvaluationOptions(), recipe=workflow.recipe)
    groups = _groups(groups_file)
    workspace = workflow.workspace
    arms: list[Arm] = []
    with workspace.session() as session:
        for name in names:
            settings = model_settings(session, name, workflow.settings)
            label = _label(session, FaceEngine(settings).model)
            arms.append(Arm(name, chosen.recipe, settings, replace(label, name=name)))
    absolute = dataset.absolute()
    evaluations = tuple(
        _evaluate(absolute, arm.settings, chosen, groups, workers, _named(progress, arm), arm.model)
        for arm in arms
    )
    try:
        comparison = compare_arms(
            absolute,
            arms,
            axis="model",
            protocol=chosen.protocol,
            half=chosen.half,
            replicates=chosen.replicates,
            seed=chosen.seed,
            level=chosen.level,
            candidate_list_length=chosen.candidate_list_length,
            workers=workers,
            progress=progress,
            # Each model's searches as its report card ran them: not run a second time.
            reports=[evaluation.identification for evaluation in evaluations],
        )
    except ValueError as error:
        raise EvaluationError(str(error)) from error
    with workspace.session() as session, session.begin():
        stored = [
            _store_report_card(session, workspace, actor, dataset, evaluation, groups)
            for evaluation in evaluations
        ]
        card_ids = tuple(card_id for card_id, _ in stored)
        seq = record(
            session,
            workspace,
            actor.username,
            COMPARE_ACTION,
            {},
            {
                "report_cards": list(card_ids),
                "dataset": str(absolute),
                "protocol": chosen.protocol,
                "half": chosen.half or "all",
                "recipe": chosen.recipe.key,
                "models": {
                    result.label: {
                        "model": result.report.model,
                        **{key: _audit_figure(value) for key, value in result.figures.items()},
                        **{
                            f"{key}_difference": _audit_figure(difference.value)
                            for key, difference in result.differences.items()
                        },
                        **{
                            f"{key}_verdict": difference.verdict
                            for key, difference in result.differences.items()
                        },
                    }
                    for result in comparison.results
                },
            },
        )
    return ModelComparison(comparison, evaluations, card_ids, seq)


def _named(progress: EvaluationProgress | None, arm: Arm) -> EvaluationProgress | None:
    """Progress stages of one model's evaluation, named after the model."""
    if progress is None:
        return None
    report = progress

    def advance(stage: str, done: int, total: int) -> None:
        report(f"{arm.name}: {stage}", done, total)

    return advance


def evaluate_model_file_scratch(
    dataset: Path,
    model_file: Path,
    *,
    options: EvaluationOptions | None = None,
    groups_file: Path | None = None,
    workers: int = 1,
    progress: EvaluationProgress | None = None,
) -> Evaluation:
    """Evaluate one ONNX face-embedding file in scratch space (module doc): read as
    `candor model add` would read it (values from its own signature, defaults otherwise),
    with the default detector and quality gate; nothing is recorded anywhere."""
    groups = _groups(groups_file)
    try:
        facts = inspect_model_file(model_file.absolute())
    except OnnxModelError as error:
        raise EvaluationError(str(error)) from error
    spec = facts.spec(_scratch_name(model_file), SCRATCH_MODEL_VERSION)
    settings = replace(EngineSettings(), embedder_model=spec)
    model = FaceEngine(settings).model
    label = ModelLabel(model_file.name, model.key, model.dimension, SCRATCH_LICENCE)
    chosen = options or EvaluationOptions()
    return _evaluate(dataset, settings, chosen, groups, workers, progress, label)


def _scratch_name(path: Path) -> str:
    """A template name from the file's name: letters, digits, '.', '_' and '-' only."""
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in path.stem)
    return kept.strip("-.") or "model"
