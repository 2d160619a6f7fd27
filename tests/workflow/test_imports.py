"""Imports from a booking system: each record's photo enrolled with its own provenance,
every record checked before anything is stored, refusals naming the record."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from candor.imports.manifest import read_manifest
from candor.imports.records import ImportedPhoto, ImportRefusal
from candor.store import GalleryImage, ProvenanceError, Subject
from candor.workflow import EnrolmentStatus
from candor.workflow.accounts import bootstrap
from candor.workflow.context import Workflow
from candor.workflow.imports import ImportRefusedError, enrol_imported, plan_import
from candor.workflow.jobs import JobRunner, job_view
from candor.workflow.workspaces import create_workspace
from tests.agency import Agency, make_agency, new_user, policy_file
from tests.support import people_with_photos, photos_of

pytestmark = [pytest.mark.xdist_group("workflow")]

HEADER = "path,subject,source_ref,collected,retain_until,legal_basis,booking_number\n"


@pytest.fixture(scope="module")
def operational(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    """An operational workspace whose policy takes booking photos (kept 3,650 days at most)."""
    home = tmp_path_factory.mktemp("operational")
    workspace = create_workspace(home / "ws", purpose="operational")
    agency = Agency(Workflow(workspace))
    bootstrap(
        agency.workflow,
        new_user("admin1", "admin", unit="Records"),
        new_user("admin2", "admin", unit="Records"),
    )
    agency.log_in("admin1")
    agency.log_in("admin2")
    agency.set_policy(policy_file(home, "two-reviewers", source_type="booking_photo"))
    agency.add_user(new_user("ana", "analyst"))
    yield agency
    agency.workflow.close()


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(tmp_path_factory.mktemp("evaluation"))
    yield made
    made.workflow.close()


def photo(origin: str, subject: str, path: Path, **fields: object) -> ImportedPhoto:
    values: dict[str, object] = {
        "source_ref": f"TCN {subject}",
        "collected_on": date(2021, 5, 1),
        "retain_until": date(2028, 5, 1),
        "legal_basis": "State Code 12",
        "booking_number": None,
    }
    values.update(fields)
    return ImportedPhoto(origin=origin, subject_ref=subject, path=path, **values)  # type: ignore[arg-type]


def gallery(agency: Agency) -> dict[str, tuple[str, str, str, date, date]]:
    """subject -> (source type, source reference, legal basis, collected, retain until)."""
    with agency.workflow.workspace.session() as session:
        rows = session.execute(
            select(
                Subject.external_ref,
                GalleryImage.source_type,
                GalleryImage.source_ref,
                GalleryImage.legal_basis,
                GalleryImage.collected_on,
                GalleryImage.retain_until,
            ).join(Subject, GalleryImage.subject_id == Subject.id)
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]


def image_count(agency: Agency) -> int:
    with agency.workflow.workspace.session() as session:
        return session.scalar(select(func.count(GalleryImage.id))) or 0


def test_an_evaluation_workspace_takes_no_booking_photos(
    evaluation: Agency, tmp_path: Path
) -> None:
    record = photo("intake.csv row 2", "P-1", tmp_path / "a.jpg")
    # booking_photo is the default source type; refused once, before any record.
    with pytest.raises(ProvenanceError, match=r"source_type.*not allowed in this workspace"):
        plan_import(evaluation.workflow, evaluation["admin1"], [record])
    with pytest.raises(ProvenanceError, match="source_type"):
        enrol_imported(evaluation.workflow, evaluation["admin1"], [record], background=True)
    plan = plan_import(
        evaluation.workflow, evaluation["admin1"], [record], source_type="evaluation"
    )
    assert (len(plan.requests), plan.refused) == (1, [])


def test_every_record_is_checked_and_nothing_is_stored_when_one_is_refused(
    operational: Agency, tmp_path: Path
) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(b"never read: every record is checked before any photo is")
    today = operational.workflow.today()
    records = [
        photo("row 2", "P-1", good),
        photo("row 3", "P-2", good, collected_on=today + timedelta(days=1)),
        photo("row 4", "P" * 201, good),
        photo("row 5", "P-4", good, retain_until=date(2040, 1, 1)),
        photo("row 6", "P-5", good, legal_basis=None),
        photo("row 7", "P-6", good, collected_on=None),
        photo("row 8", "P-7", good, source_ref="TCN\x1b[2J"),
        photo("row 9", "P-8", good, retain_until=date(2020, 1, 1)),
    ]
    reader = [ImportRefusal("row 10", "field path: 'x.jpg' does not exist")]
    before = image_count(operational)
    with pytest.raises(ImportRefusedError) as refused:
        enrol_imported(operational.workflow, operational["admin1"], records, reader)
    assert refused.value.total == 9
    # In the export's order, the reader's refusals among the workflow's.
    assert [item.origin for item in refused.value.refused] == [f"row {n}" for n in range(3, 11)]
    reasons = {item.origin: item.reason for item in refused.value.refused}
    assert reasons["row 3"].startswith("field collected_on: collection date")
    assert "in the future" in reasons["row 3"]
    assert reasons["row 4"].startswith("field subject_ref: the subject reference")
    assert reasons["row 5"].startswith("field retain_until: 2040-01-01 is later than the policy")
    assert reasons["row 6"] == "field legal_basis: the record has no legal basis and none was given"
    assert reasons["row 7"].startswith("field collected: the record has no collection date")
    assert reasons["row 8"].startswith("field source_ref: the source reference")
    assert "control character (U+001B)" in reasons["row 8"]
    assert reasons["row 9"].startswith("field retain_until: retention date 2020-01-01 is before")
    assert str(refused.value).startswith("8 of 9 record(s) refused, so nothing was stored")
    assert image_count(operational) == before

    # The command's values fill a record's gaps; the policy's maximum fills a retention date.
    filled = plan_import(
        operational.workflow,
        operational["admin1"],
        [
            photo("row 6", "P-5", good, legal_basis=None, retain_until=None),
            photo("row 7", "P-6", good, collected_on=None),
        ],
        legal_basis="Booking Act s.4",
        collected_on=date(2022, 2, 2),
    )
    assert filled.refused == []
    first, second = (request.provenance for request in filled.requests)
    assert first is not None and second is not None
    assert (first.legal_basis, first.retain_until) == ("Booking Act s.4", date(2031, 4, 29))
    assert (second.collected_on, second.source_type) == (date(2022, 2, 2), "booking_photo")


@pytest.mark.faces
def test_a_manifest_enrols_each_photo_with_its_own_provenance(
    operational: Agency, tmp_path: Path, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 4)
    export = tmp_path / "export"
    export.mkdir()
    for number, person in enumerate(people):
        shutil.copy(photos_of(person)[0], export / f"{number}.jpg")
    manifest = export / "intake.csv"
    manifest.write_text(
        HEADER
        + "0.jpg,B-0,TCN 0,2021-01-01,2029-01-01,State Code 12,BK-100\n"
        + "1.jpg,B-1,TCN 1,2022-02-02,,,\n"
        + "2.jpg,B-2,TCN 2,not a date,,,\n"
        + "3.jpg,B-3,TCN 3,2023-03-03,2030-03-03,Court order 7,\n"
    )
    photos, refusals = read_manifest(manifest)
    before = image_count(operational)
    with pytest.raises(ImportRefusedError, match=r"first: intake\.csv row 4: field collected"):
        enrol_imported(
            operational.workflow, operational["admin1"], photos, refusals, legal_basis="Act 9"
        )
    assert image_count(operational) == before

    result = enrol_imported(
        operational.workflow,
        operational["admin1"],
        photos[:2],
        refusals,
        legal_basis="Act 9",
        skip_refused=True,
    )
    assert [(item.origin, item.reason[:16]) for item in result.refused] == [
        ("intake.csv row 4", "field collected:")
    ]
    assert result.summary is not None
    outcomes = result.summary.outcomes
    assert [(o.origin, o.status) for o in outcomes] == [
        ("intake.csv row 2", EnrolmentStatus.ENROLLED),
        ("intake.csv row 3", EnrolmentStatus.ENROLLED),
    ]
    # The last one as a job: its provenance travels with the file.
    queued = enrol_imported(
        operational.workflow, operational["admin1"], photos[2:], background=True
    )
    assert queued.job is not None and queued.summary is None
    JobRunner(operational.workflow).run_until_empty()
    assert job_view(operational.workflow, operational["admin1"], queued.job.id).result == {
        "enrolled": 1,
        "duplicate": 0,
        "refused": 0,
    }
    stored = gallery(operational)
    assert stored["B-0"] == (
        "booking_photo",
        "TCN 0 booking BK-100",
        "State Code 12",
        date(2021, 1, 1),
        date(2029, 1, 1),
    )
    # Legal basis from the command, retention from the policy's maximum (3,650 days).
    assert stored["B-1"] == (
        "booking_photo",
        "TCN 1",
        "Act 9",
        date(2022, 2, 2),
        date(2022, 2, 2) + timedelta(days=3650),
    )
    assert stored["B-3"] == (
        "booking_photo",
        "TCN 3",
        "Court order 7",
        date(2023, 3, 3),
        date(2030, 3, 3),
    )
    assert "B-2" not in stored
