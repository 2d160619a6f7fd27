"""The workflow end to end on real photos: enrol, search, verify, expunge."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from candor.store import FaceTemplate, GalleryImage, ProvenanceError
from candor.store.changes import template_vectors
from candor.workflow import (
    Actor,
    EnrolmentRequest,
    EnrolmentStatus,
    MultipleFacesError,
    ProbeRefusedError,
    SubjectNotFoundError,
    Workflow,
    expunge_subject,
    gallery_subject,
    request_search,
    view_candidates,
)
from candor.workflow import enrol_files as governed_enrol
from candor.workflow.accounts import authenticate, login
from candor.workflow.probes import read_probe
from tests.agency import PASSWORD, Agency, make_agency
from tests.support import (
    evaluation_provenance,
    files_containing,
    people_with_photos,
    photos_of,
    side_by_side,
)
from tests.workflow.test_governed import FORM

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


@pytest.fixture
def agency(tmp_path: Path) -> Agency:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


@pytest.fixture
def workflow(agency: Agency) -> Workflow:
    return agency.workflow


def admin(workflow: Workflow) -> Actor:
    """The agency's first admin (these tests are about the gallery, not about roles)."""
    return authenticate(workflow, login(workflow, "admin1", PASSWORD).token)


def enrol_files(workflow: Workflow, requests, provenance, **options):  # type: ignore[no-untyped-def]
    """Enrol as the agency's first admin."""
    return governed_enrol(workflow, admin(workflow), requests, provenance, **options)


def enrol_first_photos(workflow: Workflow, people: list[Path]) -> None:
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    summary = enrol_files(workflow, requests, evaluation_provenance())
    assert summary.count(EnrolmentStatus.ENROLLED) == len(people), summary.outcomes


def test_enrol_reports_corrupt_file_and_enrols_the_rest(
    workflow: Workflow, faces_dir: Path, tmp_path: Path
) -> None:
    people = people_with_photos(faces_dir, 3)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(photos_of(people[0])[0].read_bytes()[:2000])
    requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
    requests.insert(1, EnrolmentRequest(corrupt, "CORRUPT-1"))

    summary = enrol_files(workflow, requests, evaluation_provenance())

    statuses = [outcome.status for outcome in summary.outcomes]
    assert statuses == [
        EnrolmentStatus.ENROLLED,
        EnrolmentStatus.REFUSED,
        EnrolmentStatus.ENROLLED,
        EnrolmentStatus.ENROLLED,
    ]
    assert "corrupt.jpg" in (summary.outcomes[1].reason or "")
    assert "truncated" in (summary.outcomes[1].reason or "").lower()
    with pytest.raises(SubjectNotFoundError):
        gallery_subject(workflow, admin(workflow), "CORRUPT-1")
    stored = list((workflow.workspace.home / "images").rglob("*"))
    assert len([p for p in stored if p.is_file()]) == 3


def test_enrolling_again_changes_nothing_and_says_so(workflow: Workflow, faces_dir: Path) -> None:
    person = people_with_photos(faces_dir, 1)[0]
    request = EnrolmentRequest(photos_of(person)[0], person.name)
    enrol_files(workflow, [request], evaluation_provenance())
    rows_before = _gallery_rows(workflow)

    again = enrol_files(workflow, [request], evaluation_provenance())
    other = enrol_files(
        workflow,
        [replace(request, subject_ref="SOMEONE-ELSE")],
        evaluation_provenance(),
    )

    assert again.outcomes[0].status is EnrolmentStatus.DUPLICATE
    assert "nothing changed" in (again.outcomes[0].reason or "")
    assert other.outcomes[0].status is EnrolmentStatus.DUPLICATE
    assert person.name in (other.outcomes[0].reason or "")
    with pytest.raises(SubjectNotFoundError):
        gallery_subject(workflow, admin(workflow), "SOMEONE-ELSE")
    detail = gallery_subject(workflow, admin(workflow), person.name)
    assert detail.summary.image_count == 1
    assert detail.images[0].face_choice == "largest-central"
    assert _gallery_rows(workflow) == rows_before == (1, 1)


def _gallery_rows(workflow: Workflow) -> tuple[int | None, int | None]:
    """How many gallery images and face templates the workspace holds."""
    with workflow.workspace.session() as session:
        return (
            session.scalar(select(func.count()).select_from(GalleryImage)),
            session.scalar(select(func.count()).select_from(FaceTemplate)),
        )


def test_source_type_of_another_purpose_is_refused_before_any_work(
    workflow: Workflow, faces_dir: Path
) -> None:
    person = people_with_photos(faces_dir, 1)[0]
    wrong = replace(evaluation_provenance(), source_type="booking_photo")
    with pytest.raises(ProvenanceError, match="source_type"):
        enrol_files(
            workflow,
            [EnrolmentRequest(photos_of(person)[0], person.name)],
            wrong,
        )


def test_probe_with_several_faces_must_be_picked(
    workflow: Workflow, faces_dir: Path, tmp_path: Path
) -> None:
    people = people_with_photos(faces_dir, 2)
    group = side_by_side(photos_of(people[0])[1], photos_of(people[1])[1], tmp_path / "two.jpg")

    with pytest.raises(MultipleFacesError) as raised:
        read_probe(workflow.engine, group, None)
    assert len(raised.value.faces) >= 2
    chosen = [read_probe(workflow.engine, group, i).face for i in (0, 1)]
    assert chosen[0].box != chosen[1].box


def test_probe_without_usable_face_is_refused(workflow: Workflow, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (300, 300), "grey").save(blank)
    with pytest.raises(ProbeRefusedError, match="no face"):
        read_probe(workflow.engine, blank, None)


@pytest.mark.sqlite_only(reason="scans candor.db's bytes (PostgreSQL's: docs/deploy.md)")
def test_expunge_leaves_no_copy_in_any_file(
    agency: Agency, faces_dir: Path, isolated_cache: Path
) -> None:
    workflow = agency.workflow
    people = people_with_photos(faces_dir, 3)
    enrol_first_photos(workflow, people)
    victim = people[1]
    home = workflow.workspace.home
    searched = request_search(workflow, agency["ana"], photos_of(victim)[1], FORM)
    listing = view_candidates(workflow, agency["eve"], searched.search_id)
    assert listing.candidates[0].subject_ref == victim.name

    detail = gallery_subject(workflow, admin(workflow), victim.name)
    image = detail.images[0]
    vault = workflow.workspace.vault
    with workflow.workspace.session() as session:
        key = workflow.workspace.keys.subject_key(session, detail.summary.id)
    image_bytes = vault.get_image(image.sha256, key)
    crop_bytes = vault.get_crop(image.sha256, key)
    with workflow.workspace.session() as session:
        template_id = image.templates[0].id
        model_key = image.templates[0].model_key
        keys = workflow.workspace.keys
        vector = template_vectors(session, [template_id], model_key, vault, keys)[template_id]
    unit = vector / np.linalg.norm(vector)
    middle = len(image_bytes) // 2
    patterns = {
        "image file": image_bytes,
        "image middle 256 bytes": image_bytes[middle : middle + 256],
        "crop file": crop_bytes,
        "crop middle 256 bytes": crop_bytes[len(crop_bytes) // 2 :][:256],
        "template float32": vector.astype("<f4").tobytes(),
        "template float32 big-endian": vector.astype(">f4").tobytes(),
        "template normalised float32": unit.astype("<f4").tobytes(),
        "template float64": vector.astype("<f8").tobytes(),
        "template normalised float64": unit.astype("<f8").tobytes(),
        "subject reference": victim.name.encode(),
        "sealed image file": vault.image_path(image.sha256).read_bytes(),
        "sealed crop file": vault.crop_path(image.sha256).read_bytes(),
    }
    # Sealed at rest: the photo, crop and template are never in any file in the clear.
    for name in ("image file", "crop file", "template float32"):
        assert files_containing(home, patterns[name]) == [], f"{name} found in the clear"
    # Each pattern must be findable before, or the scan afterwards proves nothing.
    for name in ("sealed image file", "sealed crop file", "subject reference"):
        assert files_containing(home, patterns[name]), f"{name} not found before expunge"

    report = expunge_subject(workflow, agency["admin1"], victim.name)

    assert len(report.template_ids) == 1
    for name, pattern in patterns.items():
        for root in (home, isolated_cache):
            assert files_containing(root, pattern) == [], f"{name} survives under {root}"
    # The earlier search keeps internal ids only; its candidate shows as expunged.
    listing = view_candidates(workflow, agency["eve"], searched.search_id)
    assert victim.name not in {c.subject_ref for c in listing.candidates}
    assert len(workflow.index) == 2
    with pytest.raises(SubjectNotFoundError):
        expunge_subject(workflow, agency["admin1"], victim.name)


def test_verify_threshold_says_what_it_means() -> None:
    from candor.workflow import VERIFY_THRESHOLD

    assert 0.5 < VERIFY_THRESHOLD.cosine < 1.0
    assert "1 in 1,000" in VERIFY_THRESHOLD.meaning
    assert "7 in 100" in VERIFY_THRESHOLD.meaning


def test_retention_beyond_the_policy_maximum_is_refused(
    workflow: Workflow, faces_dir: Path
) -> None:
    person = people_with_photos(faces_dir, 1)[0]
    too_long = replace(evaluation_provenance(), retain_until=date(2035, 1, 1))
    with pytest.raises(ProvenanceError, match="retain_until"):
        enrol_files(workflow, [EnrolmentRequest(photos_of(person)[0], person.name)], too_long)
