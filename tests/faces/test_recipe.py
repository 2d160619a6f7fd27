"""Recipes: fixed views of a chip, their validation and keys, and templates made from views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from candor.faces import EngineSettings, FaceEngine
from candor.faces.recipe import JITTER_SHIFTS, RECIPES, Recipe, recipe_named, view_chips
from candor.images import load_image


def chip() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (150, 150, 3), dtype=np.uint8)


def test_view_sets_hold_the_chip_first_then_its_variants() -> None:
    original = chip()
    assert len(view_chips(original, "plain")) == 1
    flipped = view_chips(original, "flip")
    assert len(flipped) == 2
    assert np.array_equal(flipped[0], original)
    assert np.array_equal(flipped[1], original[:, ::-1])
    jittered = view_chips(original, "jitter")
    assert len(jittered) == 6
    assert all(view.shape == original.shape and view.dtype == np.uint8 for view in jittered)


def test_a_shifted_view_moves_the_content_by_the_shift() -> None:
    original = chip()
    dx, dy = JITTER_SHIFTS[0]
    moved = view_chips(original, "jitter")[2]
    # Away from the reflected border, pixel (y, x) of the view is pixel (y+dy, x+dx).
    assert np.array_equal(moved[10:140, 10:140], original[10 + dy : 140 + dy, 10 + dx : 140 + dx])
    assert np.array_equal(view_chips(original, "jitter")[3], moved[:, ::-1])


def test_views_are_the_same_every_time() -> None:
    original = chip()
    first = view_chips(original, "jitter")
    second = view_chips(original.copy(), "jitter")
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_unknown_views_fallbacks_and_fusions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown view set"):
        view_chips(chip(), "mirror")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown view set"):
        Recipe("x", "x", enrol_views="twice")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback"):
        Recipe("x", "x", fallback="mtcnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fusion"):
        Recipe("x", "x", fusion="min")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cohort_k"):
        Recipe("x", "x", cohort_k=0)
    with pytest.raises(ValueError, match="fallback"):
        EngineSettings(fallback="mtcnn")  # type: ignore[arg-type]


def test_every_named_recipe_has_its_own_key_and_can_be_found() -> None:
    keys = [recipe.key for recipe in RECIPES.values() if recipe.name != "fusion-mean"]
    assert len(set(keys)) == len(keys)
    assert recipe_named("combined") is RECIPES["combined"]
    with pytest.raises(ValueError, match="known recipes: baseline"):
        recipe_named("magic")


def test_the_fallback_is_part_of_the_detector_key() -> None:
    assert "/fallback=" not in EngineSettings().key
    assert EngineSettings(fallback="cnn").key.endswith("/fallback=cnn")


@pytest.mark.faces
def test_a_view_template_is_the_mean_of_its_views(faces_dir: Path) -> None:
    image = load_image(faces_dir / "lfw-dev" / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg")
    engine = FaceEngine()
    faces, chosen = engine.chosen_face(image)
    assert chosen is not None
    face = faces[chosen]
    plain = engine.face_template(image, face).vector
    assert np.array_equal(engine.face_template(image, face, "plain").vector, plain)
    aligned = engine.aligned_chip(image, face)
    mirrored = engine.embedder.embed(np.ascontiguousarray(aligned[:, ::-1]))
    flipped = engine.face_template(image, face, "flip").vector
    np.testing.assert_allclose(flipped, (plain + mirrored) / 2, atol=1e-6)
    assert not np.allclose(flipped, plain, atol=1e-3)
    # Fixed shifts: the same photo gives the same jittered template in a fresh engine.
    again = FaceEngine().face_template(image, face, "jitter").vector
    assert np.array_equal(engine.face_template(image, face, "jitter").vector, again)
