"""`candor calibrate DIR [--model NAME]`: measure a model's thresholds on a labelled folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import counted_progress, emit_json, reported_errors, stdout, to_jsonable
from candor.cli.session import logged_in
from candor.workflow.calibration import Recalibration, recalibrate


def register(app: typer.Typer) -> None:
    """Add `candor calibrate` to the app."""
    app.command("calibrate")(calibrate)


def calibrate(
    dataset: Annotated[Path, typer.Argument(help="A labelled folder: one sub-folder per person.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The model to calibrate: dlib or a confirmed model's name. Default: the "
            "model in use.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 1,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure how a face model scores people on a labelled folder, and use its thresholds
    from now on: the 1:N calibration, the 1:1 verify threshold, the repeat-search similarity
    and the quality gate's sharpness limit (recorded in the audit log).

    The photos are processed in scratch space and never enrolled.
    """
    with (
        reported_errors(as_json),
        logged_in(home, as_json) as (workflow, actor),
        counted_progress("calibrating", hidden=as_json) as advance,
    ):
        done = recalibrate(workflow, actor, dataset, model=model, workers=workers, progress=advance)
    if as_json:
        emit_json({"ok": True, **_summary(done)})
        return
    _print(done)


def _summary(done: Recalibration) -> dict[str, object]:
    table = done.cosine
    measured = done.measurement
    verify = measured.verify
    fields = to_jsonable(table)
    assert isinstance(fields, dict)
    return {
        **fields,
        "model_name": done.model_name,
        "normalised": None if done.normalised is None else to_jsonable(done.normalised),
        "normalised_note": done.normalised_note,
        "model_calibration": done.model_calibration,
        "model_note": done.model_note,
        "verify": None if verify is None else to_jsonable(verify),
        "repeat": done.repeat.to_dict(),
        "min_sharpness": measured.min_sharpness,
        "sharpness_refused_share": measured.refused_share,
        "reference_refused_share": measured.reference_refused_share,
    }


def _print(done: Recalibration) -> None:
    table = done.cosine
    measured = done.measurement
    stdout.print(
        f"Calibration of model {done.model_name} ({table.model_key}) recorded: "
        f"{table.templates} templates, {table.impostor_pairs:,} impostor pairs; its cosine "
        "thresholds now derive from it.",
        markup=False,
    )
    if done.normalised is not None:
        stdout.print(
            f"Calibration of the normalised score ({done.normalised.score}) recorded: "
            f"{done.normalised.impostor_pairs:,} impostor pairs.",
            markup=False,
        )
    verify = measured.verify
    if verify is not None and done.model_calibration is not None:
        stdout.print(
            f"1:1 threshold: cosine {verify.threshold:.4f} (false match rate "
            f"{verify.false_match_rate:.2e} over {verify.impostor_pairs:,} impostor pairs, "
            f"false non-match rate {verify.false_non_match_rate:.3f} over "
            f"{verify.mated_pairs:,} mated pairs); repeat-search similarity "
            f"{done.repeat.similarity:.4f} (the policy's {done.repeat.policy_similarity:g} "
            f"for dlib); sharpness limit {measured.min_sharpness:.1f} (refuses "
            f"{measured.refused_share:.1%} of the folder's faces; dlib's default refuses "
            f"{measured.reference_refused_share:.1%}).",
            markup=False,
        )
    if done.repeat.extrapolated:
        sys.stderr.write(
            "candor: warning: the calibration does not resolve the repeat-search rule's "
            "impostor rate; its highest threshold is used (more searches count as repeats)\n"
        )
    for note in (done.normalised_note, done.model_note):
        if note:
            sys.stderr.write(f"candor: warning: {note}\n")
