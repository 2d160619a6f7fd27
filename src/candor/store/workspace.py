"""A workspace: one folder holding the database and the biometric vault, with a fixed purpose."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from candor.store.data_keys import (
    DataKeys,
    kek_path_from_env,
    load_kek,
    make_kek,
    record_kek,
    recorded_kek,
)
from candor.store.database import (
    BUSY_TIMEOUT_MS,
    WorkspaceSession,
    check_postgres_url,
    check_schema,
    downgrade_to_base,
    engine_for,
    upgrade_to_head,
)
from candor.store.errors import (
    CannotCreateWorkspaceError,
    NotAWorkspaceError,
    WorkspaceError,
    WorkspaceHomeUnsetError,
)
from candor.store.models import OPERATIONAL_SOURCES, WorkspaceInfo, utc_now
from candor.store.upkeep import Upkeep
from candor.store.vault import BiometricVault

PURPOSES = ("operational", "evaluation", "demo", "benchmark", "simulation")
MARKER_NAME = "candor-workspace.json"
DATABASE_NAME = "candor.db"
FORMAT_VERSION = 1
HOME_VARIABLE = "CANDOR_HOME"
# A PostgreSQL URL for the workspace's database (never with a password in it). For `candor
# init` it gives the database when --database is not passed; on open it may repeat the
# marker's URL, but never contradict it: the marker is the workspace's record of where its
# database lives, and a different server is a mistake to refuse, not an override to obey.
DATABASE_URL_VARIABLE = "CANDOR_DATABASE_URL"
# The marker field holding that URL; absent for a workspace on its own SQLite file.
DATABASE_URL_FIELD = "database_url"
# Set in the marker of a workspace whose audit log has kept a witness (its latest signed
# checkpoint, beside the signing key) from the start, or since it first made one; without
# it, the workflow may make the first witness from the database (trust on first use).
AUDIT_WITNESS_FIELD = "audit_witness"


def workspace_home_from_env() -> Path:
    """The workspace folder named by CANDOR_HOME; raises WorkspaceHomeUnsetError if unset."""
    value = os.environ.get(HOME_VARIABLE, "").strip()
    if not value:
        raise WorkspaceHomeUnsetError(
            f"{HOME_VARIABLE} is not set; set it to a workspace folder, "
            "or create a workspace with `candor init`"
        )
    return Path(value).expanduser()


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WorkspaceError(
            f"unknown time zone {timezone!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise WorkspaceError(f"unknown purpose {purpose!r}; choose one of {', '.join(PURPOSES)}")


class Workspace:
    """An open workspace. Use `create` or `open`; close it (or use `with`) when done.

    The database schema is checked on open: an older schema is refused unless
    upgrade=True (a migration of a biometric database should be a deliberate act, after
    a backup), and a schema newer than this Candor is always refused.
    """

    def __init__(
        self,
        *,
        home: Path,
        purpose: str,
        timezone: str,
        workspace_id: str,
        created_at: datetime,
        engine: Engine,
        keys: DataKeys,
        keeps_audit_witness: bool = False,
        database_url: str | None = None,
    ) -> None:
        self.home = home
        self.purpose = purpose
        self.timezone = timezone
        self.zone = _zone(timezone)
        self.workspace_id = workspace_id
        self.created_at = created_at
        self.engine = engine
        self.keeps_audit_witness = keeps_audit_witness
        # The PostgreSQL database's URL (no password), or None for the SQLite file.
        self.database_url = database_url
        self.vault = BiometricVault(home)
        # The data keys, unwrapped under the KEK read at open: what seals the vault's files.
        self.keys = keys
        # Held from start() to close(): what earlier processes left undone is finished.
        self.upkeep = Upkeep(engine, self.vault)
        # Objects stay readable after commit, so workflow can report what it just wrote.
        self._sessions = sessionmaker(bind=engine, class_=WorkspaceSession, expire_on_commit=False)

    @classmethod
    def create(
        cls,
        home: Path,
        purpose: str = "operational",
        timezone: str = "UTC",
        *,
        start_audit_log: Callable[[Path, str], None] | None = None,
        database_url: str | None = None,
        kek_file: Path | None = None,
    ) -> Workspace:
        """Make a workspace in a missing or empty folder; refuses anything else.

        database_url: a PostgreSQL database (postgresql://USER@HOST/DATABASE, no password)
            to hold the workspace's tables instead of a SQLite file in the folder; when
            None, CANDOR_DATABASE_URL gives it if set. The database must hold no Candor
            tables yet. The URL is recorded in the marker.

        kek_file: the key-encryption key's file: used if it exists, made there if not. When
            None, $CANDOR_KEK_FILE names it; without that a new key is made at
            ~/.config/candor/<workspace id>.kek. Its absolute path is recorded.

        start_audit_log(home, workspace_id): makes the audit log's signing key and witness
            (the workflow passes it: the store cannot sign). It runs before the marker is
            written, so if it fails no workspace is left behind.
        """
        _check_purpose(purpose)
        _zone(timezone)
        if database_url is None:
            database_url = _database_url_from_env()
        if database_url is not None:
            database_url = check_postgres_url(database_url)
        home = Path(home).expanduser().absolute()
        if home.exists() or home.is_symlink():
            if not home.is_dir():
                raise CannotCreateWorkspaceError(
                    f"{home} exists and is not a folder; choose a new or empty folder"
                )
            if any(home.iterdir()):
                raise CannotCreateWorkspaceError(
                    f"{home} is not empty; a workspace is made only in a new or empty folder"
                )
            made_home = False
        else:
            home.mkdir(mode=0o700, parents=True)
            made_home = True
        home.chmod(0o700)

        workspace_id = str(uuid.uuid4())
        created_at = utc_now()
        engine: Engine | None = None
        # Set once the tables are made in a PostgreSQL database found empty: a failure
        # after that removes them (a SQLite file goes with the folder's contents).
        made_tables = False
        made_kek: Path | None = None
        try:
            BiometricVault.initialise(home)
            database = home / DATABASE_NAME
            engine = engine_for(database_url, database, create=True)
            if database_url is not None:
                _refuse_used_database(engine, database_url)
                made_tables = True
            upgrade_to_head(engine)
            if database_url is None:
                database.chmod(0o600)
            kek_path, kek, created_kek = make_kek(kek_file, workspace_id)
            made_kek = kek_path if created_kek else None
            with Session(engine) as session, session.begin():
                session.add(
                    WorkspaceInfo(
                        id=1, workspace_id=workspace_id, purpose=purpose, created_at=created_at
                    )
                )
                record_kek(session, kek_path, kek)
            if start_audit_log is not None:
                start_audit_log(home, workspace_id)
            marker: dict[str, Any] = {
                "format_version": FORMAT_VERSION,
                "workspace_id": workspace_id,
                "purpose": purpose,
                "timezone": timezone,
                "created_at": created_at.isoformat(),
            }
            if start_audit_log is not None:
                marker[AUDIT_WITNESS_FIELD] = True
            if database_url is not None:
                marker[DATABASE_URL_FIELD] = database_url
            # The marker comes last: a folder without it is never mistaken for a workspace.
            _write_json_atomic(home / MARKER_NAME, marker)
        except BaseException:
            if engine is not None:
                if made_tables:
                    with contextlib.suppress(Exception):
                        downgrade_to_base(engine)
                engine.dispose()
            if made_kek is not None:
                made_kek.unlink(missing_ok=True)
            _remove_contents(home, remove_home=made_home)
            raise
        workspace = cls(
            home=home,
            purpose=purpose,
            timezone=timezone,
            workspace_id=workspace_id,
            created_at=created_at,
            engine=engine,
            keys=DataKeys(kek, kek_path),
            keeps_audit_witness=start_audit_log is not None,
            database_url=database_url,
        )
        workspace.upkeep.start()
        return workspace

    @classmethod
    def open(
        cls, home: Path, *, upgrade: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> Workspace:
        """Open an existing workspace; raises NotAWorkspaceError for any other folder.

        busy_timeout_ms: how long a transaction waits for another process's write lock
            before it fails with WorkspaceBusyError.

        The key-encryption key is read from $CANDOR_KEK_FILE or the recorded path and
        checked against the recorded fingerprint; a missing or wrong one is refused
        (KeyEncryptionKeyError). A workspace from before encryption at rest gets its KEK
        here when upgrade=True (the workflow's upgrade then seals its files).
        """
        home = Path(home).expanduser().absolute()
        marker_path = home / MARKER_NAME
        if not marker_path.is_file():
            hint = (
                " (it has a database but no marker: an interrupted `candor init`?)"
                if (home / DATABASE_NAME).exists()
                else ""
            )
            raise NotAWorkspaceError(
                f"{home} is not a Candor workspace{hint}; create one with `candor init`"
            )
        marker = _read_marker(marker_path)
        database_url = _database_url(marker, marker_path)
        database = home / DATABASE_NAME
        if database_url is None and not database.is_file():
            raise WorkspaceError(f"the workspace {home} has no database {DATABASE_NAME}")
        engine = engine_for(database_url, database, create=False, busy_timeout_ms=busy_timeout_ms)
        try:
            check_schema(engine, upgrade=upgrade, where=home)
            with Session(engine) as session:
                info = session.scalar(select(WorkspaceInfo))
            if info is None or (info.workspace_id, info.purpose) != (
                marker["workspace_id"],
                marker["purpose"],
            ):
                raise WorkspaceError(
                    f"the database in {home} belongs to another workspace or purpose than "
                    f"{MARKER_NAME} says; the folder has been altered"
                )
            keys = _open_keys(engine, home, info.workspace_id, upgrade=upgrade)
            workspace = cls(
                home=home,
                purpose=marker["purpose"],
                timezone=marker["timezone"],
                workspace_id=marker["workspace_id"],
                created_at=info.created_at,
                engine=engine,
                keys=keys,
                keeps_audit_witness=marker.get(AUDIT_WITNESS_FIELD) is True,
                database_url=database_url,
            )
            workspace.upkeep.start()
        except BaseException:
            engine.dispose()
            raise
        return workspace

    def mark_audit_witness(self) -> None:
        """Record in the marker that this workspace's audit log keeps a witness, so that a
        witness missing from now on is an error rather than made again from the database."""
        if self.keeps_audit_witness:
            return
        marker_path = self.home / MARKER_NAME
        marker = _read_marker(marker_path)
        marker[AUDIT_WITNESS_FIELD] = True
        _write_json_atomic(marker_path, marker)
        self.keeps_audit_witness = True

    def session(self) -> Session:
        """A new SQLAlchemy session; use `with ws.session() as s, s.begin():`.

        `begin()` takes the database's write lock at once (see candor.store.database);
        a session used without it only reads.
        """
        return self._sessions()

    def allowed_source_types(self) -> tuple[str, ...]:
        """Gallery source types this workspace accepts: operational ones, or its own purpose."""
        return OPERATIONAL_SOURCES if self.purpose == "operational" else (self.purpose,)

    def today(self) -> date:
        """The current date in the workspace's time zone."""
        return datetime.now(self.zone).date()

    @property
    def database_path(self) -> Path:
        """The SQLite database file (absent when the database is on PostgreSQL)."""
        return self.home / DATABASE_NAME

    def close(self) -> None:
        """Let go of the workspace's lock and close every pooled database connection."""
        try:
            self.upkeep.close()
        finally:
            self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.home)!r}, purpose={self.purpose!r})"


def _open_keys(engine: Engine, home: Path, workspace_id: str, *, upgrade: bool) -> DataKeys:
    """The workspace's data keys under its KEK; an upgrade gives an older workspace its KEK."""
    with Session(engine) as session, session.begin():
        if recorded_kek(session) is None and upgrade:
            path, kek, _ = make_kek(kek_path_from_env(), workspace_id)
            record_kek(session, path, kek)
            return DataKeys(kek, path)
        path, kek = load_kek(session, home)
    return DataKeys(kek, path)


@contextlib.contextmanager
def session_without_kek(home: Path) -> Iterator[Session]:
    """A read-only session on a workspace's database that needs no key-encryption key: for
    `candor keys show`, which must say where the KEK was looked for and why it was refused
    when `Workspace.open` refuses it. Reads only records and counts, never a sealed byte."""
    home = Path(home).expanduser().absolute()
    marker_path = home / MARKER_NAME
    if not marker_path.is_file():
        raise NotAWorkspaceError(f"{home} is not a Candor workspace")
    database_url = _database_url(_read_marker(marker_path), marker_path)
    engine = engine_for(database_url, home / DATABASE_NAME, create=False)
    try:
        check_schema(engine, upgrade=False, where=home)
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WorkspaceError(f"{path} cannot be read as a workspace marker: {error}") from None
    if not isinstance(marker, dict):
        raise WorkspaceError(f"{path} is not a workspace marker")
    version = marker.get("format_version")
    if version != FORMAT_VERSION:
        raise WorkspaceError(
            f"{path} has format version {version!r}; this Candor reads version {FORMAT_VERSION}"
        )
    for field in ("workspace_id", "purpose", "timezone", "created_at"):
        if not isinstance(marker.get(field), str):
            raise WorkspaceError(f"{path} lacks the field {field!r}")
    _check_purpose(marker["purpose"])
    _zone(marker["timezone"])
    return marker


def _database_url_from_env() -> str | None:
    value = os.environ.get(DATABASE_URL_VARIABLE, "").strip()
    return value or None


def _database_url(marker: dict[str, Any], marker_path: Path) -> str | None:
    """The marker's PostgreSQL URL (None: SQLite), checked against CANDOR_DATABASE_URL."""
    recorded = marker.get(DATABASE_URL_FIELD)
    if recorded is not None and not isinstance(recorded, str):
        raise WorkspaceError(f"{marker_path} has a {DATABASE_URL_FIELD!r} that is not a URL")
    if recorded is not None:
        recorded = check_postgres_url(recorded)
    given = _database_url_from_env()
    if given is None:
        return recorded
    given = check_postgres_url(given)
    if given != recorded:
        where = (
            f"the PostgreSQL database {recorded}" if recorded is not None else "its own SQLite file"
        )
        raise WorkspaceError(
            f"{DATABASE_URL_VARIABLE} names {given}, but the workspace {marker_path.parent} "
            f"keeps its database in {where}; unset {DATABASE_URL_VARIABLE} or make it match"
        )
    return recorded


def _refuse_used_database(engine: Engine, url: str) -> None:
    """A workspace starts on an empty database: another workspace's tables are not ours."""
    with engine.connect() as connection:
        used = connection.exec_driver_sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).scalar_one()
    if used:
        raise CannotCreateWorkspaceError(
            f"the database {url} already holds {used} tables; a workspace is made only "
            "in an empty database (create one with createdb)"
        )


def _write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    write_file_atomic(path, (json.dumps(content, indent=2) + "\n").encode("utf-8"), ".marker-")


def write_file_atomic(path: Path, data: bytes, prefix: str, *, replace: bool = True) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, whole,
    and a power cut keeps one of them: a temporary (mode 0600) in the same folder, fsync,
    rename, fsync of the folder. With replace=False an existing `path` is left alone and
    FileExistsError raised."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            Path(name).replace(path)
        else:
            # link() refuses an existing name, which rename() would overwrite.
            os.link(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_contents(home: Path, *, remove_home: bool) -> None:
    """Undo a failed create; `home` was empty before, so everything in it is ours."""
    for entry in home.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if remove_home:
        home.rmdir()
