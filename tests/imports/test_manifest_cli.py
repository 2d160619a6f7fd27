"""`candor enrol --manifest`: refused rows named one by one with nothing stored, good rows
enrolled with their own provenance (now or as a job), booking photos kept out of an
evaluation workspace."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from candor.cli.app import app
from candor.store import GalleryImage, Subject
from tests.agency import Agency, make_agency
from tests.cli.test_command_tree import Cli
from tests.support import people_with_photos, photos_of

pytestmark = [pytest.mark.xdist_group("workflow")]

HEADER = "path,subject,source_ref,collected,retain_until,legal_basis\n"


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(tmp_path_factory.mktemp("manifest-cli"))
    yield made
    made.workflow.close()


def image_count(agency: Agency) -> int:
    with agency.workflow.workspace.session() as session:
        return session.scalar(select(func.count(GalleryImage.id))) or 0


def test_bad_rows_are_each_refused_by_row_and_nothing_is_stored(
    agency: Agency, tmp_path: Path
) -> None:
    for name in ("a", "c"):
        (tmp_path / f"{name}.jpg").write_bytes(b"never read")
    manifest = tmp_path / "intake.csv"
    manifest.write_text(
        HEADER
        + "a.jpg,P-1,TCN 1,2021-01-01,2029-01-01,research use\n"
        + "b.jpg,P-2,TCN 2,2021-01-01,2029-01-01,research use\n"
        + "a.jpg,,TCN 3,2021-01-01,2029-01-01,research use\n"
        + "a.jpg,P-4,TCN 4,2021-13-01,2029-01-01,research use\n"
        + "c.jpg,P-5,TCN 5,2021-01-01,2041-01-01,research use\n"
    )
    cli = Cli(agency).as_user("admin1")
    before = image_count(agency)
    refused = cli.run("enrol", "--manifest", str(manifest), "--source", "evaluation")
    assert refused["ok"] is False
    assert refused["records"] == 5
    listed = refused["refused"]
    assert isinstance(listed, list)
    reasons = {item["origin"]: item["reason"] for item in listed}
    assert reasons == {
        "intake.csv row 3": "field path: 'b.jpg' does not exist",
        "intake.csv row 4": "field subject: blank; every row needs one",
        "intake.csv row 5": "field collected: '2021-13-01' is not a date in YYYY-MM-DD form",
        "intake.csv row 6": reasons["intake.csv row 6"],
    }
    assert reasons["intake.csv row 6"].startswith("field retain_until: 2041-01-01 is later")
    assert str(refused["error"]).startswith("4 of 5 record(s) refused, so nothing was stored")
    assert "--skip-refused" in str(refused["error"])
    assert image_count(agency) == before

    # At a terminal: the table of refused rows, one error line, exit status 1.
    shown = CliRunner().invoke(
        app,
        ["enrol", "--manifest", str(manifest), "--source", "evaluation"],
        env={"CANDOR_HOME": str(agency.workflow.workspace.home), "COLUMNS": "200"},
    )
    assert shown.exit_code == 1
    assert "Refused records (nothing was stored)" in shown.stderr
    assert "intake.csv row 5" in shown.stderr
    assert shown.stderr.rstrip().splitlines()[-1].startswith("candor: error: 4 of 5 record(s)")
    assert image_count(agency) == before


def test_an_evaluation_workspace_refuses_booking_photos_before_reading(
    agency: Agency, tmp_path: Path
) -> None:
    cli = Cli(agency).as_user("admin1")
    # The default source type is booking_photo; the manifest is not even opened.
    refused = cli.run("enrol", "--manifest", str(tmp_path / "none.csv"))
    assert refused["ok"] is False
    assert "'booking_photo' is not allowed in this workspace" in str(refused["error"])
    missing = cli.run("enrol", "--manifest", str(tmp_path / "none.csv"), "--source", "evaluation")
    assert missing["error"] == f"the manifest {tmp_path / 'none.csv'} does not exist"


def test_the_options_that_go_with_a_manifest_and_without_one(
    agency: Agency, tmp_path: Path
) -> None:
    cli = Cli(agency).as_user("admin1")
    both = cli.run("enrol", str(tmp_path), "--manifest", "x.csv", "--subject", "P-1")
    assert both["error"] == (
        "--manifest takes no PATH, --subject: each row names its photo, person and source reference"
    )
    bare = cli.run("enrol", str(tmp_path), "--subject", "P-1", "--source", "evaluation")
    assert bare["error"] == (
        "give --source-ref, --legal-basis, --collected, --retain-until (each photo's "
        "provenance), or --manifest FILE.csv"
    )
    stray = cli.run("enrol", str(tmp_path), "--subject", "P-1", "--skip-refused")
    assert stray["error"] == "--skip-refused goes with --manifest"


@pytest.mark.faces
def test_a_manifest_enrols_each_photo_with_its_own_provenance_now_and_as_a_job(
    agency: Agency, tmp_path: Path, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 3)
    for number, person in enumerate(people):
        shutil.copy(photos_of(person)[0], tmp_path / f"{number}.jpg")
    manifest = tmp_path / "intake.csv"
    manifest.write_text(
        HEADER
        + "0.jpg,M-0,TCN 0,2021-01-01,2029-01-01,research use\n"
        + "1.jpg,M-1,TCN 1,2022-02-02,,\n"
        + "gone.jpg,M-9,TCN 9,2022-02-02,,\n"
    )
    cli = Cli(agency).as_user("admin1")
    enrolled = cli.run(
        "enrol", "--manifest", str(manifest), "--source", "evaluation",
        "--legal-basis", "LFW terms", "--skip-refused",
    )  # fmt: skip
    assert enrolled["ok"] is True, enrolled
    assert enrolled["counts"] == {"enrolled": 2, "duplicate": 0, "refused": 0}
    files = enrolled["files"]
    assert isinstance(files, list)
    assert [f["origin"] for f in files] == ["intake.csv row 2", "intake.csv row 3"]
    assert enrolled["refused"] == [
        {"origin": "intake.csv row 4", "reason": "field path: 'gone.jpg' does not exist"}
    ]

    later = tmp_path / "later.csv"
    later.write_text(HEADER + "2.jpg,M-2,TCN 2,2023-03-03,2030-03-03,consent\n")
    queued = cli.run("enrol", "--manifest", str(later), "--source", "evaluation", "--background")
    assert queued["ok"] is True and queued["refused"] == [], queued
    ran = cli.run("jobs", "run")
    assert ran["ok"] is True, ran
    with agency.workflow.workspace.session() as session:
        rows = session.execute(
            select(
                Subject.external_ref,
                GalleryImage.source_ref,
                GalleryImage.legal_basis,
                GalleryImage.collected_on,
                GalleryImage.retain_until,
            )
            .join(Subject, GalleryImage.subject_id == Subject.id)
            .where(Subject.external_ref.like("M-%"))
            .order_by(Subject.external_ref)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("M-0", "TCN 0", "research use", date(2021, 1, 1), date(2029, 1, 1)),
        # The command's legal basis and the policy's longest retention (3,650 days).
        ("M-1", "TCN 1", "LFW terms", date(2022, 2, 2), date(2032, 1, 31)),
        ("M-2", "TCN 2", "consent", date(2023, 3, 3), date(2030, 3, 3)),
    ]
