"""Repository functions: subjects, images, templates, listing, index rebuild, cascade delete."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from candor.store import (
    FaceTemplate,
    GalleryError,
    GalleryImage,
    Subject,
    Workspace,
    add_template,
    delete_subject_cascade,
    face_choice_label,
    find_subject,
    get_or_create_subject,
    image_by_sha256,
    list_subjects,
    subject_detail,
    templates_for_model,
)
from candor.store.changes import template_vectors
from tests.store.support import FakeModel, enrol_image, image_bytes, make_subject, vector

MODEL = FakeModel()
OTHER_MODEL = FakeModel(name="other-model", dimension=4)


def test_get_or_create_subject(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        first, created = get_or_create_subject(session, " B-100 ", "officer.lee")
        assert created
        assert first.external_ref == "B-100"
        again, created = get_or_create_subject(session, "B-100", "someone.else")
        assert (again, created) == (first, False)
        assert find_subject(session, "B-100") is first
        assert find_subject(session, "B-101") is None
        with pytest.raises(GalleryError):
            get_or_create_subject(session, "  ", "officer.lee")


def test_image_and_template_round_trip(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        subject = make_subject(session, "B-1")
        image = enrol_image(workspace, session, subject, image_bytes(1))
        template = add_template(
            session,
            image,
            model=MODEL,
            detector_key="hog/upsample=1",
            recipe="largest-central; quality gate v1",
            vector=vector(1),
            vault=workspace.vault,
            keys=workspace.keys,
        )
    with workspace.session() as session:
        found = image_by_sha256(session, image.sha256)
        assert found is not None
        assert found.subject_id == subject.id
        assert found.quality == {"sharpness": 123.5, "reasons": []}
        stored = session.get(FaceTemplate, template.id)
        assert stored is not None
        assert (stored.model_key, stored.model_name, stored.dimension) == (
            MODEL.key,
            "test-model",
            8,
        )
        assert (stored.subject_id, stored.image_id) == (subject.id, image.id)
        opened = template_vectors(
            session, [template.id], MODEL.key, workspace.vault, workspace.keys
        )
        np.testing.assert_array_equal(opened[template.id], vector(1))
        assert image_by_sha256(session, "0" * 64) is None


def test_same_image_cannot_be_enrolled_twice(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
        with pytest.raises(IntegrityError), session.begin():
            enrol_image(workspace, session, make_subject(session, "B-2"), image_bytes(1))


def test_one_template_per_image_and_model(workspace: Workspace) -> None:
    with workspace.session() as session:
        with session.begin():
            image = enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
            add_template(
                session,
                image,
                model=MODEL,
                detector_key="d",
                recipe="r",
                vector=vector(1),
                vault=workspace.vault,
                keys=workspace.keys,
            )
            add_template(
                session,
                image,
                model=OTHER_MODEL,
                detector_key="d",
                recipe="r",
                vector=vector(2, 4),
                vault=workspace.vault,
                keys=workspace.keys,
            )
        with pytest.raises(IntegrityError), session.begin():
            add_template(
                session,
                image,
                model=MODEL,
                detector_key="d",
                recipe="r",
                vector=vector(3),
                vault=workspace.vault,
                keys=workspace.keys,
            )


def test_template_dimension_must_match_model(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        image = enrol_image(workspace, session, make_subject(session, "B-1"), image_bytes(1))
        with pytest.raises(GalleryError, match="shape"):
            add_template(
                session,
                image,
                model=MODEL,
                detector_key="d",
                recipe="r",
                vector=vector(1, 4),
                vault=workspace.vault,
                keys=workspace.keys,
            )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sha256": "A" * 64}, "sha256"),
        ({"width": 0}, "not positive"),
        ({"face_box": (10, 10, 5, 20)}, "face box"),
        ({"face_choice": "the best one"}, "face choice"),
        ({"face_choice": "index 3 of 3"}, "face choice"),
    ],
)
def test_add_gallery_image_refuses_inconsistent_records(
    workspace: Workspace, changes: dict[str, object], message: str
) -> None:
    with workspace.session() as session, session.begin():
        subject = make_subject(session, "B-1")
        with pytest.raises(GalleryError, match=message):
            enrol_image(workspace, session, subject, image_bytes(1), **changes)


def test_face_choice_label() -> None:
    assert face_choice_label(None, 3) == "largest-central"
    assert face_choice_label(2, 3) == "index 2 of 3"
    with pytest.raises(GalleryError):
        face_choice_label(3, 3)
    with pytest.raises(GalleryError):
        face_choice_label(None, 0)


def _populate(workspace: Workspace) -> dict[str, int]:
    ids: dict[str, int] = {}
    with workspace.session() as session, session.begin():
        for number, reference in enumerate(["B-1", "B-2", "B-3"]):
            subject = make_subject(session, reference)
            ids[reference] = subject.id
            for copy in range(number):
                image = enrol_image(
                    workspace,
                    session,
                    subject,
                    image_bytes(10 * number + copy),
                    face_choice=face_choice_label(copy, 2),
                )
                add_template(
                    session,
                    image,
                    model=MODEL,
                    detector_key="d",
                    recipe="r",
                    vector=vector(10 * number + copy),
                    vault=workspace.vault,
                    keys=workspace.keys,
                )
                if copy == 0:
                    add_template(
                        session,
                        image,
                        model=OTHER_MODEL,
                        detector_key="d",
                        recipe="r",
                        vector=vector(99, 4),
                        vault=workspace.vault,
                        keys=workspace.keys,
                    )
    return ids


def test_list_subjects_counts(workspace: Workspace) -> None:
    ids = _populate(workspace)
    with workspace.session() as session:
        summaries = list_subjects(session)
        assert [(s.external_ref, s.image_count, s.template_count) for s in summaries] == [
            ("B-1", 0, 0),
            ("B-2", 1, 2),
            ("B-3", 2, 3),
        ]
        assert [s.id for s in summaries] == [ids["B-1"], ids["B-2"], ids["B-3"]]
        assert [s.external_ref for s in list_subjects(session, limit=1, offset=1)] == ["B-2"]


def test_subject_detail(workspace: Workspace) -> None:
    ids = _populate(workspace)
    with workspace.session() as session:
        detail = subject_detail(session, ids["B-3"])
        assert subject_detail(session, 12345) is None
    assert detail is not None
    assert detail.summary.external_ref == "B-3"
    assert (detail.summary.image_count, detail.summary.template_count) == (2, 3)
    first = detail.images[0]
    assert first.face_choice == "index 0 of 2"
    assert first.face_box == (100, 80, 300, 320)
    assert first.provenance.source_type == "booking_photo"
    assert {t.model_key for t in first.templates} == {MODEL.key, OTHER_MODEL.key}


def test_templates_for_model_streams_one_model_only(workspace: Workspace) -> None:
    _populate(workspace)
    with workspace.session() as session:
        rows = list(
            templates_for_model(session, MODEL.key, workspace.vault, workspace.keys, batch_size=2)
        )
        others = list(
            templates_for_model(session, OTHER_MODEL.key, workspace.vault, workspace.keys)
        )
        assert (
            list(templates_for_model(session, "unknown/1/0", workspace.vault, workspace.keys)) == []
        )
    assert len(rows) == 3
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    assert all(row[3].shape == (8,) and row[3].dtype == np.float32 for row in rows)
    np.testing.assert_array_equal(rows[0][3], vector(10))
    assert len(others) == 2
    assert all(row[3].shape == (4,) for row in others)


def test_delete_subject_cascade(workspace: Workspace) -> None:
    ids = _populate(workspace)
    with workspace.session() as session:
        expected_shas = tuple(
            session.scalars(
                select(GalleryImage.sha256)
                .where(GalleryImage.subject_id == ids["B-3"])
                .order_by(GalleryImage.id)
            )
        )
        expected_templates = tuple(
            session.scalars(
                select(FaceTemplate.id)
                .where(FaceTemplate.subject_id == ids["B-3"])
                .order_by(FaceTemplate.id)
            )
        )
    with workspace.session() as session, session.begin():
        subject = find_subject(session, "B-3")
        assert subject is not None
        removed = delete_subject_cascade(session, subject)
    assert removed.subject_id == ids["B-3"]
    assert removed.image_sha256s == expected_shas
    assert len(removed.image_ids) == 2
    assert removed.template_ids == expected_templates
    assert "B-3" not in repr(removed)
    with workspace.session() as session:
        assert find_subject(session, "B-3") is None
        for model, count in ((Subject, 2), (GalleryImage, 1), (FaceTemplate, 2)):
            assert session.scalar(select(func.count()).select_from(model)) == count
        assert [s.external_ref for s in list_subjects(session)] == ["B-1", "B-2"]
