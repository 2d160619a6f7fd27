"""`candor backup DEST` and `candor restore BACKUP --home DIR`.

A backup is a folder: the database (a SQLite copy made with the online backup API, or a
`pg_dump --format=custom` file), the vault files the database names, the audit witness
and the log's public keys, the workspace marker, and `manifest.json` with every file's
SHA-256 and size. It never holds the key-encryption key or the audit signing key: the
deployment keeps those apart, and a backup that held them would open itself.

Consistency while the workspace runs. The parts are copied in the order of
docs/deploy.md ("Backups and restore"), each at least as new as the one before: the
witness first (a witness older than the database is one the next checkpoint moves on), then
one database snapshot, then the vault files *that snapshot names*, nothing else. A file
is written before the row naming it commits and erased (zeroes, then unlink) only after
the row's deletion commits, so every file a snapshot names exists while that row is live;
after copying, the live database is asked again, and if a file it no longer names was
copied (it may have been zeroed under the copy) the backup takes a newer snapshot and
copies again. No write lock is held: searches and enrolments go on.

Expungement. A backup keeps every subject expunged after it was made. A restore given
`--expunged-since EXPORT` (a `candor audit export` of the live workspace made after the
backup) checks that the export is the same log and extends the backup's, then expunges
again, in the restored workspace and with an audit entry, every subject the live log
expunged after the backup: nothing of them enters the restored index. A restore without
that export must say so (`no_later_log`, the CLI's `--no-later-log`: the operator has no
later log): it goes on, warns, and records `later_log: false` in its `workspace.restored`
audit entry; given neither, it is refused before anything is written, so nobody expunged
is ever brought back unsaid. Backups made before a KEK rotation are shut for good once
the old KEK file is destroyed (docs).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Final

from candor.audit import (
    AuditError,
    Witness,
    leaf_hash,
    parse_entry,
    verify_export,
)
from candor.audit.verification import ENTRIES_FILE
from candor.sealing import KeyFileError, key_fingerprint, read_key_file
from candor.store import StoreError, Workspace
from candor.store.backup import (
    Snapshot,
    database_is_empty,
    live_names,
    restore_postgres,
    snapshot_postgres,
    snapshot_sqlite,
    subject_ref_of,
)
from candor.store.data_keys import KEK_FILE_VARIABLE, kek_record
from candor.store.database import check_postgres_url, head_revision
from candor.store.vault import BiometricVault
from candor.store.workspace import DATABASE_NAME, DATABASE_URL_FIELD, MARKER_NAME
from candor.workflow.accounts import Actor
from candor.workflow.actions import act
from candor.workflow.audit_ops import ROTATE_PERMISSION
from candor.workflow.audit_trail import KEY_ENV, record, signing_key_path, witness_path
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.expunge import erase_removed, remove_subject_rows, removed_details
from candor.workflow.permissions import require_permission
from candor.workflow.upkeep import CheckOutcome, check_workspace
from candor.workflow.workspaces import open_workflow

__all__ = [
    "BACKUP_ACTION",
    "RESTORE_ACTION",
    "BackupError",
    "BackupInfo",
    "RestoreInfo",
    "back_up",
    "restore_backup",
    "verify_backup",
]

BACKUP_ACTION: Final = "workspace.backed_up"
# Written in the restored workspace (when its KEK and signing key are there): which backup,
# and whether a later log was given (later_log), so an auditor sees a restore that may
# have brought back people expunged after the backup.
RESTORE_ACTION: Final = "workspace.restored"
# A backup copies every sealed photo and the database: the admin's own permission.
BACKUP_PERMISSION: Final = ROTATE_PERMISSION
MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = "candor-backup"
MANIFEST_VERSION: Final = 1
DUMP_NAME: Final = "candor.dump"
WITNESS_NAME: Final = "keys/audit-signing.key.witness"
# The log's public keys (every key that signed a checkpoint), for an auditor of the backup.
PUBLIC_KEYS_NAME: Final = "keys/audit.keys"
DEFAULT_KEY_NAME: Final = "keys/audit-signing.key"
_VAULT_KINDS: Final = ("images", "crops", "probes")
# A live workspace whose named files keep being erased under the copy gets this many tries.
_ATTEMPTS: Final = 5
_CHUNK: Final = 1 << 20
# An expungement entry's action; a confirmed change and the direct path both write it.
_EXPUNGED: Final = "gallery.expunged"

Progress = Callable[[int, int], None]


class BackupError(WorkflowError):
    """A backup or a restore cannot go on; the message names the file or folder and why."""


@dataclass(frozen=True)
class BackupInfo:
    """A backup written: where, how much, the manifest's hash (recorded in the audit log)."""

    destination: str
    database: str
    files: int
    bytes: int
    manifest_sha256: str
    log_size: int
    tree_size: int
    root_hash: str | None
    audit_seq: int


@dataclass(frozen=True)
class RestoreInfo:
    """A restore done: what was written, what was expunged again, what the check found,
    and what the operator must still put back (the KEK, the signing key)."""

    home: str
    database: str
    files: int
    manifest_sha256: str
    log_size: int
    tree_size: int
    kek_path: str | None
    kek_fingerprint: str | None
    expunged_again: tuple[int, ...]
    checked: bool
    check_ok: bool | None
    audit_ok: bool | None
    problems: tuple[str, ...]
    next_steps: tuple[str, ...] = field(default=())
    # When the backup was made (its manifest's made_at), whether a later audit log was
    # given (False: --no-later-log), the seq of the `workspace.restored` entry (None when
    # the KEK or the signing key was not there to write it), and what the operator must
    # be warned of.
    made_at: str | None = None
    later_log: bool = True
    restore_seq: int | None = None
    warnings: tuple[str, ...] = field(default=())


# -- backup -------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_destination(workspace: Workspace, destination: Path) -> Path:
    """The backup folder, absolute; refused inside the workspace or its key folder, or
    when it is a file or a folder with anything in it."""
    target = Path(destination).expanduser().absolute()
    resolved = target.resolve()
    for folder, what in (
        (workspace.home, "the workspace"),
        (signing_key_path(workspace).parent, "the audit key folder"),
    ):
        if _inside(resolved, folder.resolve()):
            raise BackupError(
                f"the backup folder {target} is inside {what} {folder}; a backup must live "
                "apart from what it backs up (another disk or machine)"
            )
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise BackupError(f"{target} exists and is not a folder; name a new or empty folder")
        if any(target.iterdir()):
            raise BackupError(f"{target} is not empty; name a new or empty folder for the backup")
    return target


def _candor_version() -> str:
    try:
        return version("candor")
    except PackageNotFoundError:
        return "unknown"


def _new_file(target: Path) -> BinaryIO:
    """A new file (0600) open for writing; an existing one is never written over."""
    return os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _copy_file(source: Path, target: Path) -> tuple[str, int]:
    """Copy one file (0600, never over an existing one); its SHA-256 and size. Not
    fsynced one by one (twelve times slower than a copy on ext4): `_sync_folder` makes
    them all durable before the manifest is written."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with _new_file(target) as out, source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _sync_folder(folder: Path) -> None:
    """Flush every file written under `folder` to disk: syncfs(2) on its filesystem where
    the C library has it (Linux), else sync(2)."""
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _write_file(target: Path, data: bytes) -> tuple[str, int]:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _new_file(target) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return hashlib.sha256(data).hexdigest(), len(data)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _clear(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def _snapshot(workspace: Workspace, destination: Path) -> Iterator[tuple[str, Snapshot]]:
    """One database snapshot written into the backup: (its file's name, what it names)."""
    if workspace.database_url is None:
        yield DATABASE_NAME, snapshot_sqlite(workspace.database_path, destination / DATABASE_NAME)
        return
    with snapshot_postgres(
        workspace.engine, workspace.database_url, destination / DUMP_NAME
    ) as snapshot:
        yield DUMP_NAME, snapshot


def _vault_files(vault: BiometricVault, snapshot: Snapshot) -> list[tuple[str, Path]]:
    """(name in the backup, path) of every vault file the snapshot names and that exists
    (a crop is optional; an image the snapshot names is always there while its row is)."""
    found: list[tuple[str, Path]] = []
    for sha256 in sorted(snapshot.images):
        for kind, path in (
            ("images", vault.image_path(sha256)),
            ("crops", vault.crop_path(sha256)),
        ):
            if path.is_file():
                found.append((path.relative_to(vault.home).as_posix(), path))
            elif kind == "images":
                raise BackupError(
                    f"the gallery image {sha256} has no file in the vault; run `candor check` "
                    "(a backup never copies a workspace that has lost photos)"
                )
    for sha256 in sorted(snapshot.probes):
        path = vault.probe_path(sha256)
        if path.is_file():
            found.append((path.relative_to(vault.home).as_posix(), path))
    return found


def _copy_parts(
    workspace: Workspace, destination: Path, progress: Progress | None
) -> tuple[dict[str, tuple[str, int]], str, Snapshot]:
    """Witness, database, vault files, marker, in that order; retried from a newer
    snapshot while a copied file's row was deleted (its file erased) under the copy."""
    witness_file = witness_path(workspace)
    try:
        witness_text = witness_file.read_text(encoding="utf-8")
        witness = Witness.from_text(witness_text, f"the audit witness {witness_file}")
    except (OSError, UnicodeDecodeError, AuditError) as error:
        raise BackupError(f"cannot read the audit witness {witness_file}: {error}") from None
    for _ in range(_ATTEMPTS):
        files: dict[str, tuple[str, int]] = {
            WITNESS_NAME: _write_file(destination / WITNESS_NAME, witness_text.encode("utf-8")),
            PUBLIC_KEYS_NAME: _write_file(
                destination / PUBLIC_KEYS_NAME, f"{witness.keys}\n".encode("ascii")
            ),
        }
        with _snapshot(workspace, destination) as (database_name, snapshot):
            files[database_name] = _hash_file(destination / database_name)
            parts = _vault_files(workspace.vault, snapshot)
            total = len(parts) + len(files) + 1
            for done, (name, path) in enumerate(parts, start=len(files)):
                try:
                    files[name] = _copy_file(path, destination / name)
                except FileNotFoundError:
                    break  # erased since the snapshot: its row is gone; try a newer one
                if progress is not None:
                    progress(done + 1, total)
            else:
                images, probes = live_names(workspace.engine)
                gone = (snapshot.images - images) | (snapshot.probes - probes)
                if not gone:
                    files[MARKER_NAME] = _copy_file(
                        workspace.home / MARKER_NAME, destination / MARKER_NAME
                    )
                    if progress is not None:
                        progress(total, total)
                    return files, database_name, snapshot
        _clear(destination)
    raise BackupError(
        f"the workspace deleted photos under the backup {_ATTEMPTS} times running; try again "
        "when fewer expungements or retention runs are under way"
    )


def back_up(
    workflow: Workflow, actor: Actor, destination: Path, progress: Progress | None = None
) -> BackupInfo:
    """Write a backup of the running workspace into `destination` (new or empty, outside
    the workspace); audited as `workspace.backed_up` with the manifest's SHA-256."""
    require_permission(workflow, actor, BACKUP_PERMISSION)
    workspace = workflow.workspace
    target = check_destination(workspace, destination)
    made = not target.exists()
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        files, database_name, snapshot = _copy_parts(workspace, target, progress)
        # Everything on disk before the manifest: a backup with a manifest is whole.
        _sync_folder(target)
        with workspace.session() as session:
            kek = kek_record(session)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "made_by": actor.username,
            "candor_version": _candor_version(),
            "alembic_head": head_revision(),
            "workspace_id": snapshot.workspace_id,
            "purpose": workspace.purpose,
            "database": "sqlite" if workspace.database_url is None else "postgresql",
            "database_file": database_name,
            "audit": {
                "log_size": snapshot.log_size,
                "last_leaf_hash": snapshot.last_leaf,
                "tree_size": snapshot.checkpoint_size,
                "root_hash": snapshot.checkpoint_root,
                "checkpoint_note": snapshot.checkpoint_note,
            },
            "key_encryption_key": None
            if kek is None
            else {"path": str(kek.path), "fingerprint": kek.fingerprint},
            "files": {
                name: {"sha256": sha256, "size": size}
                for name, (sha256, size) in sorted(files.items())
            },
        }
        body = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        manifest_sha256, _ = _write_file(target / MANIFEST_NAME, body)
    except BaseException:
        with suppress(OSError):
            _clear(target)
            if made:
                target.rmdir()
        raise
    total_bytes = sum(size for _, size in files.values())
    with act(workflow, actor, BACKUP_PERMISSION) as action:
        seq = action.record(
            BACKUP_ACTION,
            {},
            {
                "destination": str(target),
                "manifest_sha256": manifest_sha256,
                "files": len(files),
                "bytes": total_bytes,
                "log_size": snapshot.log_size,
                "tree_size": snapshot.checkpoint_size,
            },
        )
    return BackupInfo(
        destination=str(target),
        database=manifest["database"],
        files=len(files),
        bytes=total_bytes,
        manifest_sha256=manifest_sha256,
        log_size=snapshot.log_size,
        tree_size=snapshot.checkpoint_size,
        root_hash=snapshot.checkpoint_root,
        audit_seq=seq,
    )


# -- restore ------------------------------------------------------------------------------


def _read_manifest(backup: Path) -> dict[str, Any]:
    path = backup / MANIFEST_NAME
    try:
        body = path.read_bytes()
        manifest = json.loads(body.decode("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{backup} is not a Candor backup: it has no {MANIFEST_NAME}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BackupError(f"{path} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{path} is not a Candor backup manifest")
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise BackupError(
            f"{path} has format version {manifest.get('format_version')!r}; this Candor "
            f"reads version {MANIFEST_VERSION}"
        )
    for key, kind in (
        ("files", dict),
        ("audit", dict),
        ("workspace_id", str),
        ("database", str),
        ("database_file", str),
    ):
        if not isinstance(manifest.get(key), kind):
            raise BackupError(f"{path} lacks the field {key!r} or it has the wrong type")
    if manifest["database"] not in ("sqlite", "postgresql"):
        raise BackupError(f"{path}: unknown database {manifest['database']!r}")
    # Compared by the operator with the backup's audit entry (`workspace.backed_up`).
    manifest["manifest_sha256"] = hashlib.sha256(body).hexdigest()
    return manifest


def _allowed_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts or "\\" in name:
        return False
    # keys/ holds the witness and the public keys only: a private key is never restored
    # from a backup, even one someone put there.
    return parts[0] in _VAULT_KINDS or name in (
        DATABASE_NAME,
        DUMP_NAME,
        MARKER_NAME,
        WITNESS_NAME,
        PUBLIC_KEYS_NAME,
    )


def verify_backup(backup: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Every file of the backup checked against its manifest (SHA-256 and size), and no
    file the manifest does not list; the manifest, or a BackupError naming the file."""
    backup = Path(backup).expanduser().absolute()
    if not backup.is_dir():
        raise BackupError(f"{backup} is not a folder holding a backup")
    manifest = _read_manifest(backup)
    listed: dict[str, Any] = manifest["files"]
    for name in (manifest["database_file"], WITNESS_NAME, MARKER_NAME):
        if name not in listed:
            raise BackupError(f"the manifest of {backup} does not list {name}")
    on_disk = {
        path.relative_to(backup).as_posix()
        for path in backup.rglob("*")
        if not path.is_dir() and path != backup / MANIFEST_NAME
    }
    for name in sorted(on_disk - set(listed)):
        raise BackupError(f"{backup / name} is not listed in the manifest; the backup was altered")
    for done, (name, expected) in enumerate(sorted(listed.items()), start=1):
        if not _allowed_name(name) or not isinstance(expected, dict):
            raise BackupError(f"the manifest of {backup} lists an unexpected file {name!r}")
        path = backup / name
        if not path.is_file() or path.is_symlink():
            raise BackupError(f"{path} is missing from the backup")
        sha256, size = _hash_file(path)
        if size != expected.get("size"):
            raise BackupError(
                f"{path} is {size} bytes, the manifest says {expected.get('size')}: "
                "cut short or altered"
            )
        if sha256 != expected.get("sha256"):
            raise BackupError(f"{path} does not match its SHA-256 in the manifest: altered")
        if progress is not None:
            progress(done, len(listed))
    return manifest


def _check_home(home: Path) -> Path:
    target = Path(home).expanduser().absolute()
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise BackupError(f"{target} exists and is not a folder; restore into a new one")
        if any(target.iterdir()):
            raise BackupError(f"{target} is not empty; restore into a new or empty folder")
    return target


def _readable_kek(manifest: dict[str, Any]) -> Path | None:
    """The KEK file this machine would open the restored workspace with, if it is there
    and is the backup's KEK (by fingerprint); None otherwise."""
    record = manifest.get("key_encryption_key")
    if not isinstance(record, dict):
        return None
    configured = os.environ.get(KEK_FILE_VARIABLE, "").strip()
    path = Path(configured).expanduser() if configured else Path(str(record.get("path")))
    try:
        kek = read_key_file(path, "the key-encryption key")
    except (KeyFileError, OSError):
        return None
    return path if key_fingerprint(kek) == record.get("fingerprint") else None


def expunged_since(export: Path, manifest: dict[str, Any]) -> dict[int, int]:
    """{subject id: seq of its expungement} for every expungement the live log recorded
    after the backup, read from a `candor audit export` of it; the export must verify and
    be the backup's own log, grown from it (its entry at the backup's size is the same)."""
    audit = manifest["audit"]
    size = audit.get("log_size")
    held: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="candor-restore-") as scratch:
        note = audit.get("checkpoint_note")
        if isinstance(note, str):
            held.append(Path(scratch) / "backup.note")
            held[0].write_text(note, encoding="utf-8")
        report = verify_export(export, held)
    if not report.ok:
        raise BackupError(f"the audit export {export} does not verify: {report.problem}")
    expected_name = f"candor-{manifest['workspace_id']}"
    # A key's name is the log's origin, then "+" and the key's id.
    if report.key_name is not None and report.key_name.split("+")[0] != expected_name:
        raise BackupError(
            f"the audit export {export} is the log {report.key_name}, not this backup's "
            f"({expected_name})"
        )
    raw = (export / ENTRIES_FILE).read_bytes()
    entries = raw[:-1].split(b"\n") if raw else []
    if not isinstance(size, int) or len(entries) < size:
        raise BackupError(
            f"the audit export {export} holds {len(entries)} entries, fewer than the "
            f"backup's {size}: export the live log after the backup"
        )
    if size and leaf_hash(entries[size - 1]).hex() != audit.get("last_leaf_hash"):
        raise BackupError(
            f"the audit export {export} is not the log this backup was taken from: its "
            f"entry {size} differs from the backup's"
        )
    owed: dict[int, int] = {}
    for seq, body in enumerate(entries[size:], start=size + 1):
        if _EXPUNGED.encode() not in body:
            continue
        entry = parse_entry(body)
        subject = entry["objects"].get("subject")
        if entry["action"] == _EXPUNGED and isinstance(subject, int):
            owed[subject] = seq
    return owed


def _write_workspace(
    backup: Path, home: Path, manifest: dict[str, Any], database_url: str | None
) -> None:
    BiometricVault.initialise(home)
    (home / "keys").mkdir(mode=0o700, exist_ok=True)
    for name in manifest["files"]:
        if name in (DUMP_NAME, MARKER_NAME, PUBLIC_KEYS_NAME):
            continue
        _copy_file(backup / name, home / name)
    marker = json.loads((backup / MARKER_NAME).read_text(encoding="utf-8"))
    if database_url is not None:
        marker[DATABASE_URL_FIELD] = database_url
    else:
        marker.pop(DATABASE_URL_FIELD, None)
    if database_url is not None:
        restore_postgres(backup / DUMP_NAME, database_url)
    _sync_folder(home)
    # The marker last: a folder without it is never taken for a workspace.
    _write_file(home / MARKER_NAME, (json.dumps(marker, indent=2) + "\n").encode("utf-8"))


def _expunge_again(workflow: Workflow, owed: dict[int, int]) -> tuple[int, ...]:
    done: list[int] = []
    for subject_id, seq in sorted(owed.items()):
        with workflow.workspace.session() as session, session.begin():
            ref = subject_ref_of(session, subject_id)
            if ref is None:
                continue  # retention or a later expungement already took them
            removed = remove_subject_rows(session, workflow, subject_id, ref)
            record(
                session,
                workflow,
                None,
                _EXPUNGED,
                {"subject": removed.subject_id},
                {
                    **removed_details(removed),
                    "reason": f"restored from a backup: expunged in the live log, entry {seq}",
                },
            )
        erase_removed(workflow, removed)
        done.append(subject_id)
    return tuple(done)


def restore_backup(
    backup: Path,
    home: Path,
    *,
    database_url: str | None = None,
    signing_key: Path | None = None,
    expunged_export: Path | None = None,
    no_later_log: bool = False,
    progress: Progress | None = None,
) -> RestoreInfo:
    """Rebuild the backup's workspace in `home` (new or empty); see the module docstring.

    Exactly one of `expunged_export` (a later audit export of the live workspace) and
    `no_later_log` (the operator has none) must be given. Every hash is checked before
    anything is written. With the KEK on this machine (at $CANDOR_KEK_FILE or the recorded
    path) the restored workspace is opened, the expungements owed are done again, the
    restore is audited (with the signing key), and `candor check --fix` runs (it rebuilds
    the index); otherwise the result says what to put back first."""
    if expunged_export is None and not no_later_log:
        raise BackupError(
            "say what became of people expunged after the backup: give --expunged-since "
            "EXPORT (a `candor audit export` of the live workspace made after it: they are "
            "expunged again), or --no-later-log if you have no such export (they come back "
            "and the restore records that); nothing was written"
        )
    if expunged_export is not None and no_later_log:
        raise BackupError(
            "--expunged-since and --no-later-log contradict each other: give one; nothing "
            "was written"
        )
    backup = Path(backup).expanduser().absolute()
    manifest = verify_backup(backup, progress)
    target = _check_home(home)
    if manifest["database"] == "postgresql":
        if database_url is None:
            raise BackupError(
                "the backup holds a PostgreSQL dump: give the empty database to restore "
                "into with --database postgresql://USER@HOST/DATABASE"
            )
        database_url = check_postgres_url(database_url)
        try:
            used = database_is_empty(database_url)
        except Exception as error:  # any driver error: one line, naming the database
            raise BackupError(f"cannot reach the database {database_url}: {error}") from None
        if used:
            raise BackupError(
                f"the database {database_url} already holds {used} tables; restore into an "
                "empty one (createdb)"
            )
    elif database_url is not None:
        raise BackupError("the backup holds a SQLite database: leave --database out")
    if signing_key is not None and not Path(signing_key).is_file():
        raise BackupError(f"the signing key {signing_key} is not a file")
    owed = expunged_since(expunged_export, manifest) if expunged_export else {}
    kek_path = _readable_kek(manifest)
    if owed and (kek_path is None or signing_key is None):
        raise BackupError(
            f"the live log expunged {len(owed)} subject(s) after this backup; the restore "
            "expunges them again, which needs the key-encryption key on this machine "
            f"(${KEK_FILE_VARIABLE} or the recorded path) and --signing-key FILE; nothing "
            "was written"
        )
    made = not target.exists()
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)
    try:
        _write_workspace(backup, target, manifest, database_url)
        if signing_key is not None:
            _copy_file(Path(signing_key), target / DEFAULT_KEY_NAME)
    except BaseException:
        with suppress(OSError):
            _clear(target)
            if made:
                target.rmdir()
        raise
    return _after_restore(
        manifest, target, kek_path, owed, signing_key is not None, later_log=not no_later_log
    )


def _unsaid_warnings(made_at: str, recorded: bool) -> list[str]:
    """What an operator restoring without a later log (--no-later-log) is told."""
    warnings = [
        f"restored without a later audit log (--no-later-log): anyone expunged after the "
        f"backup was made ({made_at}) is back in this workspace and its index; if an audit "
        "export of the live workspace turns up, restore again with --expunged-since EXPORT. "
        "So that old backups cannot bring expunged people back, rotate the KEK after "
        "expunging (`candor keys rotate --kek NEW_FILE`) and destroy the old KEK file once "
        "the last backup made under it has expired"
    ]
    if not recorded:
        warnings.append(
            "this restore is not in the restored audit log (that needs the key-encryption "
            "key on this machine and --signing-key): record yourself that it was made "
            "without a later log"
        )
    return warnings


def _record_restore(
    workflow: Workflow,
    manifest: dict[str, Any],
    later_log: bool,
    again: tuple[int, ...],
) -> int:
    with workflow.workspace.session() as session, session.begin():
        return record(
            session,
            workflow,
            None,
            RESTORE_ACTION,
            {},
            {
                "manifest_sha256": manifest["manifest_sha256"],
                "made_at": manifest.get("made_at"),
                "backup_log_size": manifest["audit"].get("log_size"),
                "later_log": later_log,
                "expunged_again": len(again),
            },
        )


def _after_restore(
    manifest: dict[str, Any],
    home: Path,
    kek_path: Path | None,
    owed: dict[int, int],
    have_signing_key: bool,
    *,
    later_log: bool,
) -> RestoreInfo:
    record_ = manifest.get("key_encryption_key") or {}
    audit = manifest["audit"]
    made_at = str(manifest.get("made_at") or "an unrecorded date")
    steps: list[str] = []
    if os.environ.get(KEY_ENV):
        steps.append(
            f"${KEY_ENV} is set: the restored workspace looks for its signing key and "
            f"witness there; move {home / WITNESS_NAME} beside that key, or unset it"
        )
    if not have_signing_key:
        steps.append(
            f"put the audit signing key (kept apart from backups) at {home / DEFAULT_KEY_NAME} "
            f"(mode 0600), or point ${KEY_ENV} at it with the witness beside it"
        )
    if kek_path is None:
        steps.append(
            f"put the key-encryption key file (fingerprint {record_.get('fingerprint')}) at "
            f"{record_.get('path')}, or set ${KEK_FILE_VARIABLE} to where it is, then run "
            "`candor audit verify` and `candor check --fix` (it rebuilds the index)"
        )
        return RestoreInfo(
            home=str(home),
            database=manifest["database"],
            files=len(manifest["files"]),
            manifest_sha256=manifest["manifest_sha256"],
            log_size=int(audit.get("log_size") or 0),
            tree_size=int(audit.get("tree_size") or 0),
            kek_path=record_.get("path"),
            kek_fingerprint=record_.get("fingerprint"),
            expunged_again=(),
            checked=False,
            check_ok=None,
            audit_ok=None,
            problems=(),
            next_steps=tuple(steps),
            made_at=made_at,
            later_log=later_log,
            warnings=() if later_log else tuple(_unsaid_warnings(made_at, recorded=False)),
        )
    try:
        with open_workflow(home) as workflow:
            again = _expunge_again(workflow, owed)
            # Before the check, so that the check verifies the log with this entry in it.
            seq = (
                _record_restore(workflow, manifest, later_log, again) if have_signing_key else None
            )
            # The index is built even without a later log: the operator has said so, the
            # log says so, and a workspace without its index cannot be searched or checked.
            outcome = check_workspace(workflow, fix=True)
    except (WorkflowError, StoreError) as error:
        raise BackupError(
            f"the backup was restored into {home}, but opening it failed: {error}"
        ) from None
    problems = _problems(outcome)
    return RestoreInfo(
        home=str(home),
        database=manifest["database"],
        files=len(manifest["files"]),
        manifest_sha256=manifest["manifest_sha256"],
        log_size=int(audit.get("log_size") or 0),
        tree_size=int(audit.get("tree_size") or 0),
        kek_path=str(kek_path),
        kek_fingerprint=record_.get("fingerprint"),
        expunged_again=again,
        checked=True,
        check_ok=not outcome.needs_attention,
        audit_ok=None if outcome.audit is None else outcome.audit.ok,
        problems=problems,
        next_steps=tuple(steps),
        made_at=made_at,
        later_log=later_log,
        restore_seq=seq,
        warnings=() if later_log else tuple(_unsaid_warnings(made_at, recorded=seq is not None)),
    )


def _problems(outcome: CheckOutcome) -> tuple[str, ...]:
    found: list[str] = []
    left = outcome.left
    if left.missing_images:
        found.append(f"{len(left.missing_images)} gallery image file(s) missing")
    if left.undecryptable or left.key_problems:
        found.append(
            f"{len(left.undecryptable)} file(s) and {len(left.key_problems)} key(s) do not "
            "open under the key-encryption key"
        )
    if outcome.index is not None and not outcome.index.agrees:
        found.append("the gallery index disagrees with the database")
    if outcome.audit is not None and not outcome.audit.ok:
        found.append(f"the audit log does not verify: {outcome.audit.problem}")
    return tuple(found)
