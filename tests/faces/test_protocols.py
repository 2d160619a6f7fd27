"""The engine talks only to the Protocols: dlib's classes conform and a fake model plugs in."""

from __future__ import annotations

import numpy as np
import pytest

from candor.faces import (
    EngineSettings,
    FaceBox,
    FaceDetector,
    FaceEmbedder,
    FaceEngine,
    LandmarkModel,
    Template,
)
from candor.faces.dlib_models import CnnDetector, DlibLandmarks, DlibResNetEmbedder, HogDetector
from tests.faces.helpers import FAKE_MODEL, FakeDetector, FakeEmbedder, FakeLandmarks, image_of


def test_dlib_wrappers_conform_to_the_protocols() -> None:
    assert isinstance(HogDetector(), FaceDetector)
    assert isinstance(CnnDetector(), FaceDetector)
    assert isinstance(DlibLandmarks(), LandmarkModel)
    assert isinstance(DlibResNetEmbedder(), FaceEmbedder)


def test_fakes_conform_to_the_protocols() -> None:
    assert isinstance(FakeDetector([]), FaceDetector)
    assert isinstance(FakeLandmarks(), LandmarkModel)
    assert isinstance(FakeEmbedder(), FaceEmbedder)


def test_engine_with_another_model_needs_no_change_in_callers() -> None:
    small = (FaceBox(10, 10, 30, 30), 0.4)
    large = (FaceBox(60, 40, 160, 140), 2.0)
    engine = FaceEngine(
        detector=FakeDetector([small, large]),
        landmarks=FakeLandmarks(),
        embedder=FakeEmbedder(),
    )
    assert engine.model == FAKE_MODEL
    faces = engine.detect_faces(image_of(200, 200))
    assert [face.box for face in faces] == [large[0], small[0]]
    assert [face.confidence for face in faces] == [2.0, 0.4]
    assert faces[0].quality.passed
    assert not faces[1].quality.passed  # eyes ~7 px apart
    assert faces[1].quality.reasons[0].startswith("eyes 7 px apart")
    template = engine.face_template(image_of(200, 200), faces[0])
    assert isinstance(template, Template)
    assert template.model == FAKE_MODEL
    assert template.vector.dtype == np.float32


def test_engine_picks_the_configured_detector() -> None:
    hog = FaceEngine(EngineSettings(detector="hog")).detector
    assert isinstance(hog, HogDetector)
    assert hog.retry_threshold == -0.5
    cnn = FaceEngine(EngineSettings(detector="cnn", upsample=0)).detector
    assert isinstance(cnn, CnnDetector)
    assert cnn.upsample == 0


def test_settings_are_validated_and_keyed() -> None:
    assert EngineSettings(detector="hog").key == "hog/upsample=1/retry=-0.5"
    assert EngineSettings(detector="hog", hog_retry_threshold=None).key == "hog/upsample=1"
    assert EngineSettings(detector="cnn", upsample=0).key == "cnn/upsample=0"
    with pytest.raises(ValueError, match="retry"):
        EngineSettings(hog_retry_threshold=0.2)
    with pytest.raises(ValueError, match="detector"):
        EngineSettings(detector="haar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="upsample"):
        EngineSettings(upsample=-1)


def test_dlib_model_weights_load_only_on_first_use() -> None:
    embedder = DlibResNetEmbedder()
    detector = HogDetector()
    assert embedder._network is None
    assert detector._detector is None
