"""`--background` and `candor jobs`: queue from the command line, run, follow, and a
kill -9 of `candor jobs run` in the middle of an enrolment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from candor.cli.app import app
from candor.store import AuditEntry, GalleryImage, Job
from candor.workflow.audit_ops import verify_log
from candor.workflow.jobs import JobRunner, resume_job
from tests.agency import Agency, make_agency
from tests.cli.test_command_tree import Cli
from tests.support import people_with_photos, photos_of

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

ENROL = [
    "--source", "evaluation", "--source-ref", "lfw-dev", "--legal-basis", "research use",
    "--collected", "2024-01-01", "--retain-until", "2030-01-01",
]  # fmt: skip


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def either_agency(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Agency]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    made = make_agency(tmp_path, database_url=url)
    yield made
    made.workflow.close()


def one_photo_each(faces_dir: Path, folder: Path, count: int) -> Path:
    for person in people_with_photos(faces_dir, count, minimum=1):
        (folder / person.name).mkdir(parents=True)
        (folder / person.name / "1.jpg").symlink_to(photos_of(person)[0])
    return folder


def gallery_state(agency: Agency) -> tuple[int, int, int]:
    """(gallery images, distinct hashes among them, gallery.enrolled entries)."""
    with agency.workflow.workspace.session() as session:
        images, distinct = session.execute(
            select(func.count(GalleryImage.id), func.count(func.distinct(GalleryImage.sha256)))
        ).one()
        bodies = session.scalars(select(AuditEntry.body)).all()
    enrolled = sum(json.loads(body)["action"] == "gallery.enrolled" for body in bodies)
    return images, distinct, enrolled


def test_background_enrolment_is_queued_listed_run_and_shown(
    agency: Agency, tmp_path: Path, faces_dir: Path
) -> None:
    cli = Cli(agency).as_user("admin1")
    folder = one_photo_each(faces_dir, tmp_path / "gallery", 3)
    queued = cli.run("enrol", str(folder), "--from-folders", *ENROL, "--background")
    job = queued["job"]
    assert isinstance(job, dict)
    assert (job["state"], job["total"], job["requested_by"]) == ("queued", 3, "admin1")
    assert gallery_state(agency) == (0, 0, 0)
    listed = cli.run("jobs", "list")["jobs"]
    assert isinstance(listed, list) and [row["id"] for row in listed] == [job["id"]]

    ran = cli.run("jobs", "run")
    assert isinstance(ran["jobs"], list) and ran["jobs"][0]["state"] == "done"
    shown = cli.run("jobs", "show", str(job["id"]))["job"]
    assert isinstance(shown, dict)
    assert (shown["done"], shown["left"], shown["result"]["enrolled"]) == (3, 0, 3)
    assert gallery_state(agency) == (3, 3, 3)
    table = cli.runner.invoke(app, ["jobs", "list"], env={"CANDOR_HOME": str(cli.home)})
    assert table.exit_code == 0 and "done" in table.stdout and "3/3" in table.stdout
    # An analyst does not see the admin's job.
    refused = cli.as_user("ana").run("jobs", "show", str(job["id"]))
    assert refused["ok"] is False and f"no job {job['id']}" in str(refused["error"])


def test_kill_9_of_the_runner_mid_enrolment_loses_nothing_and_the_job_resumes(
    either_agency: Agency, tmp_path: Path, faces_dir: Path
) -> None:
    agency = either_agency
    cli = Cli(agency).as_user("admin1")
    folder = one_photo_each(faces_dir, tmp_path / "gallery", 10)
    job_id = cli.run("enrol", str(folder), "--from-folders", *ENROL, "--background")["job"]
    assert isinstance(job_id, dict)
    home = agency.workflow.workspace.home
    runner = subprocess.Popen(
        [sys.executable, "-m", "candor", "jobs", "run", "--home", str(home), "--batch", "4"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cursor = 0
        deadline = time.monotonic() + 300  # a bound on a hung runner, not a timing check
        while cursor < 3 and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with agency.workflow.workspace.session() as session:
                cursor = session.scalar(select(Job.cursor).where(Job.id == job_id["id"])) or 0
        assert runner.poll() is None, "the runner ended before it could be killed"
        os.kill(runner.pid, signal.SIGKILL)
    finally:
        runner.wait()

    images, distinct, enrolled = gallery_state(agency)
    # What committed stayed, each photo with its entry; the batch in hand is unfinished.
    assert 3 <= images < 10
    assert images == distinct == enrolled
    assert verify_log(agency.workflow, agency["sam"]).ok
    with agency.workflow.workspace.session() as session:
        job = session.get(Job, job_id["id"])
        assert job is not None and job.state == "running" and job.cursor <= images

    resume_job(agency.workflow, agency["admin1"], job_id["id"])
    [ended] = JobRunner(agency.workflow, batch_size=4).run_until_empty()
    assert (ended.state, ended.done, ended.left) == ("done", 10, 0)
    assert gallery_state(agency) == (10, 10, 10)
    assert verify_log(agency.workflow, agency["sam"]).ok
