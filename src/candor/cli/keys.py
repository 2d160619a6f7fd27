"""`candor keys`: where the audit log's keys live, and rotating its signing key."""

from __future__ import annotations

from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import emit_json, fail, reported_errors, stdout
from candor.cli.session import logged_in
from candor.workflow import open_workflow
from candor.workflow.audit_ops import key_locations, rotate_signing_key

keys_app = typer.Typer(help="The audit log's signing key and witness: where they are, rotation.")


def register(app: typer.Typer) -> None:
    """Add `candor keys ...` to the app."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("show")
def show(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Where each key lives and its public part (never anything secret). No login needed."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json), open_workflow(home) as workflow:
        found = key_locations(workflow)
    if as_json:
        emit_json({"ok": True, **found})
        return
    for name, entry in found.items():
        if not isinstance(entry, dict):
            stdout.print(f"{name}: none")
            continue
        stdout.print(f"{name}: {entry['path']}{'' if entry.get('exists') else ' (missing)'}")
        for field, value in entry.items():
            if field not in {"path", "exists"} and value is not None:
                shown = "\n    ".join(value) if isinstance(value, list) else value
                stdout.print(f"  {field}: {shown}")


@keys_app.command("rotate")
def rotate(
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: every later checkpoint uses a new key.")
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the audit signing key (admin). The old public key stays with the log."""
    if not yes:
        fail(
            "rotating the signing key is recorded and cannot be undone; add --yes to go on",
            as_json=as_json,
        )
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        rotation = rotate_signing_key(workflow, actor)
    if as_json:
        emit_json(
            {
                "ok": True,
                "previous_key": rotation.previous_key,
                "key": rotation.key,
                "previous_key_signed": rotation.previous_key_signed,
                "tree_size": rotation.tree_size,
                "key_path": rotation.key_path,
            }
        )
        return
    signed = "both keys" if rotation.previous_key_signed else "the new key (the old one was lost)"
    stdout.print(
        f"Rotated the audit signing key in {rotation.key_path}.\n"
        f"new key:      {rotation.key}\n"
        f"previous key: {rotation.previous_key}\n"
        f"The checkpoint of size {rotation.tree_size} is signed by {signed}; give auditors "
        "the new key (every export's audit.keys lists both)."
    )
