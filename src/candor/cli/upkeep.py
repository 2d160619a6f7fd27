"""`candor scrub` and `candor check`: finishing and finding what crashes and readers leave.

Every command already finishes recorded work when it opens the workspace; these two
are for when that was not enough: a reader that held the database for long, or
leftovers from before the workspace kept records of them. `candor check` only reports
unless given --fix: removing files cannot be undone, so it is asked for explicitly.
"""

from __future__ import annotations

from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import emit_json, fail, reported_errors, stdout, to_jsonable
from candor.workflow import open_workflow
from candor.workflow.upkeep import SCRUB_WAIT_SECONDS, check_workspace, scrub_workspace


def register(app: typer.Typer) -> None:
    """Add `candor scrub` and `candor check` to the app."""
    app.command("scrub")(scrub_command)
    app.command("check")(check_command)


def scrub_command(
    wait: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds to wait for other connections' reads to end."),
    ] = SCRUB_WAIT_SECONDS,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move deleted rows' zeroed pages into the database file and truncate its write-ahead
    log, so that no byte of an expunged record survives there (every command also tries
    this when it starts, briefly)."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json), open_workflow(home) as workflow:
        outcome = scrub_workspace(workflow, wait_seconds=wait)
    fields = to_jsonable(outcome)
    if not outcome.scrubbed:
        owed = "; ".join(outcome.still_owed)
        fail(
            f"the database is not scrubbed: another connection held a read transaction "
            f"open for the whole {wait:g} s wait, so bytes of deleted rows remain in "
            f"candor.db and candor.db-wal (owed since: {owed}); close it and run "
            "`candor scrub` again",
            as_json=as_json,
            **fields,
        )
    if as_json:
        emit_json({"ok": True, **fields})
        return
    stdout.print(
        "The database is scrubbed: its write-ahead log is checkpointed and truncated.",
        markup=False,
    )
    if outcome.erased:
        stdout.print(f"Erased {outcome.erased} leftover file(s) no record named.", markup=False)


def check_command(
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Erase the files no record names (only while no other process has the "
            "workspace open) and finish recorded work.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare the vault's files with the database: photos, crops and probes that no record
    names (left by a crash), records whose photo is missing, and unfinished work. Reports
    only, unless --fix. Exits 1 while anything needs attention."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json), open_workflow(home) as workflow:
        outcome = check_workspace(workflow, fix=fix)
    left = outcome.left
    lines = [
        f"{len(left.orphan_images)} image file(s), {len(left.orphan_crops)} crop file(s) and "
        f"{len(left.orphan_probes)} probe file(s) that no record names",
        f"{len(left.missing_images)} gallery record(s) whose image file is missing",
        f"{left.temporaries} temporary file(s), {left.pending} unfinished write(s) on record",
        "a database scrub is owed" if left.scrub_owed else "no database scrub is owed",
    ]
    fields = {
        "fixed": outcome.fixed,
        "found": to_jsonable(outcome.found),
        "left": to_jsonable(left),
        "not_alone": outcome.not_alone,
    }
    needs_attention = left.leftovers or left.missing_images or left.scrub_owed
    if needs_attention:
        if outcome.not_alone:
            advice = outcome.not_alone
        elif left.missing_images:
            advice = "a missing image file needs a person: restore it from a backup, or expunge"
        else:
            advice = "run `candor check --fix` to remove them"
        fail(
            f"the workspace needs attention: {'; '.join(lines)}; {advice}",
            as_json=as_json,
            **fields,
        )
    if as_json:
        emit_json({"ok": True, **fields})
        return
    if outcome.fixed:
        found = outcome.found
        stdout.print(
            f"Removed {len(found.orphan_images)} image, {len(found.orphan_crops)} crop and "
            f"{len(found.orphan_probes)} probe file(s) that no record named, and "
            f"{found.temporaries} temporary file(s).",
            markup=False,
        )
    stdout.print("The vault and the database agree; nothing is left over.", markup=False)
