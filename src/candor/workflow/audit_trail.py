"""The audit trail: one entry per action, written in the action's own transaction.

`record` appends an entry to the hash-chained, Merkle-hashed log in the caller's
session, so the action and its entry commit together or not at all. Checkpoints (tree
size, root, time) are signed with the workspace's Ed25519 key automatically every
`checkpoint_every` entries or when the last one is older than `checkpoint_seconds`,
and on demand. Entries hold internal ids and hashes only: never face data, nor the
names or booking numbers of gallery subjects.

Given a `Workflow` instead of a bare `Workspace`, `record` and `make_checkpoint` take
their time from the workflow's clock and the schedule from the workflow, so a
simulated clock dates the entries and checkpoints of a simulation consistently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, SessionTransaction

from candor.audit import Checkpoint, SigningKey, build_entry, leaf_hash, merkle_root
from candor.store import AuditCheckpoint, AuditEntry, Workspace

if TYPE_CHECKING:
    from candor.workflow.context import Workflow

GENESIS_PREV = "0" * 64
KEY_ENV = "CANDOR_AUDIT_KEY"
_TAIL_KEY = "candor.audit.tail"
# The append path runs on the session's connection with table columns, off the ORM: it
# is part of every governed search, and the ORM's unit of work and result objects cost
# more than the statements (bench/governed_overhead.py).
_AUDIT_INSERT = insert(AuditEntry)  # run on the connection: Core semantics
_ENTRIES = AuditEntry.__table__.c


@dataclass(frozen=True)
class CheckpointSchedule:
    """When checkpoints are made without being asked: whichever comes first."""

    every_entries: int = 100
    every_seconds: float = 60.0

    @classmethod
    def from_environment(cls) -> CheckpointSchedule:
        """$CANDOR_CHECKPOINT_EVERY (entries) and $CANDOR_CHECKPOINT_SECONDS, else defaults."""
        default = cls()
        try:
            every = int(os.environ.get("CANDOR_CHECKPOINT_EVERY", default.every_entries))
            seconds = float(os.environ.get("CANDOR_CHECKPOINT_SECONDS", default.every_seconds))
        except ValueError as error:
            raise ValueError(f"checkpoint schedule: {error}") from error
        if every < 1 or seconds <= 0:
            raise ValueError(
                "CANDOR_CHECKPOINT_EVERY must be at least 1 and CANDOR_CHECKPOINT_SECONDS above 0"
            )
        return cls(every, seconds)


def signing_key_path(workspace: Workspace) -> Path:
    """The audit signing key: $CANDOR_AUDIT_KEY, else keys/audit-signing.key in the workspace.

    Keeping the key outside the workspace (another disk, another account) means whoever
    copies the workspace cannot also re-sign a rewritten history.
    """
    configured = os.environ.get(KEY_ENV)
    return Path(configured) if configured else workspace.home / "keys" / "audit-signing.key"


def log_origin(workspace: Workspace) -> str:
    """The log's name in its checkpoints: one per workspace."""
    return f"candor-{workspace.workspace_id}"


def ensure_signing_key(workspace: Workspace) -> SigningKey:
    """Load the workspace's signing key, making it (mode 0600) if there is none yet."""
    path = signing_key_path(workspace)
    if path.exists():
        return SigningKey.load(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return SigningKey.generate(path, log_origin(workspace))


@dataclass
class _Tail:
    """The log's last entry and latest checkpoint as seen inside one transaction.

    Once a transaction has written an entry it holds SQLite's write lock until it ends,
    and entries are only ever appended by `record`, so no one else can move either; the
    next entries of the same transaction need not read them again. Another transaction,
    a savepoint, or this one after a rollback is another object and reads them afresh.
    """

    transaction: SessionTransaction
    seq: int
    leaf_hash: str
    checkpoint: tuple[int, datetime] | None


def _innermost_transaction(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def _cached_tail(session: Session) -> _Tail | None:
    tail = session.info.get(_TAIL_KEY)
    if isinstance(tail, _Tail) and tail.transaction is _innermost_transaction(session):
        return tail
    return None


def _clock_of(where: Workspace | Workflow) -> tuple[Workspace, datetime]:
    if isinstance(where, Workspace):
        return where, datetime.now(UTC)
    return where.workspace, where.now()


def record(
    session: Session,
    workspace: Workspace | Workflow,
    actor: str | None,
    action: str,
    objects: Mapping[str, int | str],
    details: Mapping[str, object],
    *,
    schedule: CheckpointSchedule | None = None,
) -> int:
    """Append one entry in `session`'s transaction and return its sequence number.

    workspace: a Workflow (its clock dates the entry, its schedule applies) or a
        Workspace (the system clock, the schedule given or the environment's).
    """
    _, now = _clock_of(workspace)
    if schedule is None and not isinstance(workspace, Workspace):
        schedule = workspace.checkpoint_schedule
    tail = _cached_tail(session)
    if tail is not None:
        seq, prev_hex, checkpoint = tail.seq + 1, tail.leaf_hash, tail.checkpoint
    else:
        newest = select(_ENTRIES.seq, _ENTRIES.leaf_hash).order_by(_ENTRIES.seq.desc()).limit(1)
        last = session.connection().execute(newest).first()
        seq = 1 if last is None else last.seq + 1
        prev_hex = GENESIS_PREV if last is None else last.leaf_hash
        checkpoint = _latest_checkpoint(session)
    body = build_entry(
        seq=seq,
        time=now,
        actor=actor,
        action=action,
        objects=dict(objects),
        details=dict(details),
        prev_hex=prev_hex,
    )
    entry_hash = leaf_hash(body).hex()
    session.connection().execute(
        _AUDIT_INSERT, {"seq": seq, "body": body, "leaf_hash": entry_hash, "created_at": now}
    )
    transaction = _innermost_transaction(session)
    if transaction is not None:
        session.info[_TAIL_KEY] = _Tail(transaction, seq, entry_hash, checkpoint)
    if _checkpoint_due(checkpoint, seq, now, schedule or CheckpointSchedule.from_environment()):
        make_checkpoint(session, workspace)
    return seq


def _latest_checkpoint(session: Session) -> tuple[int, datetime] | None:
    checkpoints = AuditCheckpoint.__table__.c
    latest = (
        session.connection()
        .execute(
            select(checkpoints.tree_size, checkpoints.created_at)
            .order_by(checkpoints.tree_size.desc())
            .limit(1)
        )
        .first()
    )
    return None if latest is None else (latest.tree_size, latest.created_at)


def _checkpoint_due(
    latest: tuple[int, datetime] | None, seq: int, now: datetime, schedule: CheckpointSchedule
) -> bool:
    if latest is None:
        return True
    size, made_at = latest
    if seq - size >= schedule.every_entries:
        return True
    return now - made_at >= timedelta(seconds=schedule.every_seconds)


def make_checkpoint(session: Session, workspace: Workspace | Workflow) -> AuditCheckpoint | None:
    """Sign a checkpoint of the whole log as it stands in `session`; None if nothing new.

    workspace: a Workflow (its clock dates the checkpoint) or a Workspace (the system clock).
    """
    space, now = _clock_of(workspace)
    size = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    existing = session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.tree_size == size))
    if size == 0 or existing is not None:
        _note_checkpoint(session, existing)
        return existing
    leaves = [
        bytes.fromhex(h)
        for h in session.scalars(select(AuditEntry.leaf_hash).order_by(AuditEntry.seq))
    ]
    checkpoint = Checkpoint(origin=log_origin(space), size=size, root=merkle_root(leaves), time=now)
    note = ensure_signing_key(space).sign(checkpoint)
    row = AuditCheckpoint(
        tree_size=size, root_hash=checkpoint.root.hex(), note=note, created_at=now
    )
    session.add(row)
    session.flush()
    _note_checkpoint(session, row)
    return row


def _note_checkpoint(session: Session, row: AuditCheckpoint | None) -> None:
    tail = _cached_tail(session)
    if tail is not None and row is not None:
        tail.checkpoint = (row.tree_size, row.created_at)
