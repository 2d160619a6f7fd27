"""A throw-away PostgreSQL cluster for tests and benchmarks: Debian's server, our own folder.

`make test` runs the store, workflow, audit, reports and server suites on PostgreSQL as
well as SQLite. Each test process starts one cluster of its own (initdb in a temporary
folder, listening only on a Unix socket in that folder, no TCP port), makes a fresh
database per test, and deletes everything when it stops. Run as root (as CI is), the
server runs as the unprivileged `postgres` user that Debian's package creates (PostgreSQL
refuses to run as root), else as the invoking user.

Durability is switched off (fsync, full-page writes): a test cluster is thrown away, and
the suite is measured against the 90-minute CI limit. Candor's own settings on a real
server are in docs/deploy.md.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

SERVER_USER = "postgres"
SUPERUSER = "candor"


class PostgresUnavailableError(RuntimeError):
    """Debian's PostgreSQL server is not installed (or cannot run here)."""


def server_binaries() -> Path:
    """The folder of Debian's initdb and pg_ctl, newest major version first."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if not candidates:
        raise PostgresUnavailableError(
            "PostgreSQL's server is not installed (apt-get install postgresql; "
            "`make test` does this when run as root)"
        )
    return candidates[0].parent


class ThrowawayCluster:
    """One PostgreSQL server in a temporary folder, reachable only through its socket."""

    def __init__(self) -> None:
        self._bin = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="candor-pg-"))
        self._run_as = self._server_user()
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self.data = self.root / "data"
        self.started = False

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError as error:
            raise PostgresUnavailableError(
                f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as "
                "(Debian's postgresql package creates it)"
            ) from error

    def _command(self, tool: str, *args: str) -> list[str]:
        argv = [str(self._bin / tool), *args]
        if self._run_as is None:
            return argv
        return ["runuser", "-u", self._run_as.pw_name, "--", *argv]

    def _run(self, tool: str, *args: str) -> None:
        completed = subprocess.run(
            self._command(tool, *args), capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise PostgresUnavailableError(
                f"{tool} failed ({completed.returncode}): {completed.stderr.strip()} {tail}"
            )

    def start(self) -> ThrowawayCluster:
        """initdb and start the server; returns self once it accepts connections."""
        self._run(
            "initdb",
            "-D", str(self.data),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.root}'",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c synchronous_commit=off",
                "-c max_connections=200",
                "-c shared_buffers=32MB",
            ]
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database of this cluster (psycopg 3, Unix socket)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.root}"

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg  # only tests that use PostgreSQL need the driver

        name = f"candor_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=str(self.root), user=SUPERUSER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)
