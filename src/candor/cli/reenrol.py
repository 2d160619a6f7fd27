"""`candor reenrol`: remake templates an older recipe made, from the photos the vault holds;
with `--model NAME`, make every photo's template with another model and switch to it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from candor.cli.jobs import BackgroundOption, report_queued
from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import (
    add_literal_row,
    counted_progress,
    emit_json,
    reported_errors,
    stderr,
    stdout,
    to_jsonable,
)
from candor.cli.session import logged_in
from candor.workflow import Actor, Workflow
from candor.workflow.jobs import queue_reenrolment
from candor.workflow.reenrol import (
    ModelCensus,
    ModelReenrolSummary,
    RecipeCensus,
    ReenrolSummary,
    model_census,
    recipe_census,
    reenrol,
    reenrol_model,
)


def register(app: typer.Typer) -> None:
    """Add `candor reenrol` to the app."""
    app.command("reenrol")(reenrol_command)


def reenrol_command(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only count templates: by recipe (what is stale) and by model (what a "
            "switch would make).",
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Make every gallery photo's template with this model (confirmed and "
            "calibrated), then make it the active model. `dlib` is the built-in one.",
        ),
    ] = None,
    background: BackgroundOption = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remake every template made with other enrolment views or detector fallback than this
    Candor's recipe, from its stored photo (audited; searches keep working meanwhile).

    A photo whose face cannot be found again keeps its old template and is listed.

    With --model NAME: make every photo's template with that model, then switch searches to
    it (audited: model.reenrolment_started, gallery.reenrolled per batch, model.activated).
    Searches use the current model until the switch; its templates are kept, so switching
    back is `candor reenrol --model` with the old name.
    """
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        if model is not None and not check:
            if background:
                report_queued(queue_reenrolment(workflow, actor, model=model), as_json)
                return
            _switch_model(workflow, actor, model, as_json)
            return
        if background and not check:
            report_queued(queue_reenrolment(workflow, actor), as_json)
            return
        models = model_census(workflow, actor)
        census = recipe_census(workflow, actor)
        if check or census.stale == 0:
            summary = None
        else:
            if not as_json:
                stdout.print(census.advice)
            summary = _reenrol_with_progress(workflow, actor, census.stale)
        after = census if summary is None else recipe_census(workflow, actor)
    if as_json:
        payload: dict[str, object] = {"ok": True, "census": _census_json(after)}
        if summary is None:
            payload["models"] = _models_json(models)
        else:
            payload["census_before"] = _census_json(census)
            payload["summary"] = to_jsonable(summary)
        emit_json(payload)
        return
    if summary is None:
        stdout.print(census_table(after))
        stdout.print(after.advice)
        stdout.print(models_table(models))
        stdout.print(models.advice)
        return
    if summary.kept:
        stdout.print(kept_table(summary))
    stdout.print(
        f"Remade {len(summary.remade):,} template(s) with recipe {summary.recipe} in "
        f"{summary.batches} audited batch(es); {len(summary.kept):,} kept their old "
        "template (listed above)."
        if summary.kept
        else f"Remade {len(summary.remade):,} template(s) with recipe {summary.recipe} in "
        f"{summary.batches} audited batch(es)."
    )


def _reenrol_with_progress(workflow: Workflow, actor: Actor, total: int) -> ReenrolSummary:
    progress = Progress(
        TextColumn("re-enrolling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )
    with progress:
        task = progress.add_task("reenrol", total=total)

        def advance(done: int, stale: int) -> None:
            progress.update(task, completed=done, total=stale)

        return reenrol(workflow, actor, progress=advance)


def _census_json(census: RecipeCensus) -> dict[str, object]:
    converted = to_jsonable(census)
    assert isinstance(converted, dict)
    return {
        **converted,
        "templates": census.templates,
        "stale": census.stale,
        "advice": census.advice,
    }


def census_table(census: RecipeCensus) -> Table:
    """The model's templates by the recipe that made them, stale ones marked."""
    table = Table(title=f"Templates of {census.model_key} by recipe (now: {census.recipe})")
    table.add_column("recipe")
    table.add_column("templates", justify="right")
    for column in ("enrolment views", "fallback", "stale"):
        table.add_column(column)
    for count in census.by_recipe:
        add_literal_row(
            table,
            count.recipe,
            f"{count.templates:,}",
            count.enrol_views or "-",
            count.fallback or "-",
            "yes" if count.stale else "no",
        )
    return table


def kept_table(summary: ReenrolSummary) -> Table:
    """Photos that keep their old template, by image id and hash, with the reason."""
    table = Table(title="Kept their old template")
    for column in ("image", "sha256", "template", "reason"):
        table.add_column(column)
    for kept in summary.kept:
        add_literal_row(
            table, str(kept.image_id), kept.image_sha256[:16], str(kept.template_id), kept.reason
        )
    return table


def _switch_model(workflow: Workflow, actor: Actor, model: str, as_json: bool) -> None:
    """`reenrol --model NAME` in this process, with a progress bar; then the census."""
    with counted_progress(f"templates of {model}", hidden=as_json) as advance:
        summary = reenrol_model(workflow, actor, model, progress=advance)
    after = model_census(workflow, actor)
    if as_json:
        emit_json({"ok": True, "summary": to_jsonable(summary), "models": _models_json(after)})
        return
    if summary.refused:
        stdout.print(refused_table(summary))
    switched = (
        f"{model} is now the active model ({summary.templates:,} templates): searches use it, "
        "its thresholds and its meaning sentence."
        if summary.activated
        else f"{model} was already the active model."
    )
    stdout.print(
        f"Made {len(summary.made):,} template(s) of {model} in {summary.batches} audited "
        f"batch(es); {len(summary.refused):,} photo(s) refused"
        + (" (listed above). " if summary.refused else ". ")
        + switched
    )
    stdout.print(models_table(after))


def _models_json(census: ModelCensus) -> dict[str, object]:
    converted = to_jsonable(census)
    assert isinstance(converted, dict)
    return {**converted, "advice": census.advice}


def models_table(census: ModelCensus) -> Table:
    """Per model: its templates and the gallery photos without one; the active one first."""
    table = Table(title=f"Templates by model ({census.photos:,} gallery photos)")
    for column in ("model", "state", "calibrated", "active", "templates", "without"):
        table.add_column(column, justify="right" if column in ("templates", "without") else "left")
    for count in census.models:
        add_literal_row(
            table,
            count.name,
            count.state,
            "yes" if count.calibrated else "no",
            "yes" if count.active else "",
            f"{count.templates:,}",
            f"{count.missing:,}",
        )
    return table


def refused_table(summary: ModelReenrolSummary) -> Table:
    """Photos that got no template of the new model, by image id and hash, with the reason."""
    table = Table(title=f"No template of {summary.model}")
    for column in ("image", "sha256", "reason"):
        table.add_column(column)
    for refused in summary.refused:
        add_literal_row(table, str(refused.image_id), refused.image_sha256[:16], refused.reason)
    return table
