"""The database side of a backup: a consistent snapshot of a running workspace's database,
the vault files that snapshot names, and putting a snapshot back.

SQLite: the online backup API copies the database as one read transaction sees it, while
other connections go on writing (a writer never waits for it; under WAL it reads the
snapshot its transaction began with). PostgreSQL: `pg_dump --format=custom` with the
snapshot of a REPEATABLE READ transaction that this module opens and exports, so the
vault files listed here and the dump see the same committed rows.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from candor.store.audit_log import newest_checkpoint, newest_entry
from candor.store.errors import StoreError
from candor.store.models import GalleryImage, Subject, WorkspaceInfo
from candor.store.upkeep import held_probes

PG_DUMP = "pg_dump"
PG_RESTORE = "pg_restore"


class BackupToolError(StoreError):
    """pg_dump or pg_restore is missing or failed; the message says which and why."""


@dataclass(frozen=True)
class Snapshot:
    """What one database snapshot names: its gallery images (each an image file and
    perhaps a crop) and the probe photos its searches still hold; its log's size and the
    newest checkpoint (tree size, root hash, signed note; None when none was signed)."""

    images: frozenset[str]
    probes: frozenset[str]
    log_size: int
    last_leaf: str | None
    checkpoint_size: int
    checkpoint_root: str | None
    checkpoint_note: str | None
    workspace_id: str


def _read_snapshot(session: Session) -> Snapshot:
    images = frozenset(session.scalars(select(GalleryImage.sha256)))
    checkpoint = newest_checkpoint(session)
    last = newest_entry(session)
    info = session.scalar(select(WorkspaceInfo))
    if info is None:
        raise StoreError("the database has no workspace record")
    return Snapshot(
        images=images,
        probes=frozenset(held_probes(session)),
        log_size=0 if last is None else last[0],
        last_leaf=None if last is None else last[1],
        checkpoint_size=0 if checkpoint is None else checkpoint.tree_size,
        checkpoint_root=None if checkpoint is None else checkpoint.root_hash,
        checkpoint_note=None if checkpoint is None else checkpoint.note,
        workspace_id=info.workspace_id,
    )


def live_names(engine: Engine) -> tuple[frozenset[str], frozenset[str]]:
    """The images and probes the live database names now (after a copy: a file it no
    longer names may have been erased, zeroes first, while it was being copied)."""
    with Session(engine) as session:
        return frozenset(session.scalars(select(GalleryImage.sha256))), frozenset(
            held_probes(session)
        )


def snapshot_sqlite(source: Path, target: Path) -> Snapshot:
    """Copy the SQLite database at `source` to `target` (new) with the backup API, in one
    step (one read transaction: one consistent state), and read what the copy names."""
    # A plain connection: a read-only one cannot always join a WAL database's shared memory.
    reader = sqlite3.connect(source, timeout=30)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer, pages=-1)
    finally:
        writer.close()
        reader.close()
    target.chmod(0o600)
    engine = create_engine(f"sqlite:///{target}")
    try:
        with Session(engine) as session:
            return _read_snapshot(session)
    finally:
        engine.dispose()


def libpq_url(url: str) -> str:
    """The workspace's SQLAlchemy URL as libpq reads it (no driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupToolError(
            f"{name} is not installed (or not on PATH); a PostgreSQL workspace is backed up "
            f"and restored with PostgreSQL's own tools: install them (Debian: apt-get install "
            "postgresql-client, of the server's major version or newer)"
        )
    return found


def _run_tool(argv: list[str], what: str) -> None:
    # PostgreSQL's own tool found on PATH, fixed options, no shell.
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if completed.returncode != 0:
        detail = " ".join(completed.stderr.split())[-600:] or f"exit status {completed.returncode}"
        raise BackupToolError(f"{what} failed: {detail}")


@contextmanager
def snapshot_postgres(engine: Engine, url: str, target: Path) -> Iterator[Snapshot]:
    """Dump the PostgreSQL database to `target` (custom format) from one exported
    snapshot, and yield what that snapshot names; the snapshot's transaction stays open
    (a reader: it blocks no writer) until the caller has copied the vault files."""
    pg_dump = _tool(PG_DUMP)
    with Session(engine) as session:
        connection = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        exported = str(connection.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        snapshot = _read_snapshot(session)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        _run_tool(
            [
                pg_dump,
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={exported}",
                f"--file={target}",
                f"--dbname={libpq_url(url)}",
            ],
            "pg_dump",
        )
        yield snapshot
        session.rollback()


def database_is_empty(url: str) -> int:
    """How many tables the database at `url` holds (0: it may take a restore)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.exec_driver_sql(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                ).scalar_one()
            )
    finally:
        engine.dispose()


def restore_postgres(dump: Path, url: str) -> None:
    """Load a custom-format dump into the (empty) database at `url`, in one transaction:
    a failure leaves it empty."""
    _run_tool(
        [
            _tool(PG_RESTORE),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={libpq_url(url)}",
            str(dump),
        ],
        "pg_restore",
    )


def subject_ref_of(session: Session, subject_id: int) -> str | None:
    """The reference of the subject with this id, None when no such subject is enrolled."""
    return session.scalar(select(Subject.external_ref).where(Subject.id == subject_id))
