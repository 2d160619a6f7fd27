"""The shared ArcFace-style model (../shared/models/mobilefacenet) on real lfw-dev photos.

It stands in for an agency's own model: it must load with no declared values and score
the same person above two different people. Skips without the shared folders; fails
under CI=true.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from candor.faces import EngineSettings, FaceEngine, cosine_score
from candor.faces.onnx_models import inspect_model_file
from candor.images import load_image

pytestmark = pytest.mark.faces

# lfw-dev-pairs.txt's first matched pair, and a mismatched pair from the same file.
SAME = (("Jim_Edmonds", 1), ("Jim_Edmonds", 2))
DIFFERENT = (("John_F_Kennedy_Jr", 1), ("Daniel_Chin", 1))


@pytest.fixture(scope="module")
def engine(mobilefacenet_onnx: Path) -> FaceEngine:
    facts = inspect_model_file(mobilefacenet_onnx)
    return FaceEngine(EngineSettings(embedder_model=facts.spec("mobilefacenet", "1", threads=1)))


def photo(faces_dir: Path, name: str, number: int) -> Path:
    return faces_dir / "lfw-dev" / name / f"{name}_{number:04d}.jpg"


def test_the_shared_model_needs_no_declared_values(mobilefacenet_onnx: Path) -> None:
    facts = inspect_model_file(mobilefacenet_onnx)
    assert facts.dimension == 192
    assert (facts.layout, facts.input_size, facts.colour) == ("NCHW", 112, "RGB")
    assert facts.sources["layout"] == facts.sources["dimension"] == "file"
    # Its own recipe is (x - 127.5) / 128; ArcFace's default 127.5 is 0.4 % off (see below).
    assert (facts.input_mean, facts.input_std) == (127.5, 127.5)


def test_same_person_scores_above_different_people(engine: FaceEngine, faces_dir: Path) -> None:
    templates = {}
    chips = {}
    for name, number in {*SAME, *DIFFERENT}:
        image = load_image(photo(faces_dir, name, number))
        faces, chosen = engine.chosen_face(image)
        assert chosen is not None, f"no face in {name} {number}"
        templates[name, number] = engine.face_template(image, faces[chosen])
        chips[name, number] = engine.aligned_chip(image, faces[chosen])
    assert engine.model.dimension == 192
    assert all(t.vector.shape == (192,) for t in templates.values())
    same = cosine_score(templates[SAME[0]], templates[SAME[1]])
    different = cosine_score(templates[DIFFERENT[0]], templates[DIFFERENT[1]])
    assert same > different + 0.2
    # The model's own std, 128, against the default 127.5: the same templates to 1e-4.
    settings = engine.settings.embedder_model
    assert settings is not None
    exact = FaceEngine(EngineSettings(embedder_model=replace(settings, input_std=128.0)))
    for key, chip in chips.items():
        own = exact.embedder.embed(chip)
        default = templates[key].vector
        cosine = float(np.dot(own, default) / np.linalg.norm(own) / np.linalg.norm(default))
        assert cosine > 0.9999
