"""Per-photo provenance: each request may carry its own provenance and origin; every one is
checked before any photo is read, and a queued enrolment keeps each file's own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import GalleryImage, Provenance, ProvenanceError
from candor.workflow import EnrolmentRequest, EnrolmentStatus, enrol_files
from candor.workflow.enrolment import EnrolmentRefusedError, check_enrolment
from candor.workflow.jobs import JobRunner, job_view, queue_enrolment
from tests.agency import Agency, make_agency
from tests.support import evaluation_provenance, people_with_photos, photos_of

pytestmark = [pytest.mark.xdist_group("workflow")]


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    # One workspace for the module (seconds to make): each test leaves its own rows, and
    # asserts only on rows it made.
    made = make_agency(tmp_path_factory.mktemp("photo-provenance"))
    yield made
    made.workflow.close()


def provenance_for(source_ref: str, collected_on: date) -> Provenance:
    """The evaluation provenance with a record's own reference and collection date."""
    return replace(evaluation_provenance(), source_ref=source_ref, collected_on=collected_on)


def gallery_rows(agency: Agency) -> list[tuple[str, str, date, date]]:
    with agency.workflow.workspace.session() as session:
        rows = session.execute(
            select(
                GalleryImage.source_type,
                GalleryImage.source_ref,
                GalleryImage.collected_on,
                GalleryImage.retain_until,
            ).order_by(GalleryImage.source_ref)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_each_request_is_checked_before_any_photo_naming_its_origin(
    agency: Agency, tmp_path: Path
) -> None:
    # No photo exists: the refusals come before any is read.
    first = EnrolmentRequest(
        tmp_path / "a.jpg", "P-1", provenance_for("TCN 1", date(2021, 1, 1)), "intake.csv row 2"
    )
    booking = replace(evaluation_provenance(), source_type="booking_photo")
    second = EnrolmentRequest(tmp_path / "b.jpg", "P-2", booking, "intake.csv row 3")
    with pytest.raises(EnrolmentRefusedError) as refused:
        check_enrolment(agency.workflow, agency["admin1"], [first, second], None)
    assert refused.value.origin == "intake.csv row 3"
    assert refused.value.field == "source_type"
    assert str(refused.value).startswith("intake.csv row 3: field source_type: ")

    # Beyond the policy's retention limit (3,650 days in the example policy).
    too_long = replace(evaluation_provenance(), retain_until=date(2040, 1, 1))
    late = EnrolmentRequest(tmp_path / "c.jpg", "P-3", too_long, "tx1.an2 record 10.003")
    with pytest.raises(EnrolmentRefusedError, match=r"^tx1.an2 record 10.003: field retain_until"):
        check_enrolment(agency.workflow, agency["admin1"], [first, late], None)

    long_ref = EnrolmentRequest(
        tmp_path / "d.jpg", "P" * 201, evaluation_provenance(), "intake.csv row 9"
    )
    with pytest.raises(EnrolmentRefusedError, match=r"^intake.csv row 9: field subject_ref"):
        check_enrolment(agency.workflow, agency["admin1"], [long_ref], None)

    bare = EnrolmentRequest(tmp_path / "e.jpg", "P-5", origin="intake.csv row 4")
    with pytest.raises(EnrolmentRefusedError, match=r"^intake.csv row 4: field provenance"):
        check_enrolment(agency.workflow, agency["admin1"], [first, bare], None)

    # Without an origin the refusal is as before: the store's, naming the field.
    with pytest.raises(ProvenanceError, match="source_type"):
        check_enrolment(
            agency.workflow, agency["admin1"], [EnrolmentRequest(first.path, "P-1", booking)], None
        )
    # The call's provenance still serves requests without their own.
    checked = check_enrolment(
        agency.workflow,
        agency["admin1"],
        [first, EnrolmentRequest(tmp_path / "f.jpg", "P-6")],
        evaluation_provenance(),
    )
    assert [item.source_ref for item in checked] == ["TCN 1", "lfw-dev (tests)"]


@pytest.mark.faces
def test_a_refused_request_stops_the_batch_before_any_photo_is_stored(
    agency: Agency, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 2)
    good = EnrolmentRequest(
        photos_of(people[0])[0], "P-1", provenance_for("TCN 1", date(2021, 1, 1)), "row 2"
    )
    booking = replace(evaluation_provenance(), source_type="booking_photo")
    bad = EnrolmentRequest(photos_of(people[1])[0], "P-2", booking, "row 3")
    before = gallery_rows(agency)
    with pytest.raises(EnrolmentRefusedError, match=r"^row 3: field source_type"):
        enrol_files(agency.workflow, agency["admin1"], [good, bad], None)
    assert gallery_rows(agency) == before


@pytest.mark.faces
def test_each_photo_keeps_its_own_provenance_directly_and_through_a_job(
    agency: Agency, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 6)[3:]
    direct = [
        EnrolmentRequest(
            photos_of(people[0])[0], "P-1", provenance_for("TCN 1", date(2021, 1, 1)), "row 2"
        ),
        # No provenance of its own: the call's.
        EnrolmentRequest(photos_of(people[1])[0], "P-2"),
    ]
    summary = enrol_files(agency.workflow, agency["admin1"], direct, evaluation_provenance())
    assert [o.status for o in summary.outcomes] == [EnrolmentStatus.ENROLLED] * 2
    assert [o.origin for o in summary.outcomes] == ["row 2", None]

    queued = [
        EnrolmentRequest(
            photos_of(people[2])[0], "P-3", provenance_for("TCN 3", date(2022, 3, 3)), "row 4"
        ),
        # The same photo again, from another row: a duplicate, named by its origin.
        EnrolmentRequest(
            photos_of(people[0])[0], "P-1", provenance_for("TCN 9", date(2022, 9, 9)), "row 5"
        ),
    ]
    view = queue_enrolment(agency.workflow, agency["admin1"], queued, None)
    assert view.description == "enrol 2 file(s) (evaluation)"
    JobRunner(agency.workflow, batch_size=1).run_until_empty()
    done = job_view(agency.workflow, agency["admin1"], view.id)
    assert (done.state, done.result) == ("done", {"enrolled": 1, "duplicate": 1, "refused": 0})
    assert gallery_rows(agency) == [
        ("evaluation", "TCN 1", date(2021, 1, 1), date(2029, 12, 1)),
        ("evaluation", "TCN 3", date(2022, 3, 3), date(2029, 12, 1)),
        ("evaluation", "lfw-dev (tests)", date(2020, 1, 1), date(2029, 12, 1)),
    ]


def test_queueing_refuses_a_request_naming_its_origin(agency: Agency, tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"not read")
    booking = replace(evaluation_provenance(), source_type="booking_photo")
    request = EnrolmentRequest(photo, "P-1", booking, "intake.csv row 2")
    with pytest.raises(EnrolmentRefusedError, match=r"^intake\.csv row 2: field source_type"):
        queue_enrolment(agency.workflow, agency["admin1"], [request], None)
    missing = EnrolmentRequest(tmp_path / "gone.jpg", "P-1", evaluation_provenance(), "row 7")
    with pytest.raises(Exception, match=r"^row 7: .*gone\.jpg is not a file"):
        queue_enrolment(agency.workflow, agency["admin1"], [missing], None)
