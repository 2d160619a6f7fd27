"""Re-enrolment after a recipe change: census, remade templates, index files, audit, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from candor.faces.recipe import RECIPES
from candor.images import load_image
from candor.simulation.synthetic import SYNTHETIC_RECIPE, load_synthetic_gallery
from candor.store import AuditEntry, FaceTemplate, GalleryImage, templates_for_model
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    PermissionDeniedError,
    Workflow,
    enrol_files,
    gallery_subject,
    request_search,
    view_candidates,
)
from candor.workflow.audit_ops import verify_log
from candor.workflow.reenrol import (
    LEGACY_RECIPE,
    RecipeCensus,
    RecipeCount,
    box_overlap,
    made_with,
    recipe_census,
    reenrol,
)
from tests.agency import Agency, make_agency, new_user
from tests.support import evaluation_provenance, files_containing, people_with_photos, photos_of
from tests.workflow.test_governed import FORM

BASELINE, FLIP = RECIPES["baseline"], RECIPES["flip"]


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    """An evaluation agency whose own workflow makes templates with the baseline recipe."""
    made = make_agency(tmp_path)
    # Whatever the default recipe is, these tests start from the baseline's templates.
    made.workflow.recipe = BASELINE
    made.workflow.settings = replace(made.workflow.settings, fallback=BASELINE.fallback)
    made.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    yield made
    made.workflow.close()


@pytest.fixture
def flip(agency: Agency) -> Iterator[Workflow]:
    """The same workspace as a later Candor sees it: its recipe enrols with flip views."""
    workflow = Workflow(agency.workflow.workspace, recipe=FLIP)
    yield workflow
    workflow.close()


def enrol_first_photos(agency: Agency, people: list[Path]) -> dict[str, int]:
    """Enrol each person's first photo with the baseline recipe; image id by person."""
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    summary = enrol_files(agency.workflow, agency["admin1"], requests, evaluation_provenance())
    assert summary.count(EnrolmentStatus.ENROLLED) == len(people), summary.outcomes
    images: dict[str, int] = {}
    for outcome in summary.outcomes:
        assert outcome.image_id is not None
        images[outcome.subject_ref] = outcome.image_id
    return images


def templates_by_image(workflow: Workflow) -> dict[int, tuple[int, str, str, np.ndarray]]:
    """(template id, recipe, detector key, vector) of every stored template, by image id."""
    workspace = workflow.workspace
    with workspace.session() as session:
        rows = session.scalars(select(FaceTemplate)).all()
        vectors = {
            template_id: vector
            for model_key in {row.model_key for row in rows}
            for template_id, _, _, vector in templates_for_model(
                session, model_key, workspace.vault, workspace.keys
            )
        }
        return {
            row.image_id: (row.id, row.recipe, row.detector_key, vectors[row.id]) for row in rows
        }


def audit_bodies(workflow: Workflow, action: str) -> list[dict[str, Any]]:
    """The audit entries of one action, oldest first, as parsed JSON."""
    with workflow.workspace.session() as session:
        bodies = [json.loads(body) for body in session.scalars(select(AuditEntry.body))]
    return [body for body in bodies if body["action"] == action]


@pytest.mark.faces
@pytest.mark.xdist_group("workflow")
def test_reenrol_remakes_stale_templates_with_the_new_recipe(
    agency: Agency, flip: Workflow, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 3)
    images = enrol_first_photos(agency, people)
    admin = agency["admin1"]
    assert recipe_census(agency.workflow, admin).stale == 0
    census = recipe_census(flip, admin)
    assert (census.templates, census.stale) == (3, 3)
    assert census.advice.startswith(
        "3 of 3 templates were made with enrolment views plain; this Candor makes them "
        "with enrolment views flip: run `candor reenrol`"
    )
    before = templates_by_image(flip)
    old_ids = {template_id for template_id, *_ in before.values()}
    # The index files are sealed (tests/index/test_sealed_index.py): no row is in the clear
    # on disk before or after; the old rows must leave the index's memory.
    folder = flip.index.folder
    assert folder is not None
    old_rows = {
        template_id: flip.index.vectors_of([template_id]).tobytes() for template_id in old_ids
    }

    summary = reenrol(flip, admin, batch_size=2)

    assert (summary.stale, len(summary.remade), summary.kept, summary.batches) == (3, 3, [], 2)
    after = templates_by_image(flip)
    assert set(after) == set(before)
    new_ids = {template_id for template_id, *_ in after.values()}
    assert not new_ids & old_ids
    assert min(new_ids) > max(old_ids)  # never an old id for a new template
    engine = flip.engine
    for person in people:
        image_id = images[person.name]
        template_id, recipe, detector_key, vector = after[image_id]
        assert (recipe, detector_key) == (FLIP.key, flip.settings.key)
        photo = load_image(photos_of(person)[0])
        faces, chosen = engine.chosen_face(photo)
        assert chosen is not None
        expected = engine.face_template(photo, faces[chosen], "flip").vector
        np.testing.assert_allclose(vector, expected, rtol=0, atol=1e-6)
        assert not np.allclose(vector, before[image_id][3], rtol=0, atol=1e-4)
        detail = gallery_subject(flip, admin, person.name)
        assert [t.id for t in detail.images[0].templates] == [template_id]
    assert set(flip.index.ids.tolist()) == new_ids
    flip.index.flush()
    for template_id, row in old_rows.items():
        assert files_containing(folder, row) == [], f"template {template_id} survives"

    for person in people:
        searched = request_search(flip, agency["ana"], photos_of(person)[1], FORM)
        listing = view_candidates(flip, agency["eve"], searched.search_id)
        assert listing.candidates[0].subject_ref == person.name

    entries = audit_bodies(flip, "gallery.reenrolled")
    assert len(entries) == 2
    details = [entry["details"] for entry in entries]
    assert [i for d in details for i in d["old_templates"]] == sorted(old_ids)
    assert [i for d in details for i in d["new_templates"]] == sorted(new_ids)
    assert sorted(i for d in details for i in d["images"]) == sorted(images.values())
    assert all(d["recipe"] == FLIP.key for d in details)
    for person in people:
        assert person.name not in json.dumps(entries)
    report = verify_log(flip, agency["ada"])
    assert report.ok, report.problem

    assert recipe_census(flip, admin).stale == 0
    again = reenrol(flip, admin)
    assert (again.stale, again.remade, again.kept, again.batches) == (0, [], [], 0)
    assert templates_by_image(flip).keys() == after.keys()
    assert {v[0] for v in templates_by_image(flip).values()} == new_ids
    assert len(audit_bodies(flip, "gallery.reenrolled")) == 2


@pytest.mark.faces
@pytest.mark.xdist_group("workflow")
def test_a_face_not_found_again_keeps_its_old_template(
    agency: Agency, flip: Workflow, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 2)
    images = enrol_first_photos(agency, people)
    admin = agency["admin1"]
    tampered, legacy = images[people[0].name], images[people[1].name]
    with agency.workflow.workspace.session() as session, session.begin():
        image = session.get(GalleryImage, tampered)
        assert image is not None
        # A corner far from the face: as if the stored box no longer matched the photo.
        image.face_left, image.face_top, image.face_right, image.face_bottom = 0, 0, 12, 12
        template = session.scalars(
            select(FaceTemplate).where(FaceTemplate.image_id == legacy)
        ).one()
        template.recipe = LEGACY_RECIPE
    # A template from before recipes was one plain view, no fallback: what baseline makes.
    assert recipe_census(agency.workflow, admin).stale == 0
    assert recipe_census(flip, admin).stale == 2
    before = templates_by_image(flip)

    summary = reenrol(flip, admin)

    assert [kept.image_id for kept in summary.kept] == [tampered]
    assert "overlaps the face chosen at enrolment" in summary.kept[0].reason
    assert [(item.image_id, item.old_recipe) for item in summary.remade] == [
        (legacy, LEGACY_RECIPE)
    ]
    after = templates_by_image(flip)
    kept_id, kept_recipe, _, kept_vector = after[tampered]
    assert (kept_id, kept_recipe) == (before[tampered][0], BASELINE.key)
    np.testing.assert_array_equal(kept_vector, before[tampered][3])
    assert kept_id in flip.index
    assert after[legacy][1] == FLIP.key
    # The legacy template had the highest id: its replacement must not inherit it.
    assert after[legacy][0] > max(template_id for template_id, *_ in before.values())
    census = recipe_census(flip, admin)
    assert (census.templates, census.stale) == (2, 1)
    assert census.advice.startswith("1 of 2 templates were made with enrolment views plain;")
    (entry,) = audit_bodies(flip, "gallery.reenrolled")
    assert entry["details"]["kept_images"] == [tampered]
    assert entry["details"]["images"] == [legacy]


def test_synthetic_templates_are_never_stale_and_only_gallery_admins_may_look(
    tmp_path: Path,
) -> None:
    agency = make_agency(tmp_path, purpose="benchmark")
    try:
        load_synthetic_gallery(agency.workflow, agency["admin1"], subjects=3)
        with Workflow(agency.workflow.workspace, recipe=RECIPES["combined"]) as combined:
            census = recipe_census(combined, agency["admin1"])
            assert (census.templates, census.stale) == (3, 0)
            assert census.by_recipe[0].recipe == SYNTHETIC_RECIPE
            assert census.advice.startswith("All 3 templates were made as this Candor")
            summary = reenrol(combined, agency["admin1"])
            assert (summary.remade, summary.kept, summary.batches) == ([], [], 0)
            for verb in (recipe_census, reenrol):
                with pytest.raises(PermissionDeniedError, match=r"may not gallery\.enrol"):
                    verb(combined, agency["ana"])
    finally:
        agency.workflow.close()


def test_stored_recipe_strings_say_how_templates_were_made() -> None:
    assert made_with(LEGACY_RECIPE) == ("plain", "none")
    assert made_with(SYNTHETIC_RECIPE) is None
    assert made_with("something else") is None
    assert made_with("enrol=sideways/search=plain/fallback=none") is None
    for recipe in RECIPES.values():
        assert made_with(recipe.key) == (recipe.enrol_views, recipe.fallback)


def test_advice_names_every_difference() -> None:
    census = RecipeCensus(
        model_key="dlib",
        recipe=RECIPES["combined"].key,
        enrol_views="jitter",
        fallback="cnn",
        by_recipe=(
            RecipeCount(LEGACY_RECIPE, 400, "plain", "none", stale=True),
            RecipeCount(FLIP.key, 12, "flip", "none", stale=True),
            RecipeCount(RECIPES["combined"].key, 2807, "jitter", "cnn", stale=False),
            RecipeCount(SYNTHETIC_RECIPE, 5, None, None, stale=False),
        ),
    )
    assert census.advice == (
        "412 of 3,224 templates were made with enrolment views flip or plain and detector "
        "fallback none; this Candor makes them with enrolment views jitter and detector "
        "fallback cnn: run `candor reenrol` to remake them from the stored photos (searches "
        "still work meanwhile: same model, older recipe)."
    )


def test_box_overlap_is_intersection_over_union() -> None:
    assert box_overlap((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_overlap((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert box_overlap((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_overlap((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0
