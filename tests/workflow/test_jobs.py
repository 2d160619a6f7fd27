"""Background jobs: queued, run by a runner as the person who asked, audited as the direct
action, cancelled between batches, resumed without duplicates, never blocking a search."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from candor.faces.recipe import RECIPES
from candor.store import AuditEntry, FaceTemplate, GalleryImage, Workspace
from candor.workflow import (
    EnrolmentRequest,
    PermissionDeniedError,
    Workflow,
    enrol_files,
    request_search,
)
from candor.workflow.jobs import (
    JobNotFoundError,
    JobRunner,
    JobStateError,
    cancel_job,
    job_view,
    job_views,
    queue_enrolment,
    queue_evaluation,
    queue_reenrolment,
    queue_retention,
    resume_job,
)
from tests.agency import Agency, make_agency, new_user
from tests.evaluation.test_evaluate_action import FAST, labelled_folder
from tests.support import evaluation_provenance, people_with_photos, photos_of
from tests.workflow.test_governed import FORM

pytestmark = [pytest.mark.xdist_group("workflow")]


@pytest.fixture(params=["sqlite", "postgresql"])
def agency(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Agency]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    made = make_agency(tmp_path, database_url=url)
    yield made
    made.workflow.close()


@pytest.fixture
def sqlite_agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def first_photos(faces_dir: Path, count: int) -> list[EnrolmentRequest]:
    return [
        EnrolmentRequest(photos_of(person)[0], person.name)
        for person in people_with_photos(faces_dir, count)
    ]


def entries(workflow: Workflow) -> list[dict[str, Any]]:
    with workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [json.loads(body) for body in bodies]


def action_entries(workflow: Workflow, after: int) -> list[tuple[object, ...]]:
    """What the actions wrote after seq `after`: the jobs' own entries left out."""
    return [
        (entry["action"], entry["actor"], entry["objects"], entry["details"])
        for entry in entries(workflow)[after:]
        if not entry["action"].startswith("job.")
    ]


def image_count(workflow: Workflow) -> tuple[int, int]:
    """(gallery images, distinct photo hashes among them)."""
    with workflow.workspace.session() as session:
        rows = session.execute(
            select(func.count(GalleryImage.id), func.count(func.distinct(GalleryImage.sha256)))
        ).one()
    return rows[0], rows[1]


@pytest.mark.faces
def test_queued_enrolment_runs_as_the_direct_action_would(
    agency: Agency, tmp_path: Path, faces_dir: Path
) -> None:
    requests = first_photos(faces_dir, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    requests.append(EnrolmentRequest(broken, "nobody"))
    # The same action run directly, in a second workspace, is what the job must record.
    direct = make_agency(tmp_path / "direct")
    try:
        before = len(entries(direct.workflow))
        enrol_files(direct.workflow, direct["admin1"], requests, evaluation_provenance())
        expected = action_entries(direct.workflow, before)
    finally:
        direct.workflow.close()

    work = agency.workflow
    before = len(entries(work))
    queued = queue_enrolment(work, agency["admin1"], requests, evaluation_provenance())
    assert (queued.state, queued.total, queued.done, queued.left) == ("queued", 4, 0, 4)
    queued_entry = entries(work)[before]
    assert queued_entry["action"] == "job.queued"
    assert queued_entry["actor"] == "admin1"
    assert queued_entry["details"]["files"] == 4

    ended = JobRunner(work, batch_size=len(requests)).run_until_empty()
    assert [view.id for view in ended] == [queued.id]
    view = job_view(work, agency["admin1"], queued.id)
    assert (view.state, view.done, view.refused, view.left) == ("done", 4, 1, 0)
    assert view.result == {"enrolled": 3, "duplicate": 0, "refused": 1}
    assert view.rate is not None and view.rate > 0
    assert action_entries(work, before) == expected
    assert image_count(work) == (3, 3)


@pytest.mark.faces
def test_cancel_stops_between_batches_and_resume_finishes_without_duplicates(
    sqlite_agency: Agency, faces_dir: Path
) -> None:
    agency = sqlite_agency
    work = agency.workflow
    requests = first_photos(faces_dir, 4)
    queued = queue_enrolment(work, agency["admin1"], requests, evaluation_provenance())

    def cancel_on_first(job_id: int, done: int) -> None:
        if done == 1:
            cancel_job(work, agency["admin1"], job_id)

    JobRunner(work, batch_size=2, on_item=cancel_on_first).run_until_empty()
    view = job_view(work, agency["admin1"], queued.id)
    # The batch in hand was finished; the next one never started.
    assert (view.state, view.done, view.cancel_requested_by) == ("cancelled", 2, "admin1")
    assert image_count(work) == (2, 2)
    with pytest.raises(JobStateError):
        cancel_job(work, agency["admin1"], queued.id)

    resumed = resume_job(work, agency["admin1"], queued.id)
    assert (resumed.state, resumed.done) == ("queued", 2)
    JobRunner(work, batch_size=2).run_until_empty()
    view = job_view(work, agency["admin1"], queued.id)
    assert (view.state, view.done, view.left) == ("done", 4, 0)
    assert view.result == {"enrolled": 4, "duplicate": 0, "refused": 0}
    assert image_count(work) == (4, 4)
    actions = [entry["action"] for entry in entries(work)]
    assert actions.count("gallery.enrolled") == 4
    assert actions.count("job.cancelled") == actions.count("job.resumed") == 1


@pytest.mark.faces
def test_a_search_returns_while_the_runner_is_in_the_middle_of_a_batch(
    sqlite_agency: Agency, faces_dir: Path
) -> None:
    agency = sqlite_agency
    work = agency.workflow
    people = people_with_photos(faces_dir, 5)
    gallery = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people[:2]]
    enrol_files(work, agency["admin1"], gallery, evaluation_provenance())
    later = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people[2:]]
    queued = queue_enrolment(work, agency["admin1"], later, evaluation_provenance())

    mid_batch = threading.Event()
    searched = threading.Event()

    def hold(job_id: int, done: int) -> None:
        if done == 1:  # one photo of the batch of three committed, two to go
            mid_batch.set()
            searched.wait(timeout=120)

    # The runner as another process would have it: its own workspace and workflow.
    runner_work = Workflow(Workspace.open(work.workspace.home))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            JobRunner(runner_work, batch_size=3, on_item=hold).run_until_empty()
        except BaseException as error:  # reported to the test below
            failures.append(error)
        finally:
            runner_work.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert mid_batch.wait(timeout=120)
        outcome = request_search(work, agency["ana"], photos_of(people[1])[1], FORM)
        assert outcome.search_id is not None
        assert job_view(work, agency["admin1"], queued.id).state == "running"
    finally:
        searched.set()
        thread.join(timeout=300)
    assert not failures
    assert job_view(work, agency["admin1"], queued.id).state == "done"


def test_who_sees_and_controls_which_job(sqlite_agency: Agency) -> None:
    agency = sqlite_agency
    work = agency.workflow
    auditor = agency.add_user(new_user("aud", "auditor"))
    queued = queue_retention(work, agency["admin1"])
    with pytest.raises(PermissionDeniedError):
        queue_retention(work, agency["ana"])
    # Not the requester's nor an admin's or auditor's: not even its existence shows.
    assert job_views(work, agency["ana"]) == []
    with pytest.raises(JobNotFoundError):
        job_view(work, agency["ana"], queued.id)
    with pytest.raises(JobNotFoundError):
        cancel_job(work, agency["sam"], queued.id)
    # Auditors see every job but stop none.
    assert [view.id for view in job_views(work, auditor)] == [queued.id]
    with pytest.raises(PermissionDeniedError):
        cancel_job(work, auditor, queued.id)
    # Another admin may stop it; a queued job ends at once.
    assert cancel_job(work, agency["admin2"], queued.id).state == "cancelled"
    assert JobRunner(work).run_until_empty() == []


def test_a_job_whose_runner_stopped_renewing_is_taken_over(sqlite_agency: Agency) -> None:
    agency = sqlite_agency
    work = agency.workflow
    before = len(entries(work))
    queued = queue_retention(work, agency["admin1"])
    # A runner that claims the job and then dies: its lease is never renewed.
    gone = JobRunner(work, owner="gone", lease_seconds=0.001)
    claimed = gone._claim()
    assert claimed is not None and claimed.id == queued.id
    assert job_view(work, agency["admin1"], queued.id).state == "running"
    while job_view(work, agency["admin1"], queued.id).lease_until > work.now():
        threading.Event().wait(0.01)
    [ended] = JobRunner(work, owner="next").run_until_empty()
    assert (ended.id, ended.state, ended.done, ended.total) == (queued.id, "done", 1, 1)
    # Recorded as the direct run records it, as the admin who queued it.
    actions = [(action, actor) for action, actor, _, _ in action_entries(work, before)]
    assert actions == [("retention.run", "admin1")]
    # The first runner, were it alive, learns the job is no longer its own.
    assert not gone._renew(queued.id)


@pytest.mark.faces
def test_a_reenrolment_job_remakes_stale_templates_in_audited_batches(
    sqlite_agency: Agency, faces_dir: Path
) -> None:
    agency = sqlite_agency
    work = agency.workflow
    enrol_files(work, agency["admin1"], first_photos(faces_dir, 3), evaluation_provenance())
    # As if an earlier Candor, whose recipe enrolled with flip views, had made them.
    with work.workspace.session() as session, session.begin():
        session.execute(update(FaceTemplate).values(recipe=RECIPES["flip"].key))
    before = len(entries(work))
    queued = queue_reenrolment(work, agency["admin1"])
    assert queued.total == 3
    [ended] = JobRunner(work, batch_size=2).run_until_empty()
    assert (ended.state, ended.done, ended.result) == (
        "done",
        3,
        {"remade": 3, "kept": 0, "batches": 2},
    )
    actions = [action for action, *_ in action_entries(work, before)]
    assert actions == ["gallery.reenrolled", "gallery.reenrolled"]


@pytest.mark.faces
def test_an_evaluation_job_stores_the_report_card_as_its_auditor(
    sqlite_agency: Agency, tmp_path: Path, faces_dir: Path
) -> None:
    agency = sqlite_agency
    work = agency.workflow
    auditor = agency.add_user(new_user("aud", "auditor"))
    dataset = labelled_folder(faces_dir, tmp_path / "labelled")
    before = len(entries(work))
    queued = queue_evaluation(work, auditor, dataset, options=FAST, workers=1)
    [ended] = JobRunner(work).run_until_empty()
    assert (ended.id, ended.state, ended.done, ended.left) == (queued.id, "done", 1, 0)
    assert ended.result is not None and isinstance(ended.result["report_card"], int)
    [(action, actor, objects, details)] = action_entries(work, before)
    assert (action, actor, objects) == (
        "evaluation.run",
        "aud",
        {"report_card": ended.result["report_card"]},
    )
    assert isinstance(details, dict) and details["dataset"] == str(dataset.absolute())
