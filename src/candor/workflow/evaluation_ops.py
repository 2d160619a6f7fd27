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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from candor.evaluation.bootstrap import DEFAULT_SEED
from candor.evaluation.compare import CompareProgress, Comparison, compare_recipes
from candor.evaluation.det_plot import write_det_svg
from candor.evaluation.groups import GroupAssignment, GroupsFileError, read_groups_file
from candor.evaluation.identification import Half, Protocol
from candor.evaluation.report_card import (
    DEFAULT_LIMITS,
    Evaluation,
    EvaluationOptions,
    EvaluationProgress,
    evaluate_folder,
)
from candor.faces import EngineSettings
from candor.faces.recipe import RECIPES, Recipe, recipe_named
from candor.policy import Policy, has_permission
from candor.store import ReportCard
from candor.store.evaluation import add_report_card
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
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
    "RecordedEvaluation",
    "compare_scratch",
    "evaluate_scratch",
    "recipes_named",
    "require_evaluator",
    "run_comparison",
    "run_evaluation",
    "write_det_svg",
]


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
) -> Evaluation:
    try:
        return evaluate_folder(
            dataset, settings, options, groups=groups, workers=workers, progress=progress
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
    evaluation = _evaluate(
        dataset.absolute(),
        workflow.settings,
        replace(options or EvaluationOptions(), recipe=workflow.recipe),
        groups,
        workers,
        progress,
    )
    result = evaluation.result
    figures = {
        key: _audit_figure(result[key])
        for key in (
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
    }
    details: dict[str, object] = {
        "dataset": str(dataset.absolute()),
        "dataset_sha256": evaluation.dataset_sha256,
        "settings": evaluation.settings_key,
        "model": evaluation.model_key,
        "figures": figures,
    }
    if groups is not None:
        details["groups_file_sha256"] = groups.sha256
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
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
        seq = record(
            session,
            workspace,
            actor.username,
            AUDIT_ACTION,
            {"report_card": row.id},
            details,
        )
        report_card_id = row.id
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
