"""The workflow's side of synthetic data: what candor.simulation may write, and no more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from candor.simulation.synthetic import noise_png
from candor.store import find_subject
from candor.workflow import WorkflowError
from candor.workflow.synthetic import (
    SyntheticDataRefusedError,
    SyntheticSubject,
    enrol_synthetic_subjects,
    record_simulation_step,
    simulated_activity,
)
from tests.agency import make_agency


def test_simulation_steps_only_in_a_simulation_workspace_and_only_its_two(
    tmp_path: Path,
) -> None:
    evaluation = make_agency(tmp_path / "evaluation", purpose="evaluation")
    with pytest.raises(SyntheticDataRefusedError, match="this one is evaluation"):
        record_simulation_step(evaluation.workflow, "simulation.started", {"simulated": True})
    simulation = make_agency(tmp_path / "simulation", purpose="simulation")
    with pytest.raises(WorkflowError, match=r"not 'gallery\.enrolled'"):
        record_simulation_step(simulation.workflow, "gallery.enrolled", {})
    before = record_simulation_step(simulation.workflow, "simulation.started", {"simulated": True})
    after = record_simulation_step(simulation.workflow, "simulation.finished", {"simulated": True})
    assert after == before + 1
    assert simulated_activity(simulation.workflow).by_status == {}


def test_templates_that_do_not_fit_the_pictures_or_the_model_are_refused(
    tmp_path: Path,
) -> None:
    agency = make_agency(tmp_path / "ws", purpose="simulation")
    rng = np.random.default_rng(1)
    two_pictures = (noise_png(rng), noise_png(rng))
    for vectors in (np.ones((1, 128), np.float32), np.ones((2, 64), np.float32)):
        subject = SyntheticSubject("SYN-000001", two_pictures, vectors)
        with pytest.raises(WorkflowError, match="SYN-000001: 2 pictures need as many"):
            enrol_synthetic_subjects(
                agency.workflow,
                agency["admin1"],
                [[subject]],
                first_ref="SYN-000001",
                last_ref="SYN-000001",
                source_ref="a test",
                seed=0,
            )
    with agency.workflow.workspace.session() as session:
        assert find_subject(session, "SYN-000001") is None
