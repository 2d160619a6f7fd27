"""Shared fixtures: where the labelled face photos are, and a clean cache per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.postgres import PostgresUnavailableError, ThrowawayCluster

# CI runs the same examples every time (a failure there reproduces here) and never fails
# on timing: the machine is shared, so a deadline measures the neighbours.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

REPO_ROOT = Path(__file__).resolve().parent.parent


def faces_root() -> Path:
    """The labelled photo folder: `CANDOR_FACES`, else ../shared/faces beside the repo."""
    configured = os.environ.get("CANDOR_FACES")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "faces"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """../shared/faces; skips when absent, except under CI=true where absence is a failure."""
    root = faces_root()
    if not (root / "lfw-dev").is_dir():
        message = (
            f"labelled face photos not found at {root} "
            "(set CANDOR_FACES or place shared/faces beside the repository)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayCluster]:
    """One throw-away PostgreSQL server per test process (so one per xdist worker).

    Skips when Debian's PostgreSQL server is not installed, except under CI=true where
    its absence is a failure (`make test` installs it when run as root).
    """
    try:
        cluster = ThrowawayCluster().start()
    except PostgresUnavailableError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: ThrowawayCluster) -> str:
    """The URL of a new, empty database on the test process's cluster (no password)."""
    return postgres_cluster.new_database()


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own CANDOR_CACHE so no test reads another's cached templates."""
    cache = tmp_path_factory.mktemp("candor-cache")
    monkeypatch.setenv("CANDOR_CACHE", str(cache))
    return cache
