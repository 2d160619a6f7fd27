"""The audit log for people who check it: verify, prove, checkpoint, export; and its keys.

Reading the log is for auditors (the policy's `audit.read`); making a checkpoint on
demand for `audit.checkpoint`. Exports, checkpoints and key rotations are themselves
audited actions. Rotating the signing key changes what every later checkpoint is signed
with, so it takes `policy.manage`, the admin's own permission: like a policy change, it
changes the rules every other action is held to. Nothing here signs a log that does not
verify against its witness (candor.workflow.audit_trail).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from candor.audit import (
    AuditError,
    VerificationReport,
    inclusion_proof,
    leaf_hash,
    open_with,
    verify_export,
    verify_inclusion,
    write_export,
)
from candor.sealing import KeyFileError, key_fingerprint, read_key_file
from candor.store import AuditCheckpoint
from candor.store.audit_log import (
    EntryFilter,
    EntryRow,
    browser_rows,
    entry_columns,
    find_entries,
    lock_log_head,
    logged_actions,
)
from candor.store.data_keys import (
    KeyEncryptionKeyError,
    count_data_keys,
    kek_file_in_use,
    kek_record,
    load_kek,
)
from candor.store.workspace import session_without_kek
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import (
    KEY_ENV,
    ROTATION_ACTION,
    AuditSigningError,
    SigningKeyError,
    check_stored_log,
    current_witness,
    describe_witness,
    load_signing_key,
    log_keys,
    make_checkpoint,
    prepared_rotation,
    record,
    signing_key_path,
    stored_log,
    witness_path,
)
from candor.workflow.context import Workflow
from candor.workflow.errors import NotFoundError, WorkflowError
from candor.workflow.paging import Page, PageRequest, page_of
from candor.workflow.permissions import require_permission
from candor.workflow.reconciliation import log_only, with_store_check

__all__ = [
    "ROTATE_PERMISSION",
    "CheckpointInfo",
    "EntryFilter",
    "ExportFolderError",
    "InclusionProof",
    "KeyRotation",
    "LoggedEntry",
    "UnverifiedLogError",
    "VerificationReport",
    "check_export_folder",
    "checkpoint_now",
    "export_log",
    "kek_location",
    "key_locations",
    "list_entries",
    "log_actions",
    "prove_entry",
    "rotate_signing_key",
    "verifier_key",
    "verify_export_folder",
    "verify_log",
]

# Reused from the policy's vocabulary (candor.policy.roles) rather than a new permission
# no existing policy grants: an admin-only permission, as a key rotation must be.
ROTATE_PERMISSION: Final = "policy.manage"
R = TypeVar("R", bound=VerificationReport)


class UnverifiedLogError(AuditSigningError):
    """The stored log fails verification, so it is neither signed again nor exported."""


class ExportFolderError(WorkflowError):
    """The folder given for an export cannot take one."""


@dataclass(frozen=True)
class InclusionProof:
    """That entry `seq` is in the tree of the latest checkpoint, checkable by anyone."""

    seq: int
    entry: str
    leaf_hash: str
    tree_size: int
    root_hash: str
    proof: tuple[str, ...]
    checkpoint_note: str
    verifier_key: str


@dataclass(frozen=True)
class CheckpointInfo:
    """A signed checkpoint."""

    tree_size: int
    root_hash: str
    note: str


@dataclass(frozen=True)
class KeyRotation:
    """A rotation of the signing key: the checkpoint both keys (or, the old one lost, the
    new one alone) signed, at the size of the rotation's own entry."""

    previous_key: str
    key: str
    previous_key_signed: bool
    tree_size: int
    note: str
    key_path: str


def verifier_key(workflow: Workflow) -> str:
    """The public keys an outside verifier needs: the log's verifier key line, or, once the
    key has been rotated, every key with the sizes it covers (candor.audit.keyring)."""
    return str(log_keys(workflow.workspace))


def verify_log(
    workflow: Workflow, actor: Actor, against: list[Path] | None = None
) -> VerificationReport:
    """Check the whole log in the database against its checkpoints, its witness and any
    held ones, then the store's tables against the log (see candor.workflow.reconciliation)."""
    require_permission(workflow, actor, "audit.read")
    return verify_stored_log(workflow, [path.read_text() for path in against or []])


def verify_stored_log(workflow: Workflow, held: list[str] | None = None) -> VerificationReport:
    """verify_log's checks without its permission: for `candor check`, which needs no login
    (it tells only whether the log and the tables agree, and where they first do not)."""
    # Reads only: an autobegun session, one snapshot, no write lock (begin() takes it).
    with workflow.workspace.session() as session:
        report = check_stored_log(session, workflow.workspace, held or []).report
    return _with_browser_check(workflow, with_store_check(workflow, report))


def _with_browser_check(workflow: Workflow, report: R) -> R:
    """`report`, failed when an entry's browser columns disagree with its bytes: a column
    changed behind Candor's back could hide an entry from the audit browser's filters
    (the bytes themselves are what the chain and checkpoints protect)."""
    if not report.ok:
        return report
    with workflow.workspace.session() as session:
        rows = browser_rows(session)
    for row in rows:
        try:
            entry = json.loads(row.body)
            expected = entry_columns(entry["action"], entry["actor"], entry["objects"])
        except (ValueError, KeyError, TypeError):
            continue  # the log's own check judges the bytes
        found = {
            "action": row.action,
            "actor": row.actor,
            "search_id": row.search_id,
            "case_number": row.case_number,
        }
        if found != expected:
            wrong = ", ".join(key for key in found if found[key] != expected[key])
            return dataclasses.replace(
                report,
                ok=False,
                first_bad_seq=row.seq,
                problem=(
                    f"entry {row.seq}'s browser columns ({wrong}) disagree with its bytes: "
                    "the audit browser's filters could miss entries"
                ),
            )
    return report


def prove_entry(workflow: Workflow, actor: Actor, seq: int) -> InclusionProof:
    """An inclusion proof of entry `seq` against the latest checkpoint that covers it."""
    require_permission(workflow, actor, "audit.read")
    with workflow.workspace.session() as session:
        entries, notes = stored_log(session)
    if not 1 <= seq <= len(entries):
        raise NotFoundError(f"the log has entries 1 to {len(entries)}, not {seq}")
    keys = log_keys(workflow.workspace)
    covering = [open_with(note, keys) for note in notes]
    usable = [(cp, note) for cp, note in zip(covering, notes, strict=True) if cp.size >= seq]
    if not usable:
        raise WorkflowError(
            f"entry {seq} comes after the last checkpoint; make one with `candor audit checkpoint`"
        )
    checkpoint, note = usable[-1]
    leaves = [leaf_hash(body) for body in entries[: checkpoint.size]]
    proof = inclusion_proof(leaves, seq - 1, checkpoint.size)
    verify_inclusion(leaves[seq - 1], seq - 1, checkpoint.size, proof, checkpoint.root)
    return InclusionProof(
        seq=seq,
        entry=entries[seq - 1].decode(),
        leaf_hash=leaves[seq - 1].hex(),
        tree_size=checkpoint.size,
        root_hash=checkpoint.root.hex(),
        proof=tuple(node.hex() for node in proof),
        checkpoint_note=note,
        verifier_key=str(keys),
    )


@dataclass(frozen=True)
class LoggedEntry:
    """One entry of the log as the audit browser shows it: its fields as its body holds
    them (the columns that found it are only an index) and its leaf hash."""

    seq: int
    time: str
    actor: str | None
    action: str
    objects: dict[str, Any]
    details: dict[str, Any]
    leaf_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "objects": self.objects,
            "details": self.details,
            "leaf_hash": self.leaf_hash,
        }


def _logged(row: EntryRow) -> LoggedEntry:
    try:
        entry = json.loads(row.body)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        # A damaged body is shown as damaged, not hidden; `verify_log` says what is wrong.
        entry = {
            "action": "(unreadable entry)",
            "details": {"body": row.body.decode(errors="replace")},
        }
    objects, details = entry.get("objects"), entry.get("details")
    return LoggedEntry(
        seq=row.seq,
        time=str(entry.get("time", "")),
        actor=entry.get("actor") if isinstance(entry.get("actor"), str) else None,
        action=str(entry.get("action", "")),
        objects=objects if isinstance(objects, dict) else {},
        details=details if isinstance(details, dict) else {},
        leaf_hash=row.leaf_hash,
    )


def list_entries(
    workflow: Workflow, actor: Actor, chosen: EntryFilter, page: PageRequest
) -> Page[LoggedEntry]:
    """The entries `chosen` matches, newest first, a page at a time (`audit.read`).

    Browsing is a read, unaudited like `verify_log` and `prove_entry`: recording each look
    would grow the log with every page an auditor turns. An entry's inclusion proof is
    `prove_entry(seq)`.
    """
    require_permission(workflow, actor, "audit.read")
    for name, moment in (("since", chosen.since), ("until", chosen.until)):
        if moment is not None and moment.tzinfo is None:
            raise WorkflowError(f"{name} must carry a time zone (UTC), not {moment.isoformat()}")
    if chosen.since is not None and chosen.until is not None and chosen.since >= chosen.until:
        raise WorkflowError(
            f"since ({chosen.since.isoformat()}) must come before "
            f"until ({chosen.until.isoformat()})"
        )
    with workflow.workspace.session() as session:
        rows, total = find_entries(session, chosen, page.limit, page.offset)
    return page_of([_logged(row) for row in rows], total, page)


def log_actions(workflow: Workflow, actor: Actor) -> list[str]:
    """The actions the log holds, in name order: the choices of the browser's filter."""
    require_permission(workflow, actor, "audit.read")
    with workflow.workspace.session() as session:
        return logged_actions(session)


def _refuse_unless_verified(report: VerificationReport, what: str) -> None:
    if not report.ok:
        raise UnverifiedLogError(
            f"the audit log does not verify, so {what}: {report.problem} "
            "(`candor audit verify` says more)"
        )


def _info(row: AuditCheckpoint | None) -> CheckpointInfo:
    if row is None:
        raise WorkflowError("the audit log is empty")
    return CheckpointInfo(row.tree_size, row.root_hash, row.note)


def checkpoint_now(workflow: Workflow, actor: Actor) -> CheckpointInfo:
    """Sign a checkpoint of the log as it stands (after recording this request), once the
    whole log has verified against its witness."""
    require_permission(workflow, actor, "audit.checkpoint")
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        # Held before the log is read, so that what is verified is what is signed.
        lock_log_head(session)
        report = check_stored_log(session, workspace).report
        _refuse_unless_verified(report, "no checkpoint is signed")
        record(session, workflow, actor.username, "audit.checkpoint_requested", {}, {})
        return _info(make_checkpoint(session, workflow))


def check_export_folder(directory: Path) -> None:
    """Refuse, saying why, a folder an export cannot go into: a file or a link, a folder
    that is not empty or not writable, or a new one whose parent cannot take it."""
    path = Path(directory)
    advice = "export into a new or empty folder"
    if path.is_symlink():
        raise ExportFolderError(f"{path} is a symbolic link; {advice}")
    if path.exists():
        if not path.is_dir():
            raise ExportFolderError(f"{path} exists and is not a folder; {advice}")
        try:
            occupied = any(path.iterdir())
        except OSError as error:
            raise ExportFolderError(
                f"cannot read the folder {path}: {error.strerror or error}"
            ) from None
        if occupied:
            raise ExportFolderError(f"{path} is not empty; {advice}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ExportFolderError(f"cannot write into {path}: permission denied")
        return
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ExportFolderError(f"cannot make the folder {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportFolderError(f"cannot make the folder {path}: {parent} is not writable")


def export_log(workflow: Workflow, actor: Actor, directory: Path) -> CheckpointInfo:
    """Write entries, checkpoints, the log's keys and its witness to `directory` for an
    outside auditor.

    The whole log is verified against its witness first, and nothing is signed or written
    if it fails. The export is recorded and a checkpoint made after it, so the export
    covers its own entry and ends on a signed checkpoint: nothing in it is chain-only.
    """
    require_permission(workflow, actor, "audit.read")
    check_export_folder(directory)
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        lock_log_head(session)
        report = check_stored_log(session, workspace).report
        _refuse_unless_verified(report, "it is not exported and no checkpoint is signed")
        record(
            session,
            workflow,
            actor.username,
            "audit.exported",
            {},
            {"directory": str(directory)},
        )
        info = _info(make_checkpoint(session, workflow))
    with workspace.session() as session:
        # The witness first: everything it covers has committed, so the entries read
        # after it include its tree.
        witness = current_witness(session, workspace)
        entries, notes = stored_log(session)
    keys = log_keys(workspace)
    if witness.note is None:
        raise AuditSigningError(f"the witness {witness_path(workspace)} holds no checkpoint")
    try:
        write_export(directory, entries, notes, keys, witness=witness.note)
    except (AuditError, OSError) as error:
        raise ExportFolderError(f"cannot write the export into {directory}: {error}") from None
    return info


def verify_export_folder(directory: Path, against: list[Path] | None = None) -> VerificationReport:
    """Verify an export an auditor holds; needs no workspace and no login.

    The same check runs without Candor installed: `python -m candor.audit.verifier`.
    """
    return log_only(verify_export(directory, against or []))


def rotate_signing_key(workflow: Workflow, actor: Actor) -> KeyRotation:
    """Replace the signing key, once the whole log has verified against its witness.

    The rotation is an entry naming both public keys; the checkpoint right after it is
    signed by the new key and by the old one too when its file still exists (a lost key
    can be replaced this way, and the entry says it was not there to sign). The old public
    key stays in the witness and in every export's `audit.keys`, so the checkpoints it
    signed still verify. The new key replaces the key file once that checkpoint commits.
    """
    require_permission(workflow, actor, ROTATE_PERMISSION)
    workspace = workflow.workspace
    with (
        prepared_rotation(workspace) as (old, new),
        workspace.session() as session,
        session.begin(),
    ):
        lock_log_head(session)
        state = check_stored_log(session, workspace)
        _refuse_unless_verified(state.report, "the key is not rotated")
        outgoing = str(state.keys.current)
        if old is not None and old.verifier_key() != outgoing:
            raise SigningKeyError(
                f"the key in {signing_key_path(workspace)} is not the key this log signs "
                f"with ({outgoing}); point {KEY_ENV} at the right file before rotating"
            )
        record(
            session,
            workflow,
            actor.username,
            ROTATION_ACTION,
            {},
            {
                "previous_key": outgoing,
                "key": new.verifier_key(),
                "previous_key_signed": old is not None,
            },
            auto_checkpoint=False,
        )
        info = _info(make_checkpoint(session, workflow, cosigners=[] if old is None else [old]))
    return KeyRotation(
        previous_key=outgoing,
        key=new.verifier_key(),
        previous_key_signed=old is not None,
        tree_size=info.tree_size,
        note=info.note,
        key_path=str(signing_key_path(workspace)),
    )


def key_locations(workflow: Workflow) -> dict[str, object]:
    """Where each key of the workspace lives, and its public part; nothing secret. The
    witness lists the log's public keys with the checkpoint sizes each signs.

    `key_encryption_key`: see `kek_location`.
    """
    workspace = workflow.workspace
    key_path = signing_key_path(workspace)
    signing: dict[str, object] = {
        "path": str(key_path),
        "set_by": KEY_ENV if os.environ.get(KEY_ENV) else "workspace default",
        "exists": key_path.exists(),
        "verifier_key": None,
        "problem": None,
    }
    try:
        signing["verifier_key"] = load_signing_key(workspace).verifier_key()
    except SigningKeyError as error:
        signing["problem"] = str(error)
    witness: dict[str, object] = {"path": str(witness_path(workspace))}
    try:
        found = describe_witness(workspace)
    except AuditSigningError as error:
        witness.update(exists=True, problem=str(error))
    else:
        witness.update(exists=found is not None, problem=None, **(found or {}))
    return {
        "signing_key": signing,
        "witness": witness,
        "key_encryption_key": kek_location(workspace.home),
    }


def kek_location(home: Path) -> dict[str, object]:
    """The key-encryption key: the file this process reads (`set_by`: $CANDOR_KEK_FILE or
    the workspace's record), whether it exists, the recorded fingerprint and the file's,
    how many data keys of each kind it wraps, and `problem`: None, or why the workspace
    refuses it. Reads the record without the KEK, so it works when the workspace does not
    open (a missing or wrong KEK). Never the key."""
    with session_without_kek(home) as session:
        record = kek_record(session)
        counts = count_data_keys(session)
        problem: str | None = None
        if record is None:
            return {
                "path": None,
                "set_by": None,
                "exists": False,
                "fingerprint": None,
                "file_fingerprint": None,
                "data_keys": dataclasses.asdict(counts),
                "problem": "the workspace has no key-encryption key yet: run `candor upgrade`",
            }
        try:
            load_kek(session, home)
        except KeyEncryptionKeyError as error:
            problem = str(error)
    path, set_by = kek_file_in_use(record)
    try:
        file_fingerprint: str | None = key_fingerprint(read_key_file(path))
    except KeyFileError:
        file_fingerprint = None
    return {
        "path": str(path),
        "set_by": set_by,
        "exists": path.exists(),
        "fingerprint": record.fingerprint,
        "file_fingerprint": file_fingerprint,
        "recorded_path": str(record.path),
        "set_at": record.set_at.isoformat(),
        "data_keys": dataclasses.asdict(counts),
        "problem": problem,
    }
