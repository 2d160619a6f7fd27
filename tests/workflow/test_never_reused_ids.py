"""An expunged person's ids are never given to anyone else, and their old records say
"expunged" (issue 12, fault 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.store import AuditEntry, FaceTemplate, GalleryImage, Provenance, Subject
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    expunge_subject,
    request_search,
    view_candidates,
)
from candor.workflow import enrol_files as governed_enrol
from candor.workflow.demo_photos import probe_variants, save_photos
from candor.workflow.probe_check import review_material
from tests.agency import Agency, make_agency
from tests.workflow.test_clock import FORM

pytestmark = pytest.mark.xdist_group("workflow")

PROVENANCE = Provenance(
    source_type="demo",
    source_ref="packaged portraits",
    legal_basis="public domain",
    collected_on=date(2024, 1, 1),
    retain_until=date(2030, 1, 1),
)
# Four people, each one photo; the search's probe is the fourth person's own photo.
PEOPLE = {"PERSON-1": "collins-00.jpg", "PERSON-2": "hopper-01.jpg"}
PEOPLE |= {"PERSON-3": "collins-02.jpg", "PERSON-4": "hopper-03.jpg"}


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path, purpose="demo")
    yield made
    made.workflow.close()


def enrol(agency: Agency, photos: dict[str, Path], people: dict[str, str]) -> None:
    requests = [EnrolmentRequest(photos[name], ref) for ref, name in people.items()]
    summary = governed_enrol(agency.workflow, agency["admin1"], requests, PROVENANCE)
    assert summary.count(EnrolmentStatus.ENROLLED) == len(people), summary.outcomes


def gallery_ids(agency: Agency) -> set[tuple[str, int]]:
    with agency.workflow.workspace.session() as session:
        return {
            (kind, row_id)
            for kind, column in (
                ("subject", Subject.id),
                ("image", GalleryImage.id),
                ("template", FaceTemplate.id),
            )
            for row_id in session.scalars(select(column))
        }


def enrolled_objects(agency: Agency) -> list[dict[str, int]]:
    with agency.workflow.workspace.session() as session:
        bodies = [json.loads(body) for body in session.scalars(select(AuditEntry.body))]
    return [body["objects"] for body in bodies if body["action"] == "gallery.enrolled"]


def test_the_next_person_enrolled_after_an_expungement_gets_new_ids(
    agency: Agency, tmp_path: Path
) -> None:
    workflow = agency.workflow
    photos = save_photos(probe_variants(6), tmp_path / "photos")
    enrol(agency, photos, PEOPLE)
    outcome = request_search(workflow, agency["ana"], photos["hopper-03.jpg"], FORM)
    assert outcome.status == "completed"
    top = view_candidates(workflow, agency["eve"], outcome.search_id).candidates[0]
    assert top.subject_ref == "PERSON-4"
    ever_used = gallery_ids(agency)

    expunge_subject(workflow, agency["admin1"], "PERSON-4")
    enrol(agency, photos, {"NEWCOMER": "hopper-05.jpg"})

    newcomer = gallery_ids(agency) - ever_used
    assert {kind for kind, _ in newcomer} == {"subject", "image", "template"}
    assert not {row_id for _, row_id in newcomer} & {top.subject_id, top.image_id}
    assert newcomer.isdisjoint(ever_used)
    # Two different people are never named by the same audit objects.
    *earlier, latest = enrolled_objects(agency)
    assert all(set(latest.items()).isdisjoint(objects.items()) for objects in earlier)

    # The old candidate list names nobody in the expunged person's place.
    after = view_candidates(workflow, agency["eve"], outcome.search_id).candidates[0]
    assert after.rank == 1
    assert (after.subject_ref, after.image_sha256) == (None, None)
    assert after.expunged
    faces = review_material(workflow, agency["eve"], outcome.search_id).candidates[0]
    assert (faces.crop_png, faces.provenance) == (None, None)


@pytest.mark.sqlite_only(reason="a SQLite database from before migration 0006, made with PRAGMA")
def test_ids_given_again_before_the_upgrade_still_read_as_expunged(
    agency: Agency, tmp_path: Path
) -> None:
    # A workspace from before revision 0006 may already have given an expunged person's
    # ids to someone enrolled after the search: the old list must not show that person.
    workflow = agency.workflow
    photos = save_photos(probe_variants(6), tmp_path / "photos")
    enrol(agency, photos, PEOPLE)
    outcome = request_search(workflow, agency["ana"], photos["hopper-03.jpg"], FORM)
    top = view_candidates(workflow, agency["eve"], outcome.search_id).candidates[0]
    expunge_subject(workflow, agency["admin1"], "PERSON-4")
    enrol(agency, photos, {"NEWCOMER": "hopper-05.jpg"})
    with workflow.workspace.session() as session:
        newcomer = session.scalars(select(FaceTemplate)).all()[-1]
        moves = {"subject": (newcomer.subject_id, top.subject_id)}
        moves["image"] = (newcomer.image_id, top.image_id)
    give_ids_again(agency, moves)

    after = view_candidates(workflow, agency["eve"], outcome.search_id).candidates[0]
    assert (after.subject_ref, after.image_sha256) == (None, None)
    assert after.expunged
    faces = review_material(workflow, agency["eve"], outcome.search_id).candidates[0]
    assert (faces.crop_png, faces.provenance) == (None, None)


def give_ids_again(agency: Agency, moves: dict[str, tuple[int, int]]) -> None:
    """Renumber the newcomer's rows to the expunged person's ids, as SQLite did before 0006."""
    columns = {
        "subject": (("subjects", "id"), ("gallery_images", "subject_id")),
        "image": (("gallery_images", "id"),),
    }
    columns["subject"] += (("face_templates", "subject_id"),)
    columns["image"] += (("face_templates", "image_id"),)
    with agency.workflow.workspace.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys = OFF")
        try:
            for kind, (new, old) in moves.items():
                for table, column in columns[kind]:
                    driver.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (old, new)
                    )
        finally:
            driver.execute("PRAGMA foreign_keys = ON")
