"""`candor keys`: where the workspace's keys live; rotating the KEK or the signing key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import counted_progress, emit_json, fail, reported_errors, stdout
from candor.cli.session import logged_in
from candor.workflow import open_workflow
from candor.workflow.audit_ops import kek_location, key_locations, rotate_signing_key
from candor.workflow.keys import KekRotation, KeyEncryptionKeyError, rotate_kek

keys_app = typer.Typer(
    help="The workspace's keys: the key-encryption key (KEK) and the audit log's signing key "
    "and witness: where they are, rotation."
)


def register(app: typer.Typer) -> None:
    """Add `candor keys ...` to the app."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("show")
def show(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Where each key lives and its public part (never anything secret). No login needed."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json):
        try:
            with open_workflow(home) as workflow:
                found = key_locations(workflow)
        except KeyEncryptionKeyError:
            # The workspace does not open without its KEK; say where it was looked for and
            # why it was refused (the audit log's keys are read once it opens).
            found = {"key_encryption_key": kek_location(home)}
    if as_json:
        emit_json({"ok": True, **found})
        return
    for name, entry in found.items():
        if not isinstance(entry, dict):
            stdout.print(f"{name}: none")
            continue
        where = entry["path"] or "none recorded"
        stdout.print(f"{name}: {where}{'' if entry.get('exists') else ' (missing)'}")
        for field, value in entry.items():
            if field not in {"path", "exists"} and value is not None:
                if isinstance(value, list):
                    shown = "\n    ".join(value)
                elif isinstance(value, dict):
                    shown = ", ".join(f"{kind} {count}" for kind, count in value.items())
                else:
                    shown = value
                stdout.print(f"  {field}: {shown}")


@keys_app.command("rotate")
def rotate(
    kek: Annotated[
        Path | None,
        typer.Option(
            "--kek",
            metavar="NEW_FILE",
            help="Rotate the key-encryption key: re-wrap every data key under the key in "
            "NEW_FILE (made, mode 0600, if missing). The old KEK file is left in place.",
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Rotate the audit signing key (confirms it: every later checkpoint uses a "
            "new key).",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rotate a key (admin, audited): `--kek NEW_FILE` the key-encryption key, `--yes` the
    audit signing key. One key at a time."""
    if kek is not None:
        if yes:
            fail(
                "rotate one key at a time: --kek NEW_FILE for the key-encryption key, --yes "
                "for the audit signing key",
                as_json=as_json,
            )
        _rotate_kek(kek, home, as_json)
        return
    if not yes:
        fail(
            "say which key: --kek NEW_FILE rotates the key-encryption key; --yes rotates the "
            "audit signing key (recorded, cannot be undone)",
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


def _rotate_kek(new_file: Path, home: Path | None, as_json: bool) -> None:
    with (
        reported_errors(as_json),
        logged_in(home, as_json) as (workflow, actor),
        counted_progress("re-wrapping data keys", hidden=as_json) as advance,
    ):
        rotation = rotate_kek(workflow, actor, new_file, advance)
    if as_json:
        emit_json({"ok": True, **_rotation_fields(rotation), "next": AFTER_KEK_ROTATION})
        return
    made = " (made now)" if rotation.made_file else ""
    stdout.print(
        f"Re-wrapped {rotation.data_keys} data keys under the key-encryption key "
        f"{rotation.path}{made}, fingerprint {rotation.fingerprint} (was "
        f"{rotation.previous_fingerprint}, {rotation.previous_path}).\n"
        f"Point CANDOR_KEK_FILE at the new file on every node that sets it.\n"
        f"{AFTER_KEK_ROTATION}"
    )


AFTER_KEK_ROTATION = (
    "The old KEK file is left in place: backups made before now hold keys wrapped under it. "
    "Once those backups have expired or been re-keyed, destroy the old KEK file (shred it): "
    "that is what makes the subjects expunged since unreadable in them."
)


def _rotation_fields(rotation: KekRotation) -> dict[str, object]:
    return {
        "path": rotation.path,
        "fingerprint": rotation.fingerprint,
        "made_file": rotation.made_file,
        "previous_path": rotation.previous_path,
        "previous_fingerprint": rotation.previous_fingerprint,
        "data_keys": rotation.data_keys,
    }
