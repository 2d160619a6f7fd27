"""`candor simulate` and synthetic subjects: only where they belong, through the real workflow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from candor.audit import parse_time, verify_entries
from candor.cli.app import app
from candor.simulation.activity import (
    NIGHT_OWL,
    SimulationRefusedError,
    SimulationSettings,
    run_simulation,
    simulation_policy,
)
from candor.simulation.synthetic import (
    SAME_SUBJECT_COSINE,
    SyntheticDataRefusedError,
    load_synthetic_gallery,
    synthetic_templates,
)
from candor.store import (
    AuditCheckpoint,
    AuditEntry,
    FaceTemplate,
    GalleryImage,
    SearchRequest,
    User,
    Workspace,
)
from candor.workflow import Actor, Workflow
from candor.workflow.accounts import bootstrap
from candor.workflow.audit_ops import verifier_key
from candor.workflow.workspaces import create_workspace
from tests.agency import new_user
from tests.cli.test_command_tree import GOVERNED

pytestmark = pytest.mark.xdist_group("simulation")

START = date(2026, 3, 2)  # a Monday
NOBODY = Actor(
    user_id=1,
    username="nobody",
    unit="Records",
    roles=frozenset({"admin"}),
    certificate_valid=True,
    disabled=False,
)


def simulate(home: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["simulate", "--home", str(home), *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("purpose", ["operational", "evaluation", "demo", "benchmark"])
def test_simulate_refuses_any_other_purpose(tmp_path: Path, purpose: str) -> None:
    create_workspace(tmp_path / "ws", purpose=purpose).close()
    code, payload = simulate(tmp_path / "ws", "--weeks", "1", "--searches", "5")
    assert code == 1
    assert payload["ok"] is False
    assert f"this one is {purpose}" in str(payload["error"])
    assert "candor init --purpose simulation" in str(payload["error"])


def test_simulate_refuses_a_workspace_that_has_users(tmp_path: Path) -> None:
    workspace = create_workspace(tmp_path / "ws", purpose="simulation")
    with Workflow(workspace) as workflow:
        bootstrap(workflow, new_user("admin1", "admin"), new_user("admin2", "admin"))
        with pytest.raises(SimulationRefusedError, match="already has users"):
            run_simulation(workflow, SimulationSettings(weeks=1, searches=5, gallery=5))


@pytest.mark.parametrize("purpose", ["operational", "evaluation", "demo"])
def test_synthetic_subjects_are_refused_outside_simulation_and_benchmark(
    tmp_path: Path, purpose: str
) -> None:
    with Workflow(create_workspace(tmp_path / "ws", purpose=purpose)) as workflow:
        with pytest.raises(SyntheticDataRefusedError, match=f"this one is {purpose}"):
            load_synthetic_gallery(workflow, NOBODY, subjects=3)
        with workflow.workspace.session() as session:
            assert session.scalar(select(func.count()).select_from(GalleryImage)) == 0


def test_synthetic_templates_cluster_by_subject() -> None:
    vectors = synthetic_templates(200, 3, 128, seed=7)
    assert vectors.shape == (200, 3, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=-1).mean(), 1.46, atol=0.02)
    unit = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    same = np.einsum("sd,sd->s", unit[:, 0], unit[:, 1])
    other = np.einsum("sd,sd->s", unit[:-1, 0], unit[1:, 0])
    assert abs(same.mean() - SAME_SUBJECT_COSINE) < 0.01
    assert other.max() < same.min()
    assert np.array_equal(vectors, synthetic_templates(200, 3, 128, seed=7))
    assert not np.array_equal(vectors, synthetic_templates(200, 3, 128, seed=8))


def test_the_simulation_policy_denies_outside_agencies_and_takes_simulated_photos() -> None:
    from candor.policy import parse_policy

    policy = parse_policy(simulation_policy(SimulationSettings()))
    assert not policy.outside_agencies_allowed
    assert policy.gallery_source_types == frozenset({"simulation"})
    assert policy.repeat.similarity > 0.999
    assert policy.reviewers_to_release == 2


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    """One small simulation through the CLI, shared by the tests that read it."""
    home = tmp_path_factory.mktemp("simulation") / "ws"
    create_workspace(home, purpose="simulation").close()
    args = ["--weeks", "2", "--searches", "40", "--gallery", "60", "--start", START.isoformat()]
    code, payload = simulate(home, *args)
    assert code == 0, payload
    yield home, payload


def test_a_small_simulation_shows_the_expected_mix(
    simulated: tuple[Path, dict[str, object]],
) -> None:
    _, payload = simulated
    assert payload["simulated"] is True
    summary = payload["summary"]
    assert isinstance(summary, dict)
    assert summary["marker"] == "SIMULATED"
    assert summary["requests"] == 40
    statuses = summary["by_status"]
    assert statuses["completed"] > 20
    assert statuses["denied"] >= 1
    assert sum(summary["approval_decisions"].values()) >= 1
    assert summary["denial_reasons"]
    assert summary["verdicts"]["possible_match"] >= 1
    assert summary["verdicts"]["not_a_match"] >= 1
    assert summary["releases"] >= 1
    assert 0 < summary["lists_reviewed"] <= summary["candidate_lists"]
    assert 15 <= summary["users"] <= 25
    assert len(summary["misbehaving"]) >= 4


def test_the_simulated_log_verifies_and_stays_in_the_simulated_weeks(
    simulated: tuple[Path, dict[str, object]],
) -> None:
    home, _ = simulated
    with Workflow(Workspace.open(home)) as workflow:
        with workflow.workspace.session() as session:
            entries = list(session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)))
            notes = list(
                session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size))
            )
            created = list(session.scalars(select(SearchRequest.created_at)))
            sources = set(session.scalars(select(GalleryImage.source_type)))
            recipes = dict(
                session.execute(
                    select(FaceTemplate.recipe, func.count()).group_by(FaceTemplate.recipe)
                ).all()
            )
        report = verify_entries(entries, notes, verifier_key(workflow))
    assert report.ok, report.problem
    times = [parse_time(json.loads(entry)["time"]) for entry in entries]
    assert times == sorted(times)
    # From the Sunday set-up to the Monday after the last week, when work would resume.
    first, last = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 16, 8, tzinfo=UTC)
    assert all(first <= moment < last for moment in times)
    assert all(first <= moment < last for moment in created)
    actions = [json.loads(entry)["action"] for entry in entries]
    assert actions[0] == "simulation.started"
    assert actions[-1] == "simulation.finished"
    assert json.loads(entries[-1])["details"]["simulated"] is True
    assert set(GOVERNED["simulate"]) <= set(actions)
    assert sources == {"simulation"}
    assert recipes["synthetic"] == 60
    assert sum(recipes.values()) == 62  # and the two portraits, enrolled for real


def test_only_the_night_owl_searches_out_of_hours(
    simulated: tuple[Path, dict[str, object]],
) -> None:
    home, _ = simulated
    with Workflow(Workspace.open(home)) as workflow, workflow.workspace.session() as session:
        rows = session.execute(
            select(User.username, SearchRequest.created_at).join(
                User, User.id == SearchRequest.requester_id
            )
        ).all()
    # The workspace is in UTC; working hours are 08:00 to 18:00 on weekdays.
    out_of_hours = {
        username for username, moment in rows if moment.weekday() >= 5 or not 8 <= moment.hour < 18
    }
    assert out_of_hours <= {NIGHT_OWL}
    assert len(rows) == 40


def test_a_photo_searched_again_is_not_detected_again(tmp_path: Path) -> None:
    workspace = create_workspace(tmp_path / "ws", purpose="simulation")
    with Workflow(workspace) as workflow:
        calls: list[int] = []
        engine = workflow.engine
        detect = engine.detect_faces

        def counting(image: object) -> object:
            calls.append(1)
            return detect(image)  # type: ignore[arg-type]

        engine.detect_faces = counting  # type: ignore[method-assign]
        from candor.workflow.demo_photos import demo_variants, save_photos
        from candor.workflow.probes import probe_for

        photos = save_photos(demo_variants(), tmp_path / "photos")
        first = probe_for(workflow, photos["collins-probe.jpg"], None)
        again = probe_for(workflow, photos["collins-probe.jpg"], None)
        assert again is first
        assert len(calls) == 1
        probe_for(workflow, photos["hopper-probe.jpg"], None)
        assert len(calls) == 2
