"""One scripted scenario for every report test (built once per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reports.scenario import Scenario, build
from tests.support import copy_workspace


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Scenario]:
    made = build(tmp_path_factory.mktemp("report-scenario"), faces_dir)
    yield made
    made.agency.workflow.close()


@pytest.fixture
def copy(scenario: Scenario, tmp_path: Path) -> Path:
    """A copy of the scenario's workspace as it was before the purge, to tamper with."""
    assert scenario.before_purge_copy is not None
    target = tmp_path / "ws"
    return copy_workspace(scenario.before_purge_copy, target)
