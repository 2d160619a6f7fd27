"""One demo agency per test process, shared by the server tests (it takes seconds to make)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agency import Agency
from tests.server.support import DemoServer, demo_agency, serve


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agency, dict[str, Path]]]:
    agency, photos = demo_agency(tmp_path_factory.mktemp("server-demo"))
    yield agency, photos
    agency.workflow.close()


@pytest.fixture
def demo(demo_home: tuple[Agency, dict[str, Path]]) -> DemoServer:
    """A fresh app (its own lock-outs and sessions) over the shared demo agency."""
    agency, photos = demo_home
    return serve(agency, photos)


@pytest.fixture(scope="module")
def shared_demo(demo_home: tuple[Agency, dict[str, Path]]) -> DemoServer:
    """One app for a whole module: its logins are made once (argon2 takes a while)."""
    agency, photos = demo_home
    return serve(agency, photos)
