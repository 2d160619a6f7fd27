"""`candor evaluate DATASET`: a report card of the face model on a labelled folder.

In a workspace, an admin or an auditor runs it and the report card is stored with its
audit entry; with `--scratch` no workspace is opened, nobody logs in and nothing is
recorded. With `--json`, standard output carries exactly the report card's result object
(the one stored); progress and warnings go to standard error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import fail, reported_errors, stderr, stdout
from candor.cli.session import logged_in
from candor.workflow.evaluation_ops import (
    DEFAULT_SEED,
    Evaluation,
    EvaluationOptions,
    EvaluationProgress,
    evaluate_scratch,
    run_evaluation,
    write_det_svg,
)

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


def evaluate(
    dataset: Annotated[
        Path, typer.Argument(help="A labelled folder: one sub-folder of photos per person.")
    ],
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
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure the face model's accuracy on a labelled folder and keep its report card.

    Runs the identification protocol (rank-1, rank-10, FNIR at FPIR 0.01, 0.05, 0.003)
    and 1:1 over all pairs (FNMR at FMR 1e-3 and 1e-4), each with a 95 % bootstrap
    interval over people. The photos are processed in scratch space and never enrolled.
    In a workspace (admin or auditor) the report card is stored and audited.
    """
    options = EvaluationOptions(
        replicates=replicates,
        seed=seed,
        deployment_threshold=threshold,
        limits=limits,
    )
    processes = workers or _default_workers()
    report_card_id: int | None = None
    if scratch:
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
    for key, label in _ROWS:
        interval = result["ci"].get(key)
        shown = "-" if interval is None else f"{interval[0]:.4f} to {interval[1]:.4f}"
        table.add_row(label, _cell(result[key]), shown)
    stdout.print(table)
    stdout.print(
        f"model {result['model']}; {result['people']:,} people, {result['photos']:,} photos, "
        f"{result['templates']:,} templates; gallery {result['gallery_size']:,} "
        f"({result['failed_to_enrol']} failed to enrol); {result['mated_searches']} mated / "
        f"{result['nonmated_searches']} non-mated searches; {result['genuine_pairs']:,} "
        f"genuine / {result['impostor_pairs']:,} impostor pairs.",
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
