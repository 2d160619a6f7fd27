"""The workflow end to end on a workspace whose database is PostgreSQL.

Some tests of the SQLite suite run here again: they are imported below, and this
module's `agency` fixture (an agency on a fresh database of the test process's
throw-away cluster) takes the place of theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from candor.workflow import (
    SubjectNotFoundError,
    expunge_subject,
    gallery_subject,
    request_search,
    view_candidates,
)
from candor.workflow.audit_ops import verify_log
from tests.agency import Agency, make_agency, new_user
from tests.support import people_with_photos, photos_of
from tests.workflow.test_governed import FORM

# The SQLite suite's workflow tests, collected again in this module.
from tests.workflow.test_workflow import (  # noqa: F401
    admin,
    enrol_first_photos,
    test_enrol_reports_corrupt_file_and_enrols_the_rest,
    test_probe_with_several_faces_must_be_picked,
    test_probe_without_usable_face_is_refused,
    test_source_type_of_another_purpose_is_refused_before_any_work,
    workflow,  # the fixture, on this module's agency
)

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


@pytest.fixture
def agency(tmp_path: Path, postgres_url: str) -> Iterator[Agency]:
    made = make_agency(tmp_path, database_url=postgres_url)
    yield made
    made.workflow.close()


def test_enrol_search_expunge_on_postgres(agency: Agency, faces_dir: Path) -> None:
    work = agency.workflow
    assert work.workspace.engine.dialect.name == "postgresql"
    people = people_with_photos(faces_dir, 3)
    enrol_first_photos(work, people)
    wanted = people[1]

    searched = request_search(work, agency["ana"], photos_of(wanted)[1], FORM)
    listing = view_candidates(work, agency["eve"], searched.search_id)
    assert listing.candidates[0].subject_ref == wanted.name

    report = expunge_subject(work, agency["admin1"], wanted.name)
    assert report.remaining == ()
    with pytest.raises(SubjectNotFoundError):
        gallery_subject(work, admin(work), wanted.name)
    assert gallery_subject(work, admin(work), people[0].name).summary.image_count == 1
    verified = verify_log(work, agency.add_user(new_user("aud", "auditor")))
    assert verified.ok, verified.problem
