"""`candor model`: face-embedding models as installed, named things (add, confirm, reject,
list, show). Adding and deciding are admin actions; listing is for admins and auditors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import add_literal_row, emit_json, reported_errors, stdout, to_jsonable
from candor.cli.session import logged_in
from candor.workflow.models import (
    ModelView,
    add_model,
    confirm_model,
    model_view,
    model_views,
    reject_model,
)

model_app = typer.Typer(
    help="Face-embedding models: add an ONNX model (a second admin confirms it), list them, "
    "show one. The built-in model is dlib's ResNet; `candor reenrol --model` switches."
)

NameArgument = Annotated[str, typer.Argument(help="The model's name (see `candor model list`).")]


def register(app: typer.Typer) -> None:
    """Add `candor model ...` to the app."""
    app.add_typer(model_app, name="model")


@model_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="The model's ONNX file (kept where it is).")],
    name: Annotated[
        str,
        typer.Option(
            "--name", help="What to call it: 2 to 64 of a-z, 0-9, '.', '_', '-' (not 'dlib')."
        ),
    ],
    licence: Annotated[
        str, typer.Option("--licence", help="The licence the agency holds the weights under.")
    ],
    source: Annotated[
        str, typer.Option("--source", help="Where the file came from (vendor, package, URL).")
    ],
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout", help="NCHW or NHWC, where the file's input shape does not say it."
        ),
    ] = None,
    input_mean: Annotated[
        float | None,
        typer.Option("--input-mean", help="Pixel normalisation (x - MEAN) / STD: MEAN."),
    ] = None,
    input_std: Annotated[
        float | None,
        typer.Option("--input-std", help="Pixel normalisation (x - MEAN) / STD: STD."),
    ] = None,
    colour: Annotated[
        str | None, typer.Option("--colour", help="RGB (default) or BGR channel order.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a face-embedding model (admin, audited); it is usable once another admin runs
    `candor model confirm NAME`. Its sha256 and what its signature says are recorded; the
    file is checked against them at confirmation and every time the model is loaded."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = add_model(
            workflow,
            actor,
            file,
            name=name,
            licence=licence,
            source=source,
            layout=layout,
            input_mean=input_mean,
            input_std=input_std,
            colour=colour,
        )
    _report(
        view,
        as_json,
        f"Added model {view.name} ({view.dimension}-d, sha256 {view.sha256}); another admin "
        f"confirms it with `candor model confirm {view.name}`.",
    )


@model_app.command("confirm")
def confirm(name: NameArgument, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Confirm a model another admin added (admin, audited); its file is checked again."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = confirm_model(workflow, actor, name)
    _report(
        view,
        as_json,
        f"Confirmed model {view.name}. Calibrate it (`candor calibrate DIR --model "
        f"{view.name}`) before `candor reenrol --model {view.name}` can switch to it.",
    )


@model_app.command("reject")
def reject(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending model (admin, audited; the admin who added it may withdraw it)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = reject_model(workflow, actor, name, reason)
    _report(view, as_json, f"Rejected model {view.name}.")


def _report(view: ModelView, as_json: bool, line: str) -> None:
    if as_json:
        emit_json({"ok": True, "model": to_jsonable(view)})
        return
    stdout.print(line, markup=False)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@model_app.command("list")
def list_models(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Every model: the built-in one first, then each added one (admins and auditors)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        views = model_views(workflow, actor)
    if as_json:
        emit_json({"ok": True, "models": to_jsonable(views)})
        return
    table = Table(title="Face models")
    for column in ("name", "state", "dim", "sha256", "licence", "calibrated", "active", "file"):
        table.add_column(column)
    for view in views:
        add_literal_row(
            table,
            view.name,
            view.state,
            str(view.dimension),
            (view.sha256 or "")[:16],
            view.licence,
            _yes(view.calibrated),
            _yes(view.active),
            view.file_check,
        )
    stdout.print(table)


@model_app.command("show")
def show(name: NameArgument, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Everything about one model: its file and how it runs, who added and decided it,
    whether the file is unchanged, its calibration and when it was active."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = model_view(workflow, actor, name)
    if as_json:
        emit_json({"ok": True, "model": to_jsonable(view)})
        return
    table = Table(title=f"Model {view.name}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    fields = to_jsonable(view)
    for field in ("calibration", "activations"):
        fields.pop(field)
    for key, value in fields.items():
        if isinstance(value, list):
            add_literal_row(table, key, ", ".join(str(item) for item in value) or "none")
        elif value is not None:
            add_literal_row(table, key, str(value))
    if view.calibration is not None:
        for key, value in to_jsonable(view.calibration).items():
            add_literal_row(table, f"calibration.{key}", str(value))
    for number, activation in enumerate(to_jsonable(list(view.activations)), start=1):
        shown = ", ".join(f"{key} {value}" for key, value in activation.items())
        add_literal_row(table, f"activation {number}", shown)
    stdout.print(table)
