"""The workspace database: engine, per-connection pragmas, and Alembic migrations.

Several processes share one workspace (a server beside `candor enrol`, a second
`candor enrol`), and SQLite lets one of them write at a time. A transaction that may
write takes the write lock when it begins (BEGIN IMMEDIATE): it waits its turn, up to
the busy timeout, before it reads anything. One that began deferred, read, and only
then wrote would be refused at once ("database is locked", no waiting) whenever another
process had committed since its read, because its snapshot is stale. Sessions begun
explicitly (`with ws.session() as s, s.begin():`, the way every writer opens one) are
immediate; sessions that only read (autobegin) stay deferred, so readers never wait
for writers, as WAL promises. A wait longer than the busy timeout becomes a
WorkspaceBusyError that says so, never a raw sqlite3 error.

A workspace's database may instead be a PostgreSQL server (`candor init --database URL`),
reached through psycopg 3. There BEGIN IMMEDIATE has no equivalent and none is needed:
sessions begun explicitly (writers) run at READ COMMITTED, take turns on the rows they
change (row locks, and the statements' own locks), and are never refused for a stale
snapshot; reading sessions (autobegin) run at REPEATABLE READ, so that, as on SQLite, a
read sees one snapshot however many statements it takes (a verification, a report).
As SQLite's busy timeout bounds a wait for the write lock, PostgreSQL's lock_timeout (set
on every connection, the same milliseconds) bounds a wait for a row or advisory lock; a
wait past it, a serialization failure and a deadlock the server broke are each a
WorkspaceBusyError (try again), never a raw driver error.
`engine_for` picks the engine by the URL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, ExceptionContext, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from candor.store.errors import SchemaVersionError, WorkspaceBusyError, WorkspaceError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# How long a transaction waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 10_000
# The execution option that makes a connection's next BEGIN take the write lock.
WRITES: Final = "candor_writes"
_SQLITE_BUSY: Final = 5  # the primary result code; extended codes add 256 * n
_SQLITE_BUSY_SNAPSHOT: Final = 517
# PostgreSQL's SQLSTATEs for "another transaction is in the way; the same work may succeed
# if tried again": lock_not_available (a wait past lock_timeout), serialization_failure
# (a REPEATABLE READ transaction changing a row changed since its snapshot) and
# deadlock_detected (the server rolled this transaction back to break a cycle).
_PG_LOCK_NOT_AVAILABLE: Final = "55P03"
_PG_SERIALIZATION_FAILURE: Final = "40001"
_PG_DEADLOCK_DETECTED: Final = "40P01"
# The one PostgreSQL driver Candor installs and tests (pyproject: psycopg[binary]).
POSTGRES_DRIVER: Final = "postgresql+psycopg"
# Connections each process keeps to its database, and how many more it may open under
# load; a PostgreSQL server's max_connections must cover every process of every node.
# The server runs no more request threads than these serve (server_threads), so a
# request never waits POOL_TIMEOUT_SECONDS for a connection merely because others hold
# them all; a wait past it is still a WorkspaceBusyError (a 503), never a 500.
POOL_SIZE: Final = 5
POOL_MAX_OVERFLOW: Final = 10
POOL_TIMEOUT_SECONDS: Final = 30.0
# The most pooled connections one workflow call holds at once: its session, and a second
# reading one for a first open of the gallery index beside it (Workflow.index).
CONNECTIONS_PER_CALL: Final = 2


class WorkspaceSession(Session):
    """A session whose explicit `begin()` takes the database's write lock at once.

    Autobegun sessions (reads) stay deferred; see the module's notes.
    """

    def begin(self, nested: bool = False) -> SessionTransaction:
        transaction = super().begin(nested=nested)
        if not nested:
            # The connection is made (and BEGIN emitted) now, with the option set.
            options: dict[str, Any] = {WRITES: True}
            bind = self.get_bind()
            if bind.dialect.name == "postgresql":
                # Writers on PostgreSQL run at READ COMMITTED: they wait for each other on
                # row locks and then see the other's commit, rather than failing with a
                # serialization error as they would at the engine's REPEATABLE READ.
                options["isolation_level"] = "READ COMMITTED"
            self.connection(execution_options=options)
        return transaction


def sqlite_engine(path: Path, *, create: bool, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine on the SQLite file at `path`; with create=False a missing file is an error.

    Every connection gets WAL mode, foreign keys, secure_delete and a busy timeout, and
    SQLAlchemy's transactions become real SQLite transactions (BEGIN emitted explicitly),
    so reads inside a session see one snapshot and migrations are atomic.

    busy_timeout_ms: how long a connection waits for another's lock; past it, the
        statement raises WorkspaceBusyError.
    """
    # A file: URI with mode=rw makes sqlite refuse to invent an empty database on open.
    uri = f"file:{quote(str(path))}?mode={'rwc' if create else 'rw'}"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    # "sqlite://" with a creator would otherwise get the in-memory SingletonThreadPool.
    engine = create_engine(
        "sqlite+pysqlite://",
        creator=connect,
        poolclass=QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
    )
    event.listen(engine, "connect", partial(_on_connect, busy_timeout_ms=busy_timeout_ms))
    event.listen(engine, "begin", _on_begin)
    event.listen(engine, "handle_error", partial(_on_error, busy_timeout_ms=busy_timeout_ms))
    return engine


def check_postgres_url(url: str) -> str:
    """The URL, with the driver made explicit, if it names a PostgreSQL database Candor can
    use and carries no password; else a WorkspaceError saying why.

    A password in the URL would be written to the workspace marker (and shown by every
    tool that prints the URL), so it is refused: libpq reads it from ~/.pgpass, from
    PGPASSWORD, or from a service in pg_service.conf instead.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise WorkspaceError(
            f"{url!r} is not a database URL; use postgresql://USER@HOST/DATABASE "
            "(or postgresql://USER@/DATABASE?host=/socket/folder)"
        ) from None
    if parsed.get_backend_name() != "postgresql":
        raise WorkspaceError(
            f"the database URL names {parsed.get_backend_name()!r}; Candor's server "
            "database is PostgreSQL (postgresql://...); leave --database out for SQLite"
        )
    if parsed.drivername not in ("postgresql", POSTGRES_DRIVER):
        raise WorkspaceError(
            f"the database URL asks for the driver {parsed.get_driver_name()!r}; "
            "Candor uses psycopg 3 (postgresql:// or postgresql+psycopg://)"
        )
    if parsed.password is not None:
        raise WorkspaceError(
            "the database URL contains a password, which would be stored in the workspace "
            "marker; leave it out of the URL and give it to libpq in a ~/.pgpass file, "
            "in PGPASSWORD, or through a service in pg_service.conf"
        )
    if not parsed.database:
        raise WorkspaceError(f"the database URL {url!r} names no database")
    return parsed.set(drivername=POSTGRES_DRIVER).render_as_string(hide_password=False)


def postgres_engine(url: str, *, lock_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine on the PostgreSQL database at `url` (checked by check_postgres_url).

    pool_pre_ping: a pooled connection the server has closed (a restart, an idle
    timeout) is replaced rather than failing the next action.
    lock_timeout_ms: how long a statement waits for a lock another transaction holds;
        past it, the statement raises WorkspaceBusyError.
    """
    engine = create_engine(
        check_postgres_url(url),
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_pre_ping=True,
        # Reads see one snapshot; WorkspaceSession.begin lowers writers to READ COMMITTED.
        isolation_level="REPEATABLE READ",
    )
    event.listen(engine, "connect", partial(_on_postgres_connect, lock_timeout_ms=lock_timeout_ms))
    event.listen(
        engine, "handle_error", partial(_on_postgres_error, lock_timeout_ms=lock_timeout_ms)
    )
    return engine


def _on_postgres_connect(
    dbapi_connection: Any, _record: ConnectionPoolEntry, *, lock_timeout_ms: int
) -> None:
    # Set for the connection's life (is_local false), so it costs one round trip per
    # pooled connection, not one per transaction; committed so the pool keeps it.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{int(lock_timeout_ms)}ms",)
        )
    finally:
        cursor.close()
    dbapi_connection.commit()


def _on_postgres_error(context: ExceptionContext, *, lock_timeout_ms: int) -> None:
    error = context.original_exception
    state = getattr(error, "sqlstate", None)
    if state == _PG_LOCK_NOT_AVAILABLE:
        raise WorkspaceBusyError(
            f"the workspace database stayed busy for {lock_timeout_ms / 1000:g} s: another "
            "Candor process is writing; try again"
        ) from error
    if state in (_PG_SERIALIZATION_FAILURE, _PG_DEADLOCK_DETECTED):
        raise WorkspaceBusyError(
            "another Candor process changed the workspace database while this action "
            "was writing it; try again"
        ) from error
    # Otherwise only a failure to connect (server down, wrong socket, refused login) is
    # turned into a workspace error; other errors carry the statement that failed.
    if context.connection is not None or context.is_pre_ping:
        return
    first_line = str(context.original_exception).strip().splitlines()[:1]
    raise WorkspaceError(
        "cannot connect to the workspace's PostgreSQL database: "
        f"{first_line[0] if first_line else type(context.original_exception).__name__}"
    ) from context.original_exception


def engine_for(
    url: str | None, sqlite_path: Path, *, create: bool, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Engine:
    """The workspace's engine: PostgreSQL when a database URL is given, else its SQLite file.

    busy_timeout_ms: SQLite's busy timeout, PostgreSQL's lock_timeout.
    """
    if url is not None:
        return postgres_engine(url, lock_timeout_ms=busy_timeout_ms)
    return sqlite_engine(sqlite_path, create=create, busy_timeout_ms=busy_timeout_ms)


def pool_connections(engine: Engine) -> int:
    """How many connections the engine's pool hands out at once (its size plus overflow)."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return 1
    # QueuePool keeps max_overflow only privately; -1 would mean no limit at all.
    overflow = int(getattr(pool, "_max_overflow", 0))
    return pool.size() + overflow if overflow >= 0 else 1 << 16


def server_threads(engine: Engine) -> int:
    """How many request threads one server process may run so that the pool serves them
    all at once: each call holds up to CONNECTIONS_PER_CALL, and one connection is left
    for work done on the event loop itself."""
    return max(1, (pool_connections(engine) - 1) // CONNECTIONS_PER_CALL)


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine is on SQLite (the embedded default) rather than PostgreSQL."""
    return engine.dialect.name == "sqlite"


def _on_connect(
    dbapi_connection: Any, _record: ConnectionPoolEntry, *, busy_timeout_ms: int
) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
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
    writes = connection.get_execution_options().get(WRITES, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _on_error(context: ExceptionContext, *, busy_timeout_ms: int) -> None:
    error = context.original_exception
    if not isinstance(error, sqlite3.OperationalError):
        return
    code = error.sqlite_errorcode
    if code == _SQLITE_BUSY_SNAPSHOT:
        # Only a deferred transaction that reads, then writes, meets this: no wait helps.
        raise WorkspaceBusyError(
            "another Candor process changed the workspace database while this action "
            "read it; try again"
        ) from error
    if code & 0xFF == _SQLITE_BUSY:
        raise WorkspaceBusyError(
            f"the workspace database stayed busy for {busy_timeout_ms / 1000:g} s: another "
            "Candor process is writing; try again"
        ) from error


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
    with engine.connect() as connection:
        connection.execution_options(**{WRITES: True})
        with connection.begin():
            command.upgrade(_alembic_config(connection), "head")


def downgrade_to_base(engine: Engine) -> None:
    """Undo every migration, in one transaction: what a failed `candor init` made in a
    PostgreSQL database it found empty goes again, so the same database can be used."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITES: True})
        with connection.begin():
            command.downgrade(_alembic_config(connection), "base")
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


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
    """A pooled DBAPI connection outside any transaction (for PRAGMAs that forbid one).

    SQLite only: a PostgreSQL engine is refused (its callers skip that work there).
    """
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
