"""The workspace database: engine, per-connection pragmas, and Alembic migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from candor.store.errors import SchemaVersionError, WorkspaceError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000


def sqlite_engine(path: Path, *, create: bool) -> Engine:
    """An engine on the SQLite file at `path`; with create=False a missing file is an error.

    Every connection gets WAL mode, foreign keys, secure_delete and a busy timeout, and
    SQLAlchemy's transactions become real SQLite transactions (BEGIN emitted explicitly),
    so reads inside a session see one snapshot and migrations are atomic.
    """
    # A file: URI with mode=rw makes sqlite refuse to invent an empty database on open.
    uri = f"file:{quote(str(path))}?mode={'rwc' if create else 'rw'}"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    # "sqlite://" with a creator would otherwise get the in-memory SingletonThreadPool.
    engine = create_engine("sqlite+pysqlite://", creator=connect, poolclass=QueuePool)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise WorkspaceError(
                f"SQLite refused write-ahead logging (journal mode stays {mode!r}); "
                "put the workspace on a local filesystem"
            )
        # FULL: a committed enrolment or expungement survives a power cut.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Freed pages and cells are zeroed, so deleted biometric rows leave no bytes behind.
        cursor.execute("PRAGMA secure_delete = ON")
    finally:
        cursor.close()
    # pysqlite's own transaction handling would defer BEGIN until the first write;
    # _on_begin takes over instead.
    dbapi_connection.isolation_level = None


def _on_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    # Config values go through configparser interpolation; a '%' in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this Candor knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise WorkspaceError("Candor's schema migrations are missing from the installation")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no Alembic version table."""
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    if len(heads) > 1:
        raise SchemaVersionError(f"the database has several schema heads {heads}")
    return heads[0] if heads else None


def upgrade_to_head(engine: Engine) -> None:
    """Run every migration the database lacks, in one transaction."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")


def check_schema(engine: Engine, *, upgrade: bool, where: Path) -> None:
    """Refuse a database not at head; with upgrade=True bring an older one up to head."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    if current is None:
        raise WorkspaceError(f"the database in {where} has no schema version; it is damaged")
    script = ScriptDirectory.from_config(_alembic_config())
    known = {revision.revision for revision in script.walk_revisions()}
    if current not in known:
        raise SchemaVersionError(
            f"the database in {where} is at schema revision {current}, which this Candor "
            f"does not know (it expects {head}); use the Candor release that wrote it"
        )
    if not upgrade:
        raise SchemaVersionError(
            f"the database in {where} is at schema revision {current}, older than {head}; "
            "back the folder up, then run `candor upgrade`"
        )
    upgrade_to_head(engine)


@contextmanager
def raw_autocommit(engine: Engine) -> Iterator[sqlite3.Connection]:
    """A pooled DBAPI connection outside any transaction (for PRAGMAs that forbid one)."""
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        if not isinstance(driver, sqlite3.Connection):
            raise WorkspaceError("this operation needs the SQLite backend")
        if driver.in_transaction:
            driver.rollback()
        yield driver
    finally:
        pooled.close()
