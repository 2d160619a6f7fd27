"""The gallery's change log: every template added or removed is logged, whatever the path."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select, update

from candor.store import (
    FaceTemplate,
    GalleryImage,
    Workspace,
    add_template,
    delete_subject_cascade,
    find_subject,
)
from candor.store.changes import changes_after, latest_change, template_vectors
from tests.store.support import FakeModel, enrol_image, image_bytes, make_subject, vector

MODEL = FakeModel()


def _enrol(workspace: Workspace, reference: str, seed: int) -> int:
    with workspace.session() as session, session.begin():
        subject = make_subject(session, reference)
        image = enrol_image(workspace, session, subject, image_bytes(seed))
        template = add_template(
            session,
            image,
            model=MODEL,
            detector_key="test-detector",
            recipe="test-recipe",
            vector=vector(seed),
            vault=workspace.vault,
            keys=workspace.keys,
        )
        return template.id


def _log(workspace: Workspace, after: int = 0) -> list[tuple[int, str]]:
    with workspace.session() as session:
        return changes_after(session, after, MODEL.key, up_to=latest_change(session))


def test_an_empty_log_reads_zero(workspace: Workspace) -> None:
    with workspace.session() as session:
        assert latest_change(session) == 0
    assert _log(workspace) == []


def test_every_add_replacement_and_removal_is_logged_in_order(workspace: Workspace) -> None:
    first = _enrol(workspace, "B-1", 1)
    second = _enrol(workspace, "B-2", 2)
    third = _enrol(workspace, "B-3", 3)
    assert _log(workspace) == [(first, "added"), (second, "added"), (third, "added")]
    with workspace.session() as session:
        seen = latest_change(session)

    with workspace.session() as session, session.begin():
        # Re-enrolment gives a new row its id with an UPDATE.
        session.execute(update(FaceTemplate).where(FaceTemplate.id == first).values(id=100))
        subject = find_subject(session, "B-2")
        assert subject is not None
        delete_subject_cascade(session, subject)
        # A deleted image takes its template with it (ON DELETE CASCADE).
        image_id = session.scalar(select(FaceTemplate.image_id).where(FaceTemplate.id == third))
        session.execute(delete(GalleryImage).where(GalleryImage.id == image_id))
    assert _log(workspace, seen) == [
        (first, "removed"),
        (100, "added"),
        (second, "removed"),
        (third, "removed"),
    ]


def test_a_rolled_back_change_leaves_no_entry(workspace: Workspace) -> None:
    _enrol(workspace, "B-1", 1)
    with workspace.session() as session:
        before = latest_change(session)
    with workspace.session() as session:
        session.begin()
        session.execute(delete(FaceTemplate))
        session.rollback()
    with workspace.session() as session:
        assert latest_change(session) == before


def test_other_models_changes_are_not_listed(workspace: Workspace) -> None:
    template_id = _enrol(workspace, "B-1", 1)
    with workspace.session() as session:
        latest = latest_change(session)
        assert changes_after(session, 0, "another/model", up_to=latest) == []
        assert changes_after(session, 0, MODEL.key, up_to=latest) == [(template_id, "added")]


def test_template_vectors_reads_those_still_stored(workspace: Workspace) -> None:
    kept = _enrol(workspace, "B-1", 1)
    gone = _enrol(workspace, "B-2", 2)
    with workspace.session() as session, session.begin():
        session.execute(delete(FaceTemplate).where(FaceTemplate.id == gone))
    with workspace.session() as session:
        found = template_vectors(session, [kept, gone], MODEL.key, workspace.vault, workspace.keys)
        assert list(found) == [kept]
        np.testing.assert_array_equal(found[kept], vector(1))
        assert (
            template_vectors(session, [kept], "another/model", workspace.vault, workspace.keys)
            == {}
        )
