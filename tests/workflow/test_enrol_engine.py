"""An enrolment run in this process uses the workflow's one face engine (its models loaded
once per process), and makes the templates extract_faces makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from candor.faces import extraction
from candor.faces.extraction import extract_faces
from candor.store.gallery import templates_for_model
from candor.workflow import EnrolmentRequest, EnrolmentStatus, enrol_files
from candor.workflow.accounts import authenticate, login
from tests.agency import PASSWORD, Agency, make_agency
from tests.support import evaluation_provenance, people_with_photos, photos_of

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


class NoNewEngine:
    def __init__(self, *_args: object) -> None:
        raise AssertionError("a face engine was made for this enrolment")


def test_a_single_photo_is_enrolled_by_the_workflows_engine(
    agency: Agency, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = agency.workflow
    photo = photos_of(people_with_photos(faces_dir, 1)[0])[0]
    expected = next(
        extract_faces([photo], workflow.settings, views=workflow.recipe.enrol_views)
    ).template
    assert expected is not None
    engine = workflow.engine
    monkeypatch.setattr(extraction, "FaceEngine", NoNewEngine)
    admin = authenticate(workflow, login(workflow, "admin1", PASSWORD).token)
    summary = enrol_files(
        workflow, admin, [EnrolmentRequest(photo, "one")], evaluation_provenance()
    )
    assert summary.count(EnrolmentStatus.ENROLLED) == 1, summary.outcomes
    assert workflow.engine is engine
    with workflow.workspace.session() as session:
        rows = list(
            templates_for_model(
                session, expected.model.key, workflow.workspace.vault, workflow.workspace.keys
            )
        )
    assert len(rows) == 1
    assert np.array_equal(rows[0][3], expected.vector)
