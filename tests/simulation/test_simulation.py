"""`candor simulate` and synthetic subjects: only where they belong, through the real workflow."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from argon2 import PasswordHasher, Type
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from candor.audit import parse_time, verify_entries
from candor.cli.app import app
from candor.server.app import create_app
from candor.simulation.activity import (
    HOME_AGENCY,
    NOBODY_LOGS_IN,
    PLANTED_KINDS,
    SimulationRefusedError,
    SimulationSettings,
    SimulationSummary,
    run_simulation,
    simulated_staff,
    simulation_policy,
    staff_counts,
)
from candor.simulation.synthetic import (
    SAME_SUBJECT_COSINE,
    SyntheticDataRefusedError,
    load_synthetic_gallery,
    synthetic_templates,
)
from candor.store import (
    Approval,
    AuditCheckpoint,
    AuditEntry,
    FaceTemplate,
    GalleryImage,
    SearchRequest,
    User,
    UserRole,
    Workspace,
)
from candor.workflow import Actor, Workflow
from candor.workflow import accounts as accounts_module
from candor.workflow.accounts import bootstrap
from candor.workflow.audit_ops import verifier_key
from candor.workflow.workspaces import create_workspace
from tests.agency import new_user
from tests.cli.test_command_tree import GOVERNED
from tests.server.test_api import csrf_of

pytestmark = pytest.mark.xdist_group("simulation")

START = date(2026, 3, 2)  # a Monday
PASSWORD = "simulated-staff-2026"
STAFF = 16
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


def test_the_simulation_policy_lets_outside_agencies_ask_and_takes_simulated_photos() -> None:
    from candor.policy import parse_policy

    policy = parse_policy(simulation_policy(SimulationSettings()))
    assert policy.outside_agencies_allowed
    assert policy.home_agency == HOME_AGENCY
    assert policy.gallery_source_types == frozenset({"simulation"})
    assert policy.repeat.similarity > 0.999
    assert policy.reviewers_to_release == 2


@contextlib.contextmanager
def cheap_hashing() -> Iterator[None]:
    """Argon2 at its cheapest: every account is hashed, and logged in weekly, at its cost."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            accounts_module,
            "PASSWORD_HASHER",
            PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
        )
        yield


def planted(payload: dict[str, object]) -> dict[str, str]:
    """Kind of planted misuse -> who, from the summary of `candor simulate --json`."""
    summary = payload["summary"]
    assert isinstance(summary, dict)
    return {kind: username for username, kind in summary["planted"].items()}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    """One small simulation through the CLI, shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("simulation")
    home = folder / "ws"
    create_workspace(home, purpose="simulation").close()
    (folder / "password").write_text(f"  {PASSWORD}  \nnot this line\n")
    args = ["--weeks", "2", "--searches", "60", "--gallery", "60", "--start", START.isoformat()]
    args += ["--staff", str(STAFF), "--password-file", str(folder / "password")]
    with cheap_hashing():
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
    assert summary["requests"] == 60
    statuses = summary["by_status"]
    assert statuses["completed"] > 20
    assert statuses["denied"] >= 1
    assert sum(summary["approval_decisions"].values()) >= 1
    assert summary["denial_reasons"]
    assert summary["verdicts"]["possible_match"] >= 1
    assert summary["verdicts"]["not_a_match"] >= 1
    assert summary["releases"] >= 1
    assert 0 < summary["lists_reviewed"] <= summary["candidate_lists"]
    assert summary["users"] == STAFF + 3  # two admins and an auditor on top
    assert summary["staff"] == STAFF
    assert sorted(summary["planted"].values()) == sorted(PLANTED_KINDS)
    assert summary["misbehaving"].keys() == summary["planted"].keys()
    assert "password file" in summary["login"]


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
    # The auditor signs the whole log once the simulation has finished.
    assert actions[-2:] == ["simulation.finished", "audit.checkpoint_requested"]
    assert json.loads(entries[-2])["details"]["simulated"] is True
    assert json.loads(entries[-1])["actor"] == "standards.aud1"
    assert report.last_checkpoint_size == len(entries)
    assert not report.unchecked_tail
    assert set(GOVERNED["simulate"]) <= set(actions)
    assert sources == {"simulation"}
    assert recipes["synthetic"] == 60
    assert sum(recipes.values()) == 62  # and the two portraits, enrolled for real


def test_only_the_night_owl_searches_out_of_hours(
    simulated: tuple[Path, dict[str, object]],
) -> None:
    home, payload = simulated
    night_owl = planted(payload)["night"]
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
    assert out_of_hours == {night_owl}
    assert len(rows) == 60


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


def test_staff_log_in_over_http_with_the_password_from_the_file(
    simulated: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    home, payload = simulated
    copy = tmp_path / "ws"  # logins are audited now, after the simulated weeks
    shutil.copytree(home, copy)
    people = ("records.admin1", "standards.aud1", "forensic.e1", planted(payload)["volume"])
    with cheap_hashing(), Workflow(Workspace.open(copy)) as workflow:
        client = TestClient(create_app(workflow))
        for username in people:
            page = client.get("/login")
            answer = client.post(
                "/login",
                data={"username": username, "password": PASSWORD, "csrf": csrf_of(page.text)},
                follow_redirects=False,
            )
            assert answer.status_code == 303, (username, answer.text)
            landing = client.get("/home")
            assert landing.status_code == 200
            assert username in landing.text
            client.post("/logout", data={"csrf": csrf_of(landing.text)})
        wrong = client.post("/api/login", json={"username": people[0], "password": "x" * 16})
        assert wrong.status_code == 401


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("", "the first line is empty"),
        ("   \nsimulated-staff-2026\n", "the first line is empty"),
        ("short\n", "at least 12 characters"),
        (b"\xff\xfe-not-text-at-all", "not UTF-8 text"),
        ("folder", "a folder"),
    ],
)
def test_a_bad_password_file_is_one_line_and_nothing_is_made(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    home = tmp_path / "ws"
    create_workspace(home, purpose="simulation").close()
    password_file = tmp_path / "password"
    if content == "folder":
        password_file.mkdir()
    elif isinstance(content, bytes):
        password_file.write_bytes(content)
    elif content is not None:
        password_file.write_text(content)
    code, payload = simulate(home, "--weeks", "1", "--password-file", str(password_file))
    assert code == 1
    error = str(payload["error"])
    assert error.startswith(f"password file {password_file}: ") and problem in error
    assert "\n" not in error
    with Workflow(Workspace.open(home)) as workflow, workflow.workspace.session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--staff", "14"], "simulate 15 to 500 people doing casework with planted misuse, not 14"),
        (["--staff", "3", "--no-plant"], "simulate 4 to 500 people doing casework, not 3"),
    ],
)
def test_too_few_staff_are_refused_before_anything_is_made(
    tmp_path: Path, args: list[str], problem: str
) -> None:
    home = tmp_path / "ws"
    create_workspace(home, purpose="simulation").close()
    code, payload = simulate(home, "--weeks", "1", *args)
    assert code == 1
    assert problem in str(payload["error"])
    with Workflow(Workspace.open(home)) as workflow, workflow.workspace.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize(
    ("staff", "counts"), [(4, (1, 2, 1)), (15, (9, 4, 2)), (19, (11, 5, 3)), (25, (15, 6, 4))]
)
def test_staff_are_analysts_examiners_and_supervisors_in_proportion(
    staff: int, counts: tuple[int, int, int]
) -> None:
    assert staff_counts(staff) == counts
    people = simulated_staff(staff, plant=staff >= 15)
    roles = Counter(person.role for person in people)
    assert (roles["analyst"], roles["examiner"], roles["supervisor"]) == counts
    assert roles["auditor"] == 1
    assert len({person.username for person in people}) == len(people)


def test_planted_analysts_are_chosen_by_the_seed_at_most_two_to_a_unit() -> None:
    def habits(people: tuple[object, ...]) -> dict[str, str]:
        return {p.username: p.habit for p in people if p.habit}  # type: ignore[attr-defined]

    assert simulated_staff(25, seed=3) == simulated_staff(25, seed=3)
    drawn = {tuple(sorted(habits(simulated_staff(25, seed=seed)).items())) for seed in range(8)}
    assert len(drawn) > 1
    for seed in range(20):
        for staff in (15, 19, 25):
            people = simulated_staff(staff, seed=seed)
            assert sorted(habits(people).values()) == sorted(PLANTED_KINDS)
            analysts = [p for p in people if p.role == "analyst"]
            for unit in {p.unit for p in analysts}:
                planted_here = sum(1 for p in analysts if p.unit == unit and p.habit)
                ordinary_here = sum(1 for p in analysts if p.unit == unit and not p.habit)
                assert planted_here <= 2 and ordinary_here >= 1
    unplanted = simulated_staff(25, plant=False, seed=3)
    assert not habits(unplanted)
    assert [p.username for p in unplanted] == [p.username for p in simulated_staff(25, seed=3)]


def test_staff_n_gives_n_people_doing_casework(
    simulated: tuple[Path, dict[str, object]],
) -> None:
    home, _ = simulated
    with Workflow(Workspace.open(home)) as workflow, workflow.workspace.session() as session:
        roles = Counter(session.scalars(select(UserRole.role)))
    assert (roles["analyst"], roles["examiner"], roles["supervisor"]) == staff_counts(STAFF)
    assert (roles["admin"], roles["auditor"]) == (2, 1)


def test_the_planted_misuse_is_in_the_stored_records(
    simulated: tuple[Path, dict[str, object]],
) -> None:
    home, payload = simulated
    who = planted(payload)
    with Workflow(Workspace.open(home)) as workflow, workflow.workspace.session() as session:
        analysts = set(
            session.scalars(
                select(User.username)
                .join(UserRole, UserRole.user_id == User.id)
                .where(UserRole.role == "analyst")
            )
        )
        requests = session.execute(
            select(
                User.username,
                SearchRequest.requesting_agency,
                SearchRequest.earlier_search_id,
                SearchRequest.decision,
            ).join(User, User.id == SearchRequest.requester_id)
        ).all()
        approvals = session.execute(
            select(User.username, Approval.decision, Approval.reason)
            .join(SearchRequest, SearchRequest.id == Approval.search_id)
            .join(User, User.id == SearchRequest.requester_id)
        ).all()
        expires = session.scalar(
            select(User.certificate_expires).where(User.username == who["expired_certificate"])
        )
        no_certificate = [
            moment
            for username, moment, decision in session.execute(
                select(User.username, SearchRequest.created_at, SearchRequest.decision).join(
                    User, User.id == SearchRequest.requester_id
                )
            )
            if "no_certificate" in {reason["code"] for reason in decision["reasons"]}
            and username == who["expired_certificate"]
        ]
    by_user = Counter(username for username, *_ in requests)
    others = sorted(by_user[name] for name in analysts - set(who.values()))
    assert by_user[who["volume"]] >= 2 * others[len(others) // 2]
    assert by_user[who["volume"]] == max(by_user.values())
    repeats = Counter(username for username, _, earlier, _ in requests if earlier is not None)
    assert repeats[who["re_runs"]] >= 2
    assert repeats[who["re_runs"]] == max(repeats.values())
    decided = [(decision, reason) for name, decision, reason in approvals if name == who["re_runs"]]
    assert any(decision == "approved" for decision, _ in decided)
    assert all(reason.strip() for _, reason in decided)
    outside = Counter(name for name, agency, _, _ in requests if agency != HOME_AGENCY)
    shares = {name: outside[name] / by_user[name] for name in by_user}
    assert shares[who["outside_agencies"]] >= 0.5
    assert max(v for k, v in shares.items() if k != who["outside_agencies"]) < 0.5
    denied_for_certificate = {
        name
        for name, _, _, decision in requests
        if "no_certificate" in {reason["code"] for reason in decision["reasons"]}
    }
    assert denied_for_certificate == {who["expired_certificate"]}
    assert expires is not None
    assert no_certificate and all(moment.date() > expires for moment in no_certificate)


def test_the_same_seed_gives_the_same_activity(tmp_path: Path) -> None:
    def run(name: str) -> tuple[SimulationSummary, list[tuple[object, ...]]]:
        home = tmp_path / name
        create_workspace(home, purpose="simulation").close()
        settings = SimulationSettings(
            weeks=1, searches=8, gallery=5, probes=6, start=START, staff=15
        )
        with cheap_hashing(), Workflow(Workspace.open(home)) as workflow:
            summary = run_simulation(workflow, settings)
            with workflow.workspace.session() as session:
                rows = session.execute(
                    select(
                        User.username,
                        SearchRequest.created_at,
                        SearchRequest.status,
                        SearchRequest.requesting_agency,
                    )
                    .join(User, User.id == SearchRequest.requester_id)
                    .order_by(SearchRequest.id)
                ).all()
        return replace(summary, seconds=0.0), [tuple(row) for row in rows]

    first, again = run("first"), run("again")
    assert first == again
    assert len(first[1]) == 8
    assert first[0].login == NOBODY_LOGS_IN
