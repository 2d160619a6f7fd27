"""A throw-away PostgreSQL cluster for benchmarks: tests/postgres.py's, durable by choice.

The test cluster runs with fsync, full-page writes and synchronous commit off (a test
database is thrown away, and the suite races a time limit). A benchmark comparing
PostgreSQL with SQLite, which Candor runs with `synchronous = FULL`, must not hand
PostgreSQL that advantage silently: `durable=True` (the default here) starts the cluster
with PostgreSQL's own defaults for all three, so a commit waits for its WAL flush as a
production server's does. Everything else (initdb in a temporary folder, a Unix socket
only, the unprivileged `postgres` user when run as root) is the test cluster's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres import PostgresUnavailableError, ThrowawayCluster

__all__ = ["BenchCluster", "PostgresUnavailableError"]


class BenchCluster(ThrowawayCluster):
    """A throw-away cluster whose commits are durable unless asked otherwise."""

    def __init__(self, *, durable: bool = True) -> None:
        super().__init__()
        self.durable = durable

    def start(self) -> BenchCluster:
        if not self.durable:
            super().start()
            return self
        self._run(
            "initdb",
            "-D", str(self.data),
            "-U", "candor",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )  # fmt: skip
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories='{self.root}'",
                "-c max_connections=200",
                "-c shared_buffers=128MB",
            ]
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True
        return self

    def described(self) -> str:
        """What a results file says about this cluster."""
        if self.durable:
            return (
                "PostgreSQL (throw-away cluster, Unix socket, durable: fsync, full-page "
                "writes and synchronous commit on, shared_buffers 128MB)"
            )
        return (
            "PostgreSQL (throw-away cluster, Unix socket, fsync, full-page writes and "
            "synchronous commit off as in tests/postgres.py)"
        )
