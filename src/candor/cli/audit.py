"""`candor audit`: verify the log, list and prove entries, make a checkpoint, export."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption, LimitOption, OffsetOption
from candor.cli.output import add_literal_row, emit_json, fail, reported_errors, stdout, to_jsonable
from candor.cli.session import logged_in
from candor.cli.todo import page_json
from candor.workflow.audit_ops import (
    EntryFilter,
    LoggedEntry,
    VerificationReport,
    check_export_folder,
    checkpoint_now,
    export_log,
    list_entries,
    prove_entry,
    verify_export_folder,
    verify_log,
)
from candor.workflow.paging import DEFAULT_PAGE_SIZE, Page, PageRequest

audit_app = typer.Typer(help="The tamper-evident audit log: verify, prove, checkpoint, export.")


def register(app: typer.Typer) -> None:
    """Add `candor audit ...` to the app."""
    app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify(
    export: Annotated[
        Path | None,
        typer.Option(help="Verify an export folder instead of the workspace (no login needed)."),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(help="A checkpoint note you kept from earlier; may repeat."),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check every entry, the hash chain, each signed checkpoint, and held checkpoints."""
    held = against or []
    if export is not None:
        with reported_errors(as_json):
            report = verify_export_folder(export, held)
    else:
        with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
            report = verify_log(workflow, actor, held)
    _print_report(report, as_json)


def _print_report(report: VerificationReport, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": report.ok, **to_jsonable(report)})
    else:
        stdout.print(report.summary())
    if not report.ok:
        raise typer.Exit(1)


def _moment(text: str | None, option: str, as_json: bool, *, end: bool) -> datetime | None:
    """A day (YYYY-MM-DD, in UTC; an --until day is included whole) or a time (ISO 8601;
    without an offset, UTC)."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"{option} {text!r} is neither a day (2026-03-02) nor a time (2026-03-02T09:30Z)",
            as_json=as_json,
        )
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _about(entry: LoggedEntry) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(entry.objects.items()))


def _entries_table(page: Page[LoggedEntry]) -> Table:
    table = Table(title=f"Audit entries: {page.describe()}, newest first")
    for column in ("Entry", "Time (UTC)", "User", "Action", "About", "Details"):
        table.add_column(column, justify="right" if column == "Entry" else "left")
    for entry in page.items:
        add_literal_row(
            table,
            str(entry.seq),
            entry.time.replace("T", " ")[:19],
            entry.actor or "Candor",
            entry.action,
            _about(entry),
            json.dumps(entry.details, sort_keys=True) if entry.details else "",
        )
    return table


@audit_app.command("list")
def list_log(
    case: Annotated[
        str | None, typer.Option("--case", help="Entries of this case and of its searches.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Entries by this username.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Entries of this action, e.g. search.requested.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this day or time (UTC unless given).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Up to this day (included) or time (excluded)."),
    ] = None,
    limit: LimitOption = DEFAULT_PAGE_SIZE,
    offset: OffsetOption = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The log's entries, newest first, filtered by case, user, action and time; prove
    one with `candor audit prove N`."""
    chosen = EntryFilter(
        case_number=case,
        actor=user,
        action=action,
        since=_moment(since, "--since", as_json, end=False),
        until=_moment(until, "--until", as_json, end=True),
    )
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        page = list_entries(workflow, actor, chosen, PageRequest(limit, offset))
    if as_json:
        emit_json({"ok": True, **page_json(page)})
        return
    if not page.items:
        stdout.print(f"No entries: {page.describe()}.", markup=False)
        return
    stdout.print(_entries_table(page))
    following = "" if page.next_offset is None else f"; older: --offset {page.next_offset}"
    stdout.print(
        f"Showing {page.describe()}, newest first{following}. "
        "Prove an entry with `candor audit prove N`.",
        markup=False,
    )


@audit_app.command("prove")
def prove(
    entry: Annotated[int, typer.Argument(help="The entry's sequence number.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """An inclusion proof of one entry against the latest checkpoint that covers it."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        proof = prove_entry(workflow, actor, entry)
    if as_json:
        emit_json({"ok": True, **to_jsonable(proof)})
        return
    stdout.print(f"entry {proof.seq}: {proof.entry}")
    stdout.print(f"leaf hash: {proof.leaf_hash}")
    stdout.print(f"in the tree of size {proof.tree_size}, root {proof.root_hash}")
    stdout.print("audit path:")
    for node in proof.proof:
        stdout.print(f"  {node}")
    stdout.print("signed checkpoint:")
    stdout.print(proof.checkpoint_note.rstrip())
    stdout.print(f"verifier key: {proof.verifier_key}")


@audit_app.command("checkpoint")
def checkpoint(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Sign a checkpoint of the log now (they are also made automatically)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = checkpoint_now(workflow, actor)
    if as_json:
        emit_json({"ok": True, **to_jsonable(info)})
        return
    stdout.print(info.note.rstrip())


@audit_app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="A new or empty folder.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write entries, checkpoints, the public keys and the witness for an outside auditor."""
    with reported_errors(as_json):
        check_export_folder(directory)
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = export_log(workflow, actor, directory)
    if as_json:
        emit_json({"ok": True, "directory": str(directory), **to_jsonable(info)})
        return
    stdout.print(
        f"Exported {info.tree_size} entries to {directory}, ending on a signed checkpoint.\n"
        f"Keep {directory}/checkpoints/{info.tree_size}.note: a later export must be "
        "consistent with it (`candor audit verify --export NEW --against THAT_NOTE`)."
    )
