"""`candor evaluate DATASET`: a report card of the face model on a labelled folder.

In a workspace, an admin or an auditor runs it and the report card is stored with its
audit entry; with `--scratch` no workspace is opened, nobody logs in and nothing is
recorded. `--model NAME` (repeated) puts the workspace's face models side by side, one
stored report card each; `--scratch --model-file FILE` evaluates one ONNX file alone.
With `--json`, standard output carries exactly the report card's result object (the one
stored; for --compare and --model, the comparison); progress and warnings go to standard
error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from candor.cli.jobs import BackgroundOption, report_queued
from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import fail, reported_errors, stderr, stdout
from candor.cli.session import logged_in
from candor.workflow.evaluation_ops import (
    DEFAULT_SEED,
    RECIPES,
    Comparison,
    Evaluation,
    EvaluationOptions,
    EvaluationProgress,
    ModelComparison,
    compare_scratch,
    evaluate_model_file_scratch,
    evaluate_scratch,
    recipes_named,
    run_comparison,
    run_evaluation,
    run_model_comparison,
    write_det_svg,
)
from candor.workflow.jobs import queue_evaluation

SCRATCH_WARNING = (
    "--scratch: nothing is recorded (no workspace, no report card, no audit entry); "
    "these figures are not on the record"
)
STAGES = {
    "extracting": "extracting photos",
    "cohort": "cohort templates",
    "gallery": "gallery templates",
    "identification": "1:N searches",
    "pairs": "scoring all pairs",
    "bootstrap": "bootstrap intervals",
}
_ROWS = (
    ("rank1", "rank-1 hit rate"),
    ("rank10", "rank-10 hit rate"),
    ("fnir_at_fpir_0.01", "FNIR at FPIR 0.01"),
    ("threshold_at_fpir_0.01", "  threshold (cosine)"),
    ("fnir_at_fpir_0.05", "FNIR at FPIR 0.05"),
    ("threshold_at_fpir_0.05", "  threshold (cosine)"),
    ("fnir_at_fpir_0.003", "FNIR at FPIR 0.003"),
    ("threshold_at_fpir_0.003", "  threshold (cosine)"),
    ("fnmr_at_fmr_0.001", "FNMR at FMR 1e-3 (1:1, all pairs)"),
    ("threshold_at_fmr_0.001", "  threshold (cosine)"),
    ("fnmr_at_fmr_0.0001", "FNMR at FMR 1e-4 (1:1, all pairs)"),
    ("threshold_at_fmr_0.0001", "  threshold (cosine)"),
    ("fpir_at_distance_0.6", "FPIR at dlib distance 0.6"),
    ("fnir_at_distance_0.6", "FNIR at dlib distance 0.6"),
)


def _default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextmanager
def _progress_bars() -> Iterator[EvaluationProgress]:
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
    )
    tasks: dict[str, Any] = {}

    def advance(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(STAGES.get(stage, stage), total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield advance


class HalfChoice(StrEnum):
    """The fixed halves of a folder's people (int(sha256(name)[:8], 16) % 2, 1 = report)."""

    tune = "tune"
    report = "report"


class ProtocolChoice(StrEnum):
    """The identification protocols (see candor.evaluation.identification)."""

    foundation = "foundation"
    multi_photo = "multi-photo"


def evaluate(
    dataset: Annotated[
        Path | None,
        typer.Argument(help="A labelled folder: one sub-folder of photos per person."),
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            metavar="RECIPE",
            help="Run these named recipes side by side (repeat the option; the first is the "
            "reference). See --list-recipes.",
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="NAME",
            help="Evaluate these face models of the workspace side by side (repeat the "
            "option; the first is the reference; 'dlib' is the built-in one). Each gets a "
            "stored report card.",
        ),
    ] = None,
    model_file: Annotated[
        Path | None,
        typer.Option(
            "--model-file",
            metavar="FILE",
            help="With --scratch: evaluate this ONNX face-embedding file alone, never added "
            "to any workspace.",
        ),
    ] = None,
    list_recipes: Annotated[
        bool, typer.Option("--list-recipes", help="List the named recipes and stop.")
    ] = False,
    half: Annotated[
        HalfChoice | None,
        typer.Option(help="Only this half of the folder's people (tune: choose; report: report)."),
    ] = None,
    protocol: Annotated[
        ProtocolChoice,
        typer.Option(help="foundation: one photo enrolled per person; multi-photo: two."),
    ] = ProtocolChoice.foundation,
    groups: Annotated[
        Path | None,
        typer.Option(
            "--groups",
            help="TSV of person<TAB>group lines, written by the evaluator (never inferred).",
        ),
    ] = None,
    scratch: Annotated[
        bool,
        typer.Option("--scratch", help="Use no workspace and no login; record nothing anywhere."),
    ] = False,
    limits: Annotated[
        str | None,
        typer.Option(help="What the dataset is not (who is in it, how photos were taken)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=-1.0,
            max=1.0,
            help="Deployment threshold (cosine) for per-group figures "
            "(default: this run's threshold at FPIR 0.01).",
        ),
    ] = None,
    replicates: Annotated[
        int, typer.Option("--bootstrap", min=100, help="Bootstrap replicates.")
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = DEFAULT_SEED,
    det_svg: Annotated[
        Path | None,
        typer.Option("--det-svg", help="Also draw the DET curve to this SVG file (not stored)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Extraction processes (default: one per core).")
    ] = None,
    background: BackgroundOption = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure the face model's accuracy on a labelled folder and keep its report card.

    Runs the identification protocol (rank-1, rank-10, FNIR at FPIR 0.01, 0.05, 0.003)
    and 1:1 over all pairs (FNMR at FMR 1e-3 and 1e-4), each with a 95 % bootstrap
    interval over people. The photos are processed in scratch space and never enrolled.
    In a workspace (admin or auditor) the report card is stored and audited.
    With --compare, runs named recipes side by side instead (audited in a workspace);
    with --model, the workspace's face models (a report card each, audited).
    """
    if list_recipes:
        _print_recipes(as_json)
        return
    if dataset is None:
        fail("no folder given: candor evaluate DIR (or --list-recipes)", as_json=as_json)
    chosen_half: Literal["tune", "report"] | None = None
    if half is not None:
        chosen_half = "tune" if half is HalfChoice.tune else "report"
    chosen_protocol: Literal["foundation", "multi-photo"] = (
        "foundation" if protocol is ProtocolChoice.foundation else "multi-photo"
    )
    options = EvaluationOptions(
        replicates=replicates,
        seed=seed,
        deployment_threshold=threshold,
        limits=limits,
        protocol=chosen_protocol,
        half=chosen_half,
    )
    processes = workers or _default_workers()
    _refuse_model_option_mixes(models, model_file, compare, scratch, background, det_svg, as_json)
    if compare and background:
        fail("--background runs one evaluation, not a --compare", as_json=as_json)
    if models:
        if home is None:
            fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
        _compare_models(dataset, models, options, groups, processes, home, as_json)
        return
    if compare:
        _compare(
            dataset,
            compare,
            chosen_protocol,
            chosen_half,
            options,
            processes,
            scratch,
            home,
            as_json,
        )
        return
    report_card_id: int | None = None
    if background:
        if scratch or det_svg is not None:
            fail(
                "--background records its report card: not with --scratch or --det-svg",
                as_json=as_json,
            )
        with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
            view = queue_evaluation(
                workflow, actor, dataset, options=options, groups_file=groups, workers=processes
            )
        report_queued(view, as_json)
        return
    if scratch and model_file is not None:
        sys.stderr.write(f"candor: warning: {SCRATCH_WARNING}\n")
        with reported_errors(as_json), _progress_bars() as progress:
            evaluation = evaluate_model_file_scratch(
                dataset,
                model_file,
                options=options,
                groups_file=groups,
                workers=processes,
                progress=progress,
            )
    elif scratch:
        sys.stderr.write(f"candor: warning: {SCRATCH_WARNING}\n")
        with reported_errors(as_json), _progress_bars() as progress:
            evaluation = evaluate_scratch(
                dataset, options=options, groups_file=groups, workers=processes, progress=progress
            )
    else:
        if home is None:
            fail(
                "no workspace given: set CANDOR_HOME or pass --home PATH "
                "(or --scratch to record nothing)",
                as_json=as_json,
            )
        with (
            reported_errors(as_json),
            logged_in(home, as_json) as (workflow, actor),
            _progress_bars() as progress,
        ):
            recorded = run_evaluation(
                workflow,
                actor,
                dataset,
                options=options,
                groups_file=groups,
                workers=processes,
                progress=progress,
            )
        evaluation = recorded.evaluation
        report_card_id = recorded.report_card_id
    if det_svg is not None:
        with reported_errors(as_json):
            write_det_svg(evaluation.result, det_svg)
    # Plain lines, never wrapped, so scripts can read the warnings too.
    for warning in evaluation.result["warnings"]:
        sys.stderr.write(f"candor: warning: {warning}\n")
    if report_card_id is not None:
        sys.stderr.write(f"candor: report card {report_card_id} recorded\n")
    if as_json:
        # The stored object itself, unrounded: --json and the report card must agree.
        sys.stdout.write(json.dumps(evaluation.result, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    _print_card(evaluation, report_card_id)


def _refuse_model_option_mixes(
    models: list[str] | None,
    model_file: Path | None,
    compare: list[str] | None,
    scratch: bool,
    background: bool,
    det_svg: Path | None,
    as_json: bool,
) -> None:
    """One line for each way --model and --model-file do not go with the other options."""
    if model_file is not None:
        if models:
            fail(
                "--model-file evaluates one file alone, in scratch space: not with --model "
                "(which names models added to the workspace)",
                as_json=as_json,
            )
        if not scratch:
            fail(
                "--model-file needs --scratch: a file that was never added is evaluated "
                "without a workspace (add it with candor model add to keep its report card)",
                as_json=as_json,
            )
        if compare:
            fail("--model-file evaluates one file alone: not with --compare", as_json=as_json)
    if models:
        if scratch:
            fail(
                "--model names the workspace's models: not with --scratch "
                "(use --scratch --model-file FILE for a file)",
                as_json=as_json,
            )
        if compare:
            fail(
                "compare recipes (--compare) or models (--model), one at a time",
                as_json=as_json,
            )
        if background:
            fail("--background runs one evaluation, not a --model comparison", as_json=as_json)
        if det_svg is not None:
            fail("--det-svg draws one model's curve: not with --model", as_json=as_json)


def _compare_models(
    dataset: Path,
    names: list[str],
    options: EvaluationOptions,
    groups: Path | None,
    workers: int,
    home: Path,
    as_json: bool,
) -> None:
    with (
        reported_errors(as_json),
        logged_in(home, as_json) as (workflow, actor),
        _progress_bars() as progress,
    ):
        compared = run_model_comparison(
            workflow,
            actor,
            dataset,
            names,
            options=options,
            groups_file=groups,
            workers=workers,
            progress=progress,
        )
    for evaluation, card_id in zip(compared.evaluations, compared.report_card_ids, strict=True):
        for warning in evaluation.result["warnings"]:
            sys.stderr.write(f"candor: warning: {evaluation.face_model_name}: {warning}\n")
        sys.stderr.write(f"candor: report card {card_id} recorded ({evaluation.face_model_name})\n")
    sys.stderr.write(f"candor: comparison recorded as audit entry {compared.audit_seq}\n")
    if as_json:
        sys.stdout.write(json.dumps(_models_document(compared), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    _print_comparison(compared.comparison)
    stdout.print(
        "Report cards: "
        + ", ".join(
            f"{evaluation.face_model_name} {card_id}"
            for evaluation, card_id in zip(
                compared.evaluations, compared.report_card_ids, strict=True
            )
        )
        + " (candor report transparency shows the model in use and its latest card).",
        markup=False,
    )


def _models_document(compared: ModelComparison) -> dict[str, Any]:
    """The comparison's JSON, each model's entry with its stored report card's id."""
    document = compared.comparison.to_dict()
    for entry, card_id in zip(document["models"], compared.report_card_ids, strict=True):
        entry["report_card"] = card_id
    return document


def _print_recipes(as_json: bool) -> None:
    if as_json:
        listed = [
            {"name": r.name, "description": r.description, "recipe": r.key}
            for r in RECIPES.values()
        ]
        sys.stdout.write(json.dumps(listed) + "\n")
        return
    table = Table(title="Recipes (candor evaluate DIR --compare NAME ...)", title_justify="left")
    for column in ("name", "what it does", "key"):
        table.add_column(column, overflow="fold")
    for recipe in RECIPES.values():
        table.add_row(recipe.name, recipe.description, recipe.key)
    stdout.print(table)


def _compare(
    dataset: Path,
    names: list[str],
    protocol: Literal["foundation", "multi-photo"],
    half: Literal["tune", "report"] | None,
    options: EvaluationOptions,
    workers: int,
    scratch: bool,
    home: Path | None,
    as_json: bool,
) -> None:
    with reported_errors(as_json):
        recipes = recipes_named(names)
    audit_seq: int | None = None
    if scratch:
        sys.stderr.write(f"candor: warning: {SCRATCH_WARNING}\n")
        with reported_errors(as_json), _progress_bars() as progress:
            comparison = compare_scratch(
                dataset,
                recipes,
                protocol=protocol,
                half=half,
                options=options,
                workers=workers,
                progress=progress,
            )
    else:
        if home is None:
            fail(
                "no workspace given: set CANDOR_HOME or pass --home PATH "
                "(or --scratch to record nothing)",
                as_json=as_json,
            )
        with (
            reported_errors(as_json),
            logged_in(home, as_json) as (workflow, actor),
            _progress_bars() as progress,
        ):
            comparison, audit_seq = run_comparison(
                workflow,
                actor,
                dataset,
                recipes,
                protocol=protocol,
                half=half,
                options=options,
                workers=workers,
                progress=progress,
            )
    if audit_seq is not None:
        sys.stderr.write(f"candor: comparison recorded as audit entry {audit_seq}\n")
    if as_json:
        sys.stdout.write(json.dumps(comparison.to_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    _print_comparison(comparison)


_COMPARED = (
    ("rank1", "rank-1"),
    ("rank10", "rank-10"),
    ("fnir_at_fpir_0.01", "FNIR @ FPIR 0.01"),
    ("fnir_at_fpir_0.05", "FNIR @ FPIR 0.05"),
)


def _interval(interval: tuple[float, float] | None) -> str:
    return "-" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"


def _print_comparison(comparison: Comparison) -> None:
    scope = "all people" if comparison.half is None else f"the {comparison.half} half"
    arms = "Recipes" if comparison.axis == "recipe" else "Face models"
    table = Table(
        title=f"{arms} on {comparison.dataset}, {comparison.protocol} protocol, {scope} "
        f"({comparison.people:,} people)",
        title_justify="left",
    )
    table.add_column(comparison.axis)
    for _, label in _COMPARED:
        table.add_column(label, justify="right")
    table.add_column("ms/photo enrol, search", justify="right")
    for result in comparison.results:
        cells = []
        for key, _ in _COMPARED:
            value = result.figures[key]
            cell = f"{_cell(value)}\n[{_interval(result.intervals[key])}]"
            difference = result.differences.get(key)
            if difference is not None and difference.value is not None:
                cell += f"\n{difference.value:+.3f} {difference.verdict}"
            cells.append(cell)
        cost = result.cost
        timing = (
            "-"
            if cost.enrol_ms is None or cost.search_ms is None
            else f"{cost.enrol_ms:.0f}, {cost.search_ms:.0f}"
        )
        if cost.normalise_ms is not None:
            timing += f"\n+{cost.normalise_ms:.2f} to normalise"
        table.add_row(result.label, *cells, timing)
    stdout.print(table, markup=False)
    reference = comparison.results[0].label
    stdout.print(
        f"Intervals: {comparison.level:.0%} bootstrap over people ({comparison.replicates} "
        f"resamples). Differences are from {reference} on the same resamples; 'better' or "
        "'worse' only where the whole interval of the difference is on one side of zero.",
        markup=False,
    )
    for result in comparison.results:
        if result.model is not None:
            model = result.model
            stdout.print(
                f"{result.label}: model {model.key}, {model.dimension}-d, recipe "
                f"{result.recipe.name}; licence as declared: {model.licence}",
                markup=False,
            )
        if result.report.cohort is not None:
            stdout.print(f"{result.label}: cohort {result.report.cohort}", markup=False)


def _cell(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _print_card(evaluation: Evaluation, report_card_id: int | None) -> None:
    result = evaluation.result
    table = Table(title=f"Report card: {result['dataset']}", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("95 % interval (people)", justify="right")
    normalised = str(result.get("score", "cosine")).startswith("cosine - ")
    for key, label in _ROWS:
        if normalised and key.startswith("threshold_at_fpir"):
            # 1:N thresholds apply to the normalised score; 1:1 ones stay cosines.
            label = "  threshold (normalised score)"
        interval = result["ci"].get(key)
        shown = "-" if interval is None else f"{interval[0]:.4f} to {interval[1]:.4f}"
        table.add_row(label, _cell(result[key]), shown)
    stdout.print(table)
    named = result.get("face_model")
    if isinstance(named, dict):
        stdout.print(
            f"Face model {named['name']} ({named['key']}, {named['dimension']}-d); licence as "
            f"declared: {named['licence']}.",
            markup=False,
        )
    stdout.print(
        f"model {result['model']}; {result['people']:,} people, {result['photos']:,} photos, "
        f"{result['templates']:,} templates; gallery {result['gallery_size']:,} "
        f"({result['failed_to_enrol']} failed to enrol); {result['mated_searches']} mated / "
        f"{result['nonmated_searches']} non-mated searches; {result['genuine_pairs']:,} "
        f"genuine / {result['impostor_pairs']:,} impostor pairs.",
        markup=False,
    )
    recipe = result["settings"].get("recipe")
    stdout.print(
        f"Recipe {recipe}; thresholds apply to: {result.get('score', 'cosine')}"
        + (f"; cohort: {result['cohort']}" if result.get("cohort") else "")
        + ".",
        markup=False,
    )
    for key, reason in result["null_reasons"].items():
        stdout.print(f"{key} is null: {reason}", markup=False)
    section = result.get("groups")
    if section is not None:
        _print_groups(section)
    stdout.print(f"Dataset limits: {evaluation.limits}", markup=False)
    if report_card_id is None:
        stdout.print("Nothing was recorded (--scratch).")
    else:
        stdout.print(f"Recorded as report card {report_card_id}.")


def _print_groups(section: dict[str, Any]) -> None:
    if section.get("threshold") is None:
        stdout.print(f"Per-group figures: none ({section['reason']}).", markup=False)
        return
    table = Table(
        title=f"Per group at cosine {section['threshold']:.4f} ({section['threshold_source']})",
        title_justify="left",
    )
    for column in ("group", "mated", "non-mated", "FNIR", "FPIR"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for group in section["groups"]:
        table.add_row(
            group["group"],
            str(group["mated_searches"]),
            str(group["nonmated_searches"]),
            _cell(group["fnir"]),
            _cell(group["fpir"]),
        )
    stdout.print(table)
    for kind in ("fnir", "fpir"):
        ratio = section.get(f"{kind}_ratio")
        reason = section.get(f"{kind}_ratio_reason")
        stdout.print(
            f"{kind.upper()} worst/best: {_cell(ratio)}" + (f" ({reason})" if reason else ""),
            markup=False,
        )
    for group in section["excluded"]:
        stdout.print(f"Group {group['group']}: no figures ({group['reason']}).", markup=False)


def register(app: typer.Typer) -> None:
    """Add `candor evaluate` to the app."""
    app.command("evaluate")(evaluate)
