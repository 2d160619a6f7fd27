"""`candor jobs`: background jobs (list, show, cancel, resume) and the runner (`jobs run`).

`--background` on `candor enrol`, `candor reenrol`, `candor evaluate` and `candor
retention run` queues the action as a job instead of running it (candor.workflow.jobs
says who sees and controls which job). `candor jobs run` runs queued jobs until none is
left (`--forever`: keeps polling); `candor serve` starts one of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import (
    add_literal_row,
    emit_json,
    fail,
    reported_errors,
    stdout,
    to_jsonable,
)
from candor.cli.session import logged_in
from candor.workflow import open_workflow
from candor.workflow.jobs import (
    DEFAULT_BATCH,
    POLL_SECONDS,
    JobRunner,
    JobView,
    cancel_job,
    job_view,
    job_views,
    resume_job,
)

JobId = Annotated[int, typer.Argument(help="The job's number (see candor jobs list).")]
BackgroundOption = Annotated[
    bool,
    typer.Option(
        "--background",
        help="Queue this as a job and return at once; a job runner runs it (candor jobs).",
    ),
]

jobs_app = typer.Typer(help="Background jobs: progress, cancel, resume, and the runner.")


def register(app: typer.Typer) -> None:
    """Add `candor jobs ...` to the app."""
    app.add_typer(jobs_app, name="jobs")


def report_queued(view: JobView, as_json: bool) -> None:
    """What a `--background` command prints: the job it queued."""
    if as_json:
        emit_json({"ok": True, "job": _job_json(view)})
        return
    stdout.print(
        f"Queued job {view.id} ({view.description}); follow it with: candor jobs show {view.id}",
        markup=False,
    )


def _job_json(view: JobView) -> dict[str, object]:
    converted = to_jsonable(view)
    assert isinstance(converted, dict)
    return converted


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _state(view: JobView) -> str:
    asked = view.cancel_requested_by is not None and view.state == "running"
    return f"{view.state} (cancel asked)" if asked else view.state


def jobs_table(views: list[JobView]) -> Table:
    """Jobs with their progress."""
    table = Table(title="Jobs")
    for column in ("job", "kind", "state", "by", "done", "refused", "left", "rate", "to finish"):
        table.add_column(column)
    table.add_column("what")
    for view in views:
        add_literal_row(
            table,
            str(view.id),
            view.kind,
            view.state
            + (" (cancel asked)" if view.cancel_requested_by and view.state == "running" else ""),
            view.requested_by,
            f"{view.done}" if view.total is None else f"{view.done}/{view.total}",
            str(view.refused),
            "-" if view.left is None else str(view.left),
            "-" if view.rate is None else f"{view.rate:.2f}/s",
            _duration(view.seconds_left),
            view.description,
        )
    return table


@jobs_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(min=1, help="Show at most N jobs, newest first.")] = 50,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The jobs you may see (your own; every job for admins and auditors)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        views = job_views(workflow, actor, limit=limit)
    if as_json:
        emit_json({"ok": True, "jobs": [_job_json(view) for view in views]})
        return
    stdout.print(jobs_table(views) if views else "No jobs.")


def _print_one(view: JobView) -> None:
    stdout.print(jobs_table([view]))
    if view.result:
        stdout.print(
            "result: " + ", ".join(f"{key} {value}" for key, value in view.result.items()),
            markup=False,
        )
    if view.error:
        stdout.print(f"error: {view.error}", markup=False)
    if view.cancel_requested_by:
        stdout.print(f"cancel asked by {view.cancel_requested_by}", markup=False)


@jobs_app.command("show")
def show_command(job: JobId, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """One job: what it does, whose, its progress and outcome."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = job_view(workflow, actor, job)
    if as_json:
        emit_json({"ok": True, "job": _job_json(view)})
        return
    _print_one(view)


@jobs_app.command("cancel")
def cancel_command(job: JobId, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Stop a job: a queued one at once, a running one after its current batch (audited)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = cancel_job(workflow, actor, job)
    if as_json:
        emit_json({"ok": True, "job": _job_json(view)})
        return
    stdout.print(
        f"Job {view.id} cancelled."
        if view.state == "cancelled"
        else f"Job {view.id} stops after its current batch.",
        markup=False,
    )


@jobs_app.command("resume")
def resume_command(job: JobId, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Queue a failed, cancelled or orphaned job again; it goes on after the items done."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = resume_job(workflow, actor, job)
    if as_json:
        emit_json({"ok": True, "job": _job_json(view)})
        return
    stdout.print(
        f"Job {view.id} is queued again from item {view.done}; a runner takes it on.",
        markup=False,
    )


@jobs_app.command("run")
def run_command(
    forever: Annotated[
        bool, typer.Option("--forever", help="Keep polling for new jobs until stopped.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="Files per enrolment batch.")] = DEFAULT_BATCH,
    exit_with: Annotated[
        int | None,
        typer.Option(hidden=True, help="Stop when the process with this id is gone."),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run queued jobs as the people who queued them, until none is left (or --forever).

    Needs no login: each job runs with its requester's permissions, checked again now.
    """
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    ended: list[JobView] = []
    with reported_errors(as_json), open_workflow(home) as workflow:
        runner = JobRunner(workflow, batch_size=batch)
        if forever:
            stop = threading.Event()
            if exit_with is not None:
                _stop_when_gone(exit_with, stop)
            try:
                runner.run_forever(stop)
            except KeyboardInterrupt:
                stop.set()
        else:
            ended = runner.run_until_empty()
    if as_json:
        emit_json({"ok": True, "jobs": [_job_json(view) for view in ended]})
        return
    if not forever:
        stdout.print(jobs_table(ended) if ended else "No job was waiting.")


def _stop_when_gone(pid: int, stop: threading.Event) -> None:
    """Set `stop` once process `pid` (the server that started this runner) has ended."""

    def watch() -> None:
        while not stop.wait(POLL_SECONDS):
            if os.getppid() != pid:
                stop.set()

    threading.Thread(target=watch, name="runner-parent-watch", daemon=True).start()


def start_runner_process(home: Path) -> subprocess.Popen[bytes]:
    """Start `candor jobs run --forever` beside a server, as a process of its own: its
    face extraction then never competes with a search for this process's interpreter,
    and it ends when the server does."""
    return subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [
            sys.executable,
            "-m",
            "candor",
            "jobs",
            "run",
            "--forever",
            "--home",
            str(home),
            "--exit-with",
            str(os.getpid()),
        ],
        stdin=subprocess.DEVNULL,
    )
