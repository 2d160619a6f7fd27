"""The workflow's index lives in the workspace: reused across Workflows, scrubbed on expunge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from candor.store import FaceTemplate, Workspace
from candor.store.changes import template_vectors
from candor.workflow import EnrolmentRequest, Workflow, enrol_files, expunge_subject
from tests.agency import make_agency
from tests.index.test_gallery_index import opened_bytes
from tests.support import files_containing, people_with_photos, photos_of
from tests.workflow.test_governed import PROVENANCE

pytestmark = pytest.mark.faces


def test_index_is_persisted_reopened_in_step_and_scrubbed(tmp_path: Path, faces_dir: Path) -> None:
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    people = people_with_photos(faces_dir, 3)
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    enrol_files(workflow, agency["admin1"], requests, PROVENANCE)
    assert len(workflow.index) == 3
    folder = workflow.index_folder(workflow.engine.model)
    assert (folder / "vectors.sealed").exists()
    home = workflow.workspace.home

    # A second Workflow while the first holds the folder: an in-memory index, same answers.
    second = Workflow(Workspace.open(home))
    assert second.index.folder is None and len(second.index) == 3
    with workflow.workspace.session() as session:
        template = session.query(FaceTemplate).order_by(FaceTemplate.id).first()
        assert template is not None
        template_id = template.id
        workspace = workflow.workspace
        vector = template_vectors(
            session, [template_id], template.model_key, workspace.vault, workspace.keys
        )[template_id]
    unit = (vector / np.linalg.norm(vector.astype(np.float64))).astype(np.float32)
    workflow.index.flush()
    with workflow.workspace.session() as session:
        key = workflow.workspace.keys.index_key(session, workflow.engine.model.key)
    assert unit.tobytes() in opened_bytes(folder, key)  # sealed: only the key reads it
    assert files_containing(folder, unit.tobytes()) == []
    victim = next(p.name for p in people if template_id in _template_ids(second, p.name))

    # Expunged through the second Workflow: the holder's files are scrubbed in place.
    expunge_subject(second, agency["admin1"], victim)
    second.close()
    assert unit.tobytes() not in opened_bytes(folder, key)
    with workflow.workspace.session() as session:  # as a search does: caught up first
        index = workflow.index_in_step(session)
    assert template_id not in {i for i, _ in index.search(vector, 5)}
    workflow.close()

    # Reopened: loaded from the folder and reconciled with the store (2 templates left).
    third = Workflow(Workspace.open(home))
    assert third.index.folder == folder and len(third.index) == 2
    assert template_id not in third.index
    third.close()


def _template_ids(workflow: Workflow, subject_ref: str) -> set[int]:
    from candor.store import find_subject

    with workflow.workspace.session() as session:
        subject = find_subject(session, subject_ref)
        assert subject is not None
        return {
            row.id
            for row in session.query(FaceTemplate).filter(FaceTemplate.subject_id == subject.id)
        }
