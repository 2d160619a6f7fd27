"""The audit log for people who check it: verify, prove, checkpoint, export.

Reading the log is for auditors (the policy's `audit.read`); making a checkpoint on
demand for `audit.checkpoint`. Exports and checkpoints are themselves audited actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from candor.audit import (
    VerificationReport,
    inclusion_proof,
    leaf_hash,
    open_checkpoint,
    verify_entries,
    verify_export,
    verify_inclusion,
    write_export,
)
from candor.store import AuditCheckpoint, AuditEntry
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import ensure_signing_key, make_checkpoint, record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.permissions import require_permission

__all__ = [
    "CheckpointInfo",
    "InclusionProof",
    "VerificationReport",
    "checkpoint_now",
    "export_log",
    "prove_entry",
    "verifier_key",
    "verify_export_folder",
    "verify_log",
]


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


def _log(workflow: Workflow) -> tuple[list[bytes], list[str]]:
    with workflow.workspace.session() as session:
        entries = list(session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)))
        notes = list(
            session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size))
        )
    return entries, notes


def verifier_key(workflow: Workflow) -> str:
    """The public key line an outside verifier needs (the name is the log's origin)."""
    return ensure_signing_key(workflow.workspace).verifier_key()


def verify_log(
    workflow: Workflow, actor: Actor, against: list[Path] | None = None
) -> VerificationReport:
    """Check the whole log in the database against its checkpoints and any held ones."""
    require_permission(workflow, actor, "audit.read")
    entries, notes = _log(workflow)
    held = [path.read_text() for path in against or []]
    return verify_entries(entries, notes, verifier_key(workflow), held)


def prove_entry(workflow: Workflow, actor: Actor, seq: int) -> InclusionProof:
    """An inclusion proof of entry `seq` against the latest checkpoint that covers it."""
    require_permission(workflow, actor, "audit.read")
    entries, notes = _log(workflow)
    if not 1 <= seq <= len(entries):
        raise WorkflowError(f"the log has entries 1 to {len(entries)}, not {seq}")
    key = verifier_key(workflow)
    covering = [open_checkpoint(note, key) for note in notes]
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
        verifier_key=key,
    )


def checkpoint_now(workflow: Workflow, actor: Actor) -> CheckpointInfo:
    """Sign a checkpoint of the log as it stands (after recording this request)."""
    require_permission(workflow, actor, "audit.checkpoint")
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        record(session, workflow, actor.username, "audit.checkpoint_requested", {}, {})
        row = make_checkpoint(session, workflow)
        if row is None:
            raise WorkflowError("the audit log is empty")
        return CheckpointInfo(row.tree_size, row.root_hash, row.note)


def export_log(workflow: Workflow, actor: Actor, directory: Path) -> CheckpointInfo:
    """Write entries, checkpoints and the public key to `directory` for an outside auditor.

    The export is recorded first and a checkpoint made after it, so the export covers
    its own entry and ends on a signed checkpoint: nothing in it is chain-only.
    """
    require_permission(workflow, actor, "audit.read")
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        record(
            session,
            workflow,
            actor.username,
            "audit.exported",
            {},
            {"directory": str(directory)},
        )
        row = make_checkpoint(session, workflow)
        assert row is not None  # the export's own entry is in the log
        info = CheckpointInfo(row.tree_size, row.root_hash, row.note)
    entries, notes = _log(workflow)
    write_export(directory, entries, notes, verifier_key(workflow))
    return info


def verify_export_folder(directory: Path, against: list[Path] | None = None) -> VerificationReport:
    """Verify an export an auditor holds; needs no workspace and no login.

    The same check runs without Candor installed: `python -m candor.audit.verifier`.
    """
    return verify_export(directory, against or [])
