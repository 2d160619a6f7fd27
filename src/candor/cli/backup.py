"""`candor backup DEST` and `candor restore BACKUP --home DIR` (docs/deploy.md, "Backups
and restore")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import (
    counted_progress,
    emit_json,
    fail,
    reported_errors,
    stdout,
    to_jsonable,
)
from candor.cli.session import logged_in
from candor.workflow.backup import BackupError, back_up, restore_backup


def register(app: typer.Typer) -> None:
    """Add `candor backup` and `candor restore` to the app."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)


def backup_command(
    destination: Annotated[
        Path, typer.Argument(help="A new or empty folder outside the workspace.")
    ],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the running workspace (an admin; audited): the database, the vault, the
    audit witness and public keys, the marker, and manifest.json with every file's
    SHA-256. Never the key-encryption key or the audit signing key: keep those apart."""
    with (
        reported_errors(as_json),
        logged_in(home, as_json) as (workflow, actor),
        counted_progress("copying the workspace", hidden=as_json) as advance,
    ):
        info = back_up(workflow, actor, destination, advance)
    if as_json:
        emit_json({"ok": True, **to_jsonable(info)})
        return
    stdout.print(
        f"Backed up {info.files} files ({info.bytes} bytes, {info.database} database) to "
        f"{info.destination}.\nManifest SHA-256 {info.manifest_sha256} (audit entry "
        f"{info.audit_seq}); the log's {info.log_size} entries, newest checkpoint of size "
        f"{info.tree_size}.\nThe key-encryption key and the audit signing key are not in "
        "it: keep their own copies apart from the backups.",
        markup=False,
    )


def restore_command(
    backup: Annotated[Path, typer.Argument(help="A folder written by `candor backup`.")],
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The new workspace folder (new or empty)."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="For a PostgreSQL backup: the empty database to restore into "
            "(postgresql://USER@HOST/DATABASE, no password).",
        ),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="The audit signing key file, kept apart from the backups: copied into the "
            "restored workspace's keys/ folder.",
        ),
    ] = None,
    expunged_since: Annotated[
        Path | None,
        typer.Option(
            "--expunged-since",
            help="A `candor audit export` of the live workspace made after the backup: every "
            "subject it expunged since is expunged again in the restored workspace.",
        ),
    ] = None,
    no_later_log: Annotated[
        bool,
        typer.Option(
            "--no-later-log",
            help="State that you have no audit export of the live workspace made after the "
            "backup: people expunged since come back, and the restore records and warns of it.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild a workspace from a backup in a new folder: every hash is checked first
    (nothing is written from an altered backup), the index is rebuilt, and you are told
    what to put back (the key-encryption key, the signing key). Give --expunged-since
    EXPORT or --no-later-log: a restore never brings an expunged person back unsaid."""
    if home is None:
        fail("say where to restore: --home NEW_FOLDER", as_json=as_json)
    with (
        reported_errors(as_json),
        counted_progress("checking the backup", hidden=as_json) as advance,
    ):
        info = restore_backup(
            backup,
            home,
            database_url=database,
            signing_key=signing_key,
            expunged_export=expunged_since,
            no_later_log=no_later_log,
            progress=advance,
        )
    # Plain lines on standard error, never wrapped, in --json mode too.
    for warning in info.warnings:
        sys.stderr.write(f"candor: warning: {warning}\n")
    if info.checked and not info.check_ok:
        fail(
            f"restored into {info.home}, but the workspace needs attention: "
            + "; ".join(info.problems or ("run `candor check`",)),
            as_json=as_json,
            **to_jsonable(info),
        )
    if as_json:
        emit_json({"ok": True, **to_jsonable(info)})
        return
    lines = [
        f"Restored {info.files} files into {info.home} ({info.database} database).",
        f"Manifest SHA-256 {info.manifest_sha256}: the backup's `workspace.backed_up` audit "
        "entry must name the same.",
    ]
    if info.expunged_again:
        lines.append(
            f"Expunged again {len(info.expunged_again)} subject(s) the live log expunged "
            "after the backup."
        )
    if info.checked:
        lines.append(
            "The audit log verifies; the vault, the keys and the rebuilt index agree with "
            "the database."
        )
    lines.extend(f"Next: {step}" for step in info.next_steps)
    stdout.print("\n".join(lines), markup=False)


__all__ = ["BackupError", "register"]
