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
from candor.workflow.upkeep import (
    SCRUB_WAIT_SECONDS,
    CheckOutcome,
    check_workspace,
    scrub_workspace,
)


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
            help="Erase the files and probe keys no record names (only while no other "
            "process has the workspace open), finish recorded work and rebuild an index "
            "that disagrees with the database.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check that the vault, the data keys, the gallery index and the audit log agree with
    the database: files no record names (left by a crash), records whose photo is missing,
    files not sealed or not opening under their key, keys that do not unwrap or that
    nothing uses, an index holding other templates than the database, a log that does not
    verify, and unfinished work. Reports only, unless --fix. Exits 1 while anything needs
    attention."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json), open_workflow(home) as workflow:
        outcome = check_workspace(workflow, fix=fix)
    left = outcome.left
    fields = {
        "fixed": outcome.fixed,
        "found": to_jsonable(outcome.found),
        "left": to_jsonable(left),
        "not_alone": outcome.not_alone,
        "index_found": to_jsonable(outcome.index_found),
        "index": to_jsonable(outcome.index),
        "audit": to_jsonable(outcome.audit),
    }
    if outcome.needs_attention:
        fail(
            "the workspace needs attention: " + "; ".join(_findings(outcome)),
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
            f"{len(found.orphan_probes)} probe file(s) that no record named, "
            f"{len(found.orphan_probe_keys)} probe key(s) nothing used, and "
            f"{found.temporaries} temporary file(s).",
            markup=False,
        )
        if outcome.index_found is not None and not outcome.index_found.agrees:
            stdout.print("Rebuilt the gallery index from the database.", markup=False)
    if outcome.index is not None and outcome.index.problem:
        stdout.print(outcome.index.problem, markup=False)
    stdout.print(
        "The vault, the keys, the index and the audit log agree with the database; "
        "nothing is left over.",
        markup=False,
    )


def _findings(outcome: CheckOutcome) -> list[str]:
    """Each disagreement with what to do about it, by count and content address only."""
    left = outcome.left
    found: list[str] = []
    fix_advice = outcome.not_alone or "run `candor check --fix` to remove them"
    if left.leftovers:
        found.append(
            f"{len(left.orphan_images)} image file(s), {len(left.orphan_crops)} crop file(s) "
            f"and {len(left.orphan_probes)} probe file(s) that no record names, "
            f"{len(left.orphan_probe_keys)} probe key(s) nothing uses, {left.temporaries} "
            f"temporary file(s) and {left.pending} unfinished write(s) on record: {fix_advice}"
        )
    if left.scrub_owed:
        found.append("a database scrub is owed: run `candor scrub`")
    if left.missing_images:
        found.append(
            f"{len(left.missing_images)} gallery record(s) whose image file is missing "
            f"(first: {left.missing_images[0]}): restore it from a backup, or expunge"
        )
    if left.plaintext:
        found.append(
            f"{len(left.plaintext)} file(s) not sealed (first: {left.plaintext[0]}): "
            "run `candor upgrade` to seal them"
        )
    if left.plaintext_templates:
        found.append(
            f"{left.plaintext_templates} template(s) stored in the clear: run `candor upgrade` "
            "to seal them"
        )
    if left.undecryptable:
        found.append(
            f"{len(left.undecryptable)} file(s) or template(s) that do not open under their "
            f"key (first: "
            f"{left.undecryptable[0]}): restore them from a backup made under the same "
            "key-encryption key, or expunge"
        )
    if left.key_problems:
        found.append(
            f"{len(left.key_problems)} data key(s) that do not unwrap under the "
            f"key-encryption key ({left.key_problems[0]}): point CANDOR_KEK_FILE at the "
            "workspace's key file, or restore the key rows from a backup"
        )
    index = outcome.index
    if index is not None and not index.agrees:
        found.append(
            f"the gallery index holds {index.extra} template(s) the database does not and "
            f"lacks {index.missing} it holds: "
            + (outcome.not_alone or "run `candor check --fix` to rebuild it")
        )
    audit = outcome.audit
    if audit is not None and not audit.ok:
        found.append(
            f"the audit log does not verify ({audit.problem}): run `candor audit verify` "
            "and see docs/audit-format.md before changing anything"
        )
    return found
