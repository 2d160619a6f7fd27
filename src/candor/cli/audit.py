"""`candor audit`: verify the log, prove an entry, make a checkpoint, export for auditors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import emit_json, reported_errors, stdout, to_jsonable
from candor.cli.session import logged_in
from candor.workflow.audit_ops import (
    VerificationReport,
    check_export_folder,
    checkpoint_now,
    export_log,
    prove_entry,
    verify_export_folder,
    verify_log,
)

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
