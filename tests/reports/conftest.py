"""One scripted scenario for every report test (built once per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reports.scenario import Scenario, build


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Scenario]:
    made = build(tmp_path_factory.mktemp("report-scenario"), faces_dir)
    yield made
    made.agency.workflow.close()
