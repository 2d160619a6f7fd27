"""The audit log's repository: every SQL statement on audit_entries and audit_checkpoints.

The log itself (hashing, the chain, signing, the witness) is candor.workflow.audit_trail;
this module only reads and writes its two tables. The functions take a Session and run
on its connection with table columns, off the ORM where they are on the append path: it
is part of every governed action, and the ORM's unit of work and result objects cost
more than the statements (bench/governed_overhead.py).

One order under many writers. Entries are appended by reading the log's head (the last
seq and its leaf hash) and inserting the next one, so two writers that read the same
head would both write seq n+1: one would fail on the primary key, and a checkpoint signed
between them could cover a different entry than the one that commits. `lock_log_head` is
therefore called before the head is read, in the transaction that appends:

- On SQLite a writing transaction (`session.begin()`, BEGIN IMMEDIATE) already holds the
  database's one write lock from its first statement, so it only checks that the
  transaction is one.
- On PostgreSQL writers run at READ COMMITTED (candor.store.database) and would read the
  same head, so it takes a transaction-scoped advisory lock (AUDIT_LOG_LOCK), held until
  commit or rollback. Each statement after it sees every append committed before it.

The lock is taken once per transaction (audit_trail keeps the head it read until the
transaction or savepoint ends); taking it again in the same transaction does not wait.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from sqlalchemy import ColumnElement, func, insert, or_, select
from sqlalchemy.orm import Session

from candor.store.database import WRITES
from candor.store.errors import StoreError
from candor.store.governance import AuditCheckpoint, AuditEntry

# The advisory lock on the log's head (PostgreSQL). Beside the gallery change log's
# 7262726001 (migration 0007), a constant no other part of Candor takes.
AUDIT_LOG_LOCK: Final = 7262726002
# The gallery change log's lock (migration 0007's trigger takes it when a template is
# added or removed). Taken first, so that an action that changes templates after its
# first audit entry and one that changes them before take the two in one order and
# cannot deadlock on them.
GALLERY_CHANGES_LOCK: Final = 7262726001

_ENTRIES = AuditEntry.__table__.c
_CHECKPOINTS = AuditCheckpoint.__table__.c
_LOCK_HEAD = select(
    func.pg_advisory_xact_lock(GALLERY_CHANGES_LOCK), func.pg_advisory_xact_lock(AUDIT_LOG_LOCK)
)
_LOG_SIZE = select(func.max(_ENTRIES.seq))
_LATEST_CHECKPOINT = (
    select(_CHECKPOINTS.tree_size, _CHECKPOINTS.created_at)
    .order_by(_CHECKPOINTS.tree_size.desc())
    .limit(1)
)
_NEWEST_ENTRY = select(_ENTRIES.seq, _ENTRIES.leaf_hash).order_by(_ENTRIES.seq.desc()).limit(1)
# The head and the newest checkpoint in one statement (one round trip while the head is
# held, which every other writer waits on): four index lookups as scalar subqueries.
_HEAD = select(
    _NEWEST_ENTRY.with_only_columns(_ENTRIES.seq).scalar_subquery(),
    _NEWEST_ENTRY.with_only_columns(_ENTRIES.leaf_hash).scalar_subquery(),
    _LATEST_CHECKPOINT.with_only_columns(_CHECKPOINTS.tree_size).scalar_subquery(),
    _LATEST_CHECKPOINT.with_only_columns(_CHECKPOINTS.created_at).scalar_subquery(),
)
_INSERT_ENTRY = insert(AuditEntry)  # run on the connection: Core semantics
# A search id beyond the 32-bit INTEGER column is not copied (none is ever given).
_MAX_SEARCH_ID: Final = 2**31 - 1


class UnlockedAppendError(StoreError):
    """An audit entry was to be appended outside a writing transaction (a programming
    error: every writer opens its session with `session.begin()`)."""


class EntryRow(NamedTuple):
    """One stored entry: its seq, its canonical bytes and its stored leaf hash (hex)."""

    seq: int
    body: bytes
    leaf_hash: str


class LogHead(NamedTuple):
    """The log's last entry (None when empty) and newest checkpoint (None when none)."""

    entry: tuple[int, str] | None
    checkpoint: tuple[int, datetime] | None


class StoredCheckpoint(NamedTuple):
    """The newest checkpoint with its compact range (None for one signed before 0012)."""

    tree_size: int
    root_hash: str
    note: str
    compact_range: bytes | None


class CheckpointRow(NamedTuple):
    """One stored checkpoint: its tree size, root hash (hex) and signed note."""

    tree_size: int
    root_hash: str
    note: str


def lock_log_head(session: Session) -> None:
    """Hold the log's head in this transaction until it ends (see the module's notes).

    Raises UnlockedAppendError when the session's transaction is not a writing one: a
    reading session keeps its first snapshot (SQLite, and PostgreSQL's REPEATABLE READ),
    so a lock taken later would not show it the entries committed since.
    """
    connection = session.connection()
    if not connection.get_execution_options().get(WRITES, False):
        raise UnlockedAppendError(
            "an audit entry is appended only in a writing transaction: open the session "
            "with `with workspace.session() as session, session.begin():`"
        )
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_HEAD)


def log_head(session: Session) -> LogHead:
    """(seq, leaf hash) of the last entry and (tree size, time) of the newest checkpoint,
    read in one statement (the caller holds the head: `lock_log_head`)."""
    seq, leaf, size, made_at = session.connection().execute(_HEAD).one()
    return LogHead(
        None if seq is None else (int(seq), str(leaf)),
        None if size is None else (int(size), made_at),
    )


def newest_entry(session: Session) -> tuple[int, str] | None:
    """(seq, leaf hash) of the log's last entry, None when the log is empty."""
    last = session.connection().execute(_NEWEST_ENTRY).first()
    return None if last is None else (int(last.seq), str(last.leaf_hash))


def entry_columns(
    action: str | None, actor: str | None, objects: Mapping[str, object]
) -> dict[str, object]:
    """The browser's columns of an entry (action, actor, search_id, case_number), copied
    from the fields its body holds; what an entry does not name is null."""
    search = objects.get("search")
    case = objects.get("case")
    search_id = None
    if isinstance(search, int) and not isinstance(search, bool) and 1 <= search <= _MAX_SEARCH_ID:
        search_id = search
    return {
        "action": action,
        "actor": actor,
        "search_id": search_id,
        "case_number": case if isinstance(case, str) else None,
    }


def append_entry(
    session: Session,
    seq: int,
    body: bytes,
    leaf_hash: str,
    created_at: datetime,
    columns: Mapping[str, object] | None = None,
) -> None:
    """Insert entry `seq` (the caller holds the head: `lock_log_head`), with the browser's
    columns (`entry_columns`) when given."""
    session.connection().execute(
        _INSERT_ENTRY,
        {
            "seq": seq,
            "body": body,
            "leaf_hash": leaf_hash,
            "created_at": created_at,
            **(columns or {}),
        },
    )


@dataclass(frozen=True)
class EntryFilter:
    """Which entries the audit browser lists; None matches anything. `case_number` matches
    the entries naming the case and every entry about a search made for it."""

    case_number: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _conditions(chosen: EntryFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if chosen.case_number is not None:
        searches = (
            select(_ENTRIES.search_id)
            .where(_ENTRIES.case_number == chosen.case_number, _ENTRIES.search_id.is_not(None))
            .scalar_subquery()
        )
        conditions.append(
            or_(_ENTRIES.case_number == chosen.case_number, _ENTRIES.search_id.in_(searches))
        )
    if chosen.actor is not None:
        conditions.append(_ENTRIES.actor == chosen.actor)
    if chosen.action is not None:
        conditions.append(_ENTRIES.action == chosen.action)
    if chosen.since is not None:
        conditions.append(_ENTRIES.created_at >= chosen.since)
    if chosen.until is not None:
        conditions.append(_ENTRIES.created_at < chosen.until)
    return conditions


def find_entries(
    session: Session, chosen: EntryFilter, limit: int, offset: int
) -> tuple[list[EntryRow], int]:
    """One page of the entries `chosen` matches, newest first, and how many match in all:
    filtered on the indexed columns, so no body is decoded to find them."""
    conditions = _conditions(chosen)
    connection = session.connection()
    page = (
        select(_ENTRIES.seq, _ENTRIES.body, _ENTRIES.leaf_hash)
        .where(*conditions)
        .order_by(_ENTRIES.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = [
        EntryRow(int(seq), bytes(body), str(leaf)) for seq, body, leaf in connection.execute(page)
    ]
    total = connection.execute(
        select(func.count()).select_from(AuditEntry).where(*conditions)
    ).scalar_one()
    return rows, int(total)


class BrowserRow(NamedTuple):
    """One entry's bytes beside the columns the audit browser filters on."""

    seq: int
    body: bytes
    action: str | None
    actor: str | None
    search_id: int | None
    case_number: str | None


def browser_rows(session: Session) -> list[BrowserRow]:
    """Every entry's bytes and browser columns, in seq order (to check they agree)."""
    query = select(
        _ENTRIES.seq,
        _ENTRIES.body,
        _ENTRIES.action,
        _ENTRIES.actor,
        _ENTRIES.search_id,
        _ENTRIES.case_number,
    ).order_by(_ENTRIES.seq)
    return [BrowserRow(*row) for row in session.connection().execute(query)]


def logged_actions(session: Session) -> list[str]:
    """Every action the log holds, in name order (the browser's choices)."""
    query = (
        select(_ENTRIES.action)
        .where(_ENTRIES.action.is_not(None))
        .distinct()
        .order_by(_ENTRIES.action)
    )
    return [str(action) for action in session.connection().execute(query).scalars()]


def log_size(session: Session) -> int:
    """The seq of the last entry, 0 for an empty log."""
    return int(session.connection().execute(_LOG_SIZE).scalar() or 0)


def latest_checkpoint(session: Session) -> tuple[int, datetime] | None:
    """(tree size, time) of the newest checkpoint, None when none was signed."""
    latest = session.connection().execute(_LATEST_CHECKPOINT).first()
    return None if latest is None else (int(latest.tree_size), latest.created_at)


def checkpoint_of_size(session: Session, tree_size: int) -> AuditCheckpoint | None:
    """The stored checkpoint of that tree size, if one was signed."""
    return session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.tree_size == tree_size))


def add_checkpoint(
    session: Session,
    tree_size: int,
    root_hash: str,
    note: str,
    created_at: datetime,
    compact_range: bytes | None = None,
) -> AuditCheckpoint:
    """Store a signed checkpoint with its tree's compact range (flushed, so its row exists
    in the transaction)."""
    row = AuditCheckpoint(
        tree_size=tree_size,
        root_hash=root_hash,
        note=note,
        created_at=created_at,
        compact_range=compact_range,
    )
    session.add(row)
    session.flush()
    return row


def newest_checkpoint(session: Session) -> StoredCheckpoint | None:
    """The checkpoint of the largest tree size, with its compact range; None when none."""
    query = (
        select(
            _CHECKPOINTS.tree_size,
            _CHECKPOINTS.root_hash,
            _CHECKPOINTS.note,
            _CHECKPOINTS.compact_range,
        )
        .order_by(_CHECKPOINTS.tree_size.desc())
        .limit(1)
    )
    row = session.connection().execute(query).first()
    if row is None:
        return None
    size, root, note, edge = row
    return StoredCheckpoint(int(size), str(root), str(note), None if edge is None else bytes(edge))


def stored_compact_ranges(session: Session) -> list[StoredCheckpoint]:
    """Every checkpoint that stores its compact range, smallest first."""
    query = (
        select(
            _CHECKPOINTS.tree_size,
            _CHECKPOINTS.root_hash,
            _CHECKPOINTS.note,
            _CHECKPOINTS.compact_range,
        )
        .where(_CHECKPOINTS.compact_range.is_not(None))
        .order_by(_CHECKPOINTS.tree_size)
    )
    return [
        StoredCheckpoint(int(size), str(root), str(note), bytes(edge))
        for size, root, note, edge in session.connection().execute(query)
    ]


def append_entries(session: Session, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert many entries in one statement (seq, body, leaf_hash, created_at and the
    browser's columns each): for building large logs (bench/audit_checkpoint.py); the
    workflow appends one at a time through `append_entry`."""
    if rows:
        session.connection().execute(_INSERT_ENTRY, list(rows))


def entry_at(session: Session, seq: int) -> EntryRow | None:
    """Entry `seq` with its stored leaf hash, None when there is none."""
    query = select(_ENTRIES.seq, _ENTRIES.body, _ENTRIES.leaf_hash).where(_ENTRIES.seq == seq)
    row = session.connection().execute(query).first()
    return None if row is None else EntryRow(int(row.seq), bytes(row.body), str(row.leaf_hash))


def entries_of_action_between(
    session: Session, action: str, after: int, up_to: int
) -> list[tuple[int, bytes]]:
    """(seq, bytes) of the entries after `after` and up to `up_to` whose action column is
    `action`, in order: an index lookup (the browser's action index), not a scan."""
    query = (
        select(_ENTRIES.seq, _ENTRIES.body)
        .where(_ENTRIES.action == action, _ENTRIES.seq > after, _ENTRIES.seq <= up_to)
        .order_by(_ENTRIES.seq)
    )
    return [(int(row.seq), bytes(row.body)) for row in session.connection().execute(query)]


def entry_bodies(session: Session) -> list[bytes]:
    """Every entry's bytes, in seq order."""
    query = select(_ENTRIES.body).order_by(_ENTRIES.seq)
    return list(session.connection().execute(query).scalars())


def checkpoint_notes(session: Session) -> list[str]:
    """Every checkpoint's signed note, in tree-size order."""
    query = select(_CHECKPOINTS.note).order_by(_CHECKPOINTS.tree_size)
    return list(session.connection().execute(query).scalars())


def latest_checkpoint_note(session: Session) -> str | None:
    """The signed note of the newest checkpoint, None when none was signed."""
    query = select(_CHECKPOINTS.note).order_by(_CHECKPOINTS.tree_size.desc()).limit(1)
    note = session.connection().execute(query).scalar()
    return None if note is None else str(note)


def entries_after(session: Session, seq: int) -> list[tuple[int, bytes]]:
    """(seq, bytes) of the entries after `seq`, in order."""
    query = select(_ENTRIES.seq, _ENTRIES.body).where(_ENTRIES.seq > seq).order_by(_ENTRIES.seq)
    return [(int(row.seq), row.body) for row in session.connection().execute(query)]


def entries_from(session: Session, seq: int) -> list[EntryRow]:
    """The entries from `seq` on (seq included), in order, with their stored leaf hashes."""
    query = (
        select(_ENTRIES.seq, _ENTRIES.body, _ENTRIES.leaf_hash)
        .where(_ENTRIES.seq >= seq)
        .order_by(_ENTRIES.seq)
    )
    return [EntryRow(*row) for row in session.connection().execute(query)]


def count_checkpoints_up_to(session: Session, tree_size: int) -> int:
    """How many checkpoints cover at most `tree_size` entries."""
    query = (
        select(func.count()).select_from(AuditCheckpoint).where(_CHECKPOINTS.tree_size <= tree_size)
    )
    return int(session.connection().execute(query).scalar_one())


def checkpoint_root(session: Session, tree_size: int) -> str | None:
    """The stored root hash (hex) of the checkpoint of that size, None when there is none."""
    query = select(_CHECKPOINTS.root_hash).where(_CHECKPOINTS.tree_size == tree_size)
    root = session.connection().execute(query).scalar()
    return None if root is None else str(root)


def checkpoints_after(session: Session, tree_size: int) -> list[CheckpointRow]:
    """The checkpoints covering more than `tree_size` entries, smallest first."""
    query = (
        select(_CHECKPOINTS.tree_size, _CHECKPOINTS.root_hash, _CHECKPOINTS.note)
        .where(_CHECKPOINTS.tree_size > tree_size)
        .order_by(_CHECKPOINTS.tree_size)
    )
    return [CheckpointRow(*row) for row in session.connection().execute(query)]


__all__ = [
    "AUDIT_LOG_LOCK",
    "GALLERY_CHANGES_LOCK",
    "BrowserRow",
    "CheckpointRow",
    "EntryFilter",
    "EntryRow",
    "LogHead",
    "StoredCheckpoint",
    "UnlockedAppendError",
    "add_checkpoint",
    "append_entries",
    "append_entry",
    "browser_rows",
    "checkpoint_notes",
    "checkpoint_of_size",
    "checkpoint_root",
    "checkpoints_after",
    "count_checkpoints_up_to",
    "entries_after",
    "entries_from",
    "entries_of_action_between",
    "entry_at",
    "entry_bodies",
    "entry_columns",
    "find_entries",
    "latest_checkpoint",
    "latest_checkpoint_note",
    "lock_log_head",
    "log_head",
    "log_size",
    "logged_actions",
    "newest_checkpoint",
    "newest_entry",
    "stored_compact_ranges",
]
