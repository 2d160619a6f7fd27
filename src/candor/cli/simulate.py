"""`candor simulate`: weeks of simulated agency activity in a new simulation workspace."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import emit_json, fail, reported_errors, stderr, stdout, to_jsonable
from candor.simulation.activity import (
    DEFAULT_STAFF,
    SIMULATED,
    SimulationSettings,
    SimulationSummary,
    read_password_file,
    run_simulation,
)
from candor.workflow import open_workflow


def register(app: typer.Typer) -> None:
    """Add `candor simulate` to the app."""
    app.command("simulate")(simulate)


def simulate(
    weeks: Annotated[int, typer.Option(help="Weeks of activity to simulate.")] = 8,
    searches: Annotated[int, typer.Option(help="Search requests analysts make in all.")] = 400,
    seed: Annotated[int, typer.Option(help="The same seed gives the same activity.")] = 1,
    gallery: Annotated[int, typer.Option(help="Synthetic subjects in the gallery.")] = 2000,
    start: Annotated[
        str | None,
        typer.Option(
            help="First Monday, YYYY-MM-DD (default: so that the weeks end before this one)."
        ),
    ] = None,
    staff: Annotated[
        int,
        typer.Option(
            help="People doing casework (analysts, examiners, supervisors in proportion); "
            "two admins and an auditor come on top."
        ),
    ] = DEFAULT_STAFF,
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="Every simulated account gets the password on this file's first line, so "
            "people can log in afterwards (without it nobody can)."
        ),
    ] = None,
    plant: Annotated[
        bool,
        typer.Option(
            "--plant/--no-plant",
            help="Five analysts misuse the system (volume, re-runs, outside agencies, night "
            "use, an expired certificate); the summary names them.",
        ),
    ] = True,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Simulate an agency's searches, reviews and misbehaviour through the real workflow.

    Only in a new workspace made with `candor init --purpose simulation`: the simulation
    makes its own users, policy and synthetic gallery. Everything it writes is SIMULATED.
    """
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    first_day = None
    if start is not None:
        try:
            first_day = date.fromisoformat(start)
        except ValueError:
            fail(f"--start {start!r} is not a date in YYYY-MM-DD form", as_json=as_json)

    def progress(stage: str, done: int, total: int) -> None:
        stderr.print(f"{SIMULATED} {stage}: {done:,} of {total:,}")

    with reported_errors(as_json):
        # The password and the settings are checked before the workspace is opened:
        # a bad file or option makes nothing.
        password = None if password_file is None else read_password_file(password_file)
        settings = SimulationSettings(
            weeks=weeks,
            searches=searches,
            seed=seed,
            gallery=gallery,
            start=first_day,
            staff=staff,
            password=password,
            plant=plant,
        ).checked()
        with open_workflow(home) as workflow:
            summary = run_simulation(workflow, settings, progress=progress)
    if as_json:
        emit_json({"ok": True, "simulated": True, "summary": to_jsonable(summary)})
        return
    stdout.print(summary_table(summary))


def summary_table(summary: SimulationSummary) -> Table:
    """The simulation's counts by outcome, titled SIMULATED."""
    table = Table(
        title=(
            f"{SIMULATED} activity, {summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d} "
            f"(seed {summary.seed}, {summary.seconds:.0f} s)"
        ),
        show_header=False,
    )
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, object]] = [
        ("users", summary.users),
        ("  doing casework", summary.staff),
        ("gallery subjects (synthetic + 2 portraits)", summary.gallery_subjects),
        ("probe photos", summary.probe_photos),
        ("search requests", summary.requests),
        *((f"  {status}", count) for status, count in summary.by_status.items()),
        *((f"  denied: {reason}", count) for reason, count in summary.denial_reasons.items()),
        *((f"  supervisor {word}", count) for word, count in summary.approval_decisions.items()),
        ("candidate lists", summary.candidate_lists),
        ("  reviewed", summary.lists_reviewed),
        *((f"  verdict {verdict}", count) for verdict, count in summary.verdicts.items()),
        ("leads released", summary.releases),
        *((f"refused step: {step}", count) for step, count in summary.refused_steps.items()),
        ("audit entries", summary.audit_entries),
    ]
    for label, count in rows:
        table.add_row(label, f"{count:,}" if isinstance(count, int) else str(count))
    for username, kind in summary.planted.items():
        table.add_row(f"planted: {username}", f"{kind}: {summary.misbehaving[username]}")
    table.add_row("login", summary.login)
    return table
