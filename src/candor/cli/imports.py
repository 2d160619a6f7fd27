"""`candor enrol --manifest`: a booking system's export enrolled record by record.

The reader (`candor.imports`) turns the export into photos and refusals; the workflow
checks every record and enrols them (`candor.workflow.imports`). Here: the progress bar,
the table of refused records, the JSON, and the exit status (1 when nothing was stored
because records were refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from candor.cli.output import add_literal_row, emit_json, fail, reported_errors, stderr, stdout
from candor.cli.render import enrolment_table
from candor.cli.session import logged_in
from candor.imports.errors import ImportFileError
from candor.imports.records import ImportedPhoto, ImportRefusal
from candor.workflow import EnrolmentOutcome, EnrolmentStatus
from candor.workflow.enrolment import ProgressCallback, check_source_type
from candor.workflow.imports import (
    ImportRefusedError,
    ImportResult,
    enrol_planned,
    plan_import,
)

Reader = Callable[[], tuple[list[ImportedPhoto], list[ImportRefusal]]]


@contextmanager
def enrolment_progress(total: int) -> Iterator[ProgressCallback]:
    """A progress bar on standard error, advanced by each file's outcome."""
    progress = Progress(
        TextColumn("enrolling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[refused]} refused"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )
    with progress:
        task = progress.add_task("enrol", total=total, refused=0)
        refused = 0

        def advance(outcome: EnrolmentOutcome) -> None:
            nonlocal refused
            refused += outcome.status is EnrolmentStatus.REFUSED
            progress.update(task, advance=1, refused=refused)

        yield advance


def refusal_table(refused: Sequence[ImportRefusal], *, title: str) -> Table:
    """Each refused record and why."""
    table = Table(title=title)
    table.add_column("record")
    table.add_column("refused because")
    for refusal in refused:
        add_literal_row(table, refusal.origin, Text(refusal.reason, style="red"))
    return table


def enrol_records(
    read: Reader,
    *,
    home: Path | None,
    as_json: bool,
    source: str,
    legal_basis: str | None,
    collected: date | None,
    retain_until: date | None,
    skip_refused: bool,
    background: bool,
    workers: int | None,
) -> None:
    """Read an export with `read` and enrol its photos, printing what became of each record.

    Nothing is stored when a record is refused, unless `skip_refused`.
    """
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        # Who may enrol, and whether this workspace takes the source type, before the
        # export is read (an evaluation workspace takes no booking photos).
        check_source_type(workflow, actor, source)
        try:
            photos, refusals = read()
        except ImportFileError as error:
            fail(str(error), as_json=as_json)
        try:
            plan = plan_import(
                workflow,
                actor,
                photos,
                refusals,
                source_type=source,
                legal_basis=legal_basis,
                collected_on=collected,
                retain_until=retain_until,
            )
            # A bar only when photos will be read now.
            if background or not plan.requests or (plan.refused and not skip_refused):
                result = enrol_planned(
                    workflow, actor, plan, skip_refused=skip_refused, background=background
                )
            else:
                with enrolment_progress(len(plan.requests)) as advance:
                    result = enrol_planned(
                        workflow,
                        actor,
                        plan,
                        skip_refused=skip_refused,
                        workers=workers,
                        on_outcome=advance,
                    )
        except ImportRefusedError as error:
            fail_refused(error, as_json)
    report_import(result, as_json)


def fail_refused(error: ImportRefusedError, as_json: bool, **extra: Any) -> NoReturn:
    """Nothing was stored because records were refused: their table (or JSON), exit 1."""
    if not as_json:
        stderr.print(refusal_table(error.refused, title="Refused records (nothing was stored)"))
    fail(
        f"{error}; correct them, or pass --skip-refused to enrol the others",
        as_json=as_json,
        refused=error.refused,
        records=error.total,
        **extra,
    )


def report_import(result: ImportResult, as_json: bool) -> None:
    """What an import prints: the job queued, or the outcomes; the refused records."""
    if result.job is not None:
        if as_json:
            emit_json({"ok": True, "job": result.job, "refused": result.refused})
            return
        _print_refused(result.refused)
        job = result.job
        stdout.print(
            f"Queued job {job.id} ({job.description}); follow it with: candor jobs show {job.id}",
            markup=False,
        )
        return
    summary = result.summary
    assert summary is not None
    counts = {status.value: summary.count(status) for status in EnrolmentStatus}
    if as_json:
        emit_json(
            {"ok": True, "counts": counts, "files": summary.outcomes, "refused": result.refused}
        )
        return
    _print_refused(result.refused)
    if (
        any(o.status is not EnrolmentStatus.ENROLLED for o in summary.outcomes)
        or len(summary.outcomes) <= 20
    ):
        stdout.print(enrolment_table(summary, show_enrolled=len(summary.outcomes) <= 20))
    stdout.print(
        f"{counts['enrolled']} enrolled, {counts['duplicate']} duplicate(s) (nothing changed), "
        f"{counts['refused']} refused, of {len(summary.outcomes)} photo(s); "
        f"{len(result.refused)} record(s) skipped."
    )


def _print_refused(refused: Sequence[ImportRefusal]) -> None:
    if refused:
        stdout.print(refusal_table(refused, title="Refused records (skipped)"))
