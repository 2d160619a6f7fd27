"""A workspace: one folder holding the database and the biometric vault, with a fixed purpose."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from candor.store.database import (
    BUSY_TIMEOUT_MS,
    WorkspaceSession,
    check_schema,
    sqlite_engine,
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
        keeps_audit_witness: bool = False,
    ) -> None:
        self.home = home
        self.purpose = purpose
        self.timezone = timezone
        self.zone = _zone(timezone)
        self.workspace_id = workspace_id
        self.created_at = created_at
        self.engine = engine
        self.keeps_audit_witness = keeps_audit_witness
        self.vault = BiometricVault(home)
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
    ) -> Workspace:
        """Make a workspace in a missing or empty folder; refuses anything else.

        start_audit_log(home, workspace_id): makes the audit log's signing key and witness
            (the workflow passes it: the store cannot sign). It runs before the marker is
            written, so if it fails no workspace is left behind.
        """
        _check_purpose(purpose)
        _zone(timezone)
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
        try:
            BiometricVault.initialise(home)
            database = home / DATABASE_NAME
            engine = sqlite_engine(database, create=True)
            upgrade_to_head(engine)
            database.chmod(0o600)
            with Session(engine) as session, session.begin():
                session.add(
                    WorkspaceInfo(
                        id=1, workspace_id=workspace_id, purpose=purpose, created_at=created_at
                    )
                )
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
            # The marker comes last: a folder without it is never mistaken for a workspace.
            _write_json_atomic(home / MARKER_NAME, marker)
        except BaseException:
            if engine is not None:
                engine.dispose()
            _remove_contents(home, remove_home=made_home)
            raise
        workspace = cls(
            home=home,
            purpose=purpose,
            timezone=timezone,
            workspace_id=workspace_id,
            created_at=created_at,
            engine=engine,
            keeps_audit_witness=start_audit_log is not None,
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
        database = home / DATABASE_NAME
        if not database.is_file():
            raise WorkspaceError(f"the workspace {home} has no database {DATABASE_NAME}")
        engine = sqlite_engine(database, create=False, busy_timeout_ms=busy_timeout_ms)
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
            workspace = cls(
                home=home,
                purpose=marker["purpose"],
                timezone=marker["timezone"],
                workspace_id=marker["workspace_id"],
                created_at=info.created_at,
                engine=engine,
                keeps_audit_witness=marker.get(AUDIT_WITNESS_FIELD) is True,
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
        """The SQLite database file."""
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
