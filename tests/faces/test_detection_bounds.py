"""A detector never sees more than its bound of pixels, whatever the photo's size.

Issue 12, fault 4: a 7000 x 7000 photo ran HOG and then the CNN fallback on all its
pixels (upsampled) for 284 s at 10 GB; a 4000 x 3000 one held the server for 26 s. A
larger photo is now detected on a scaled-down copy, and its boxes are scaled back, so
landmarks and the chip still come from the full photo.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pytest

from candor.faces import EngineSettings, FaceBox, FaceEngine
from candor.faces import engine as engine_module
from tests.faces.helpers import FakeEmbedder, FakeLandmarks, RecordingDetector, image_of


class CentreDetector:
    """Finds one face: the middle third of whatever picture it is given."""

    def __init__(self) -> None:
        self.seen: list[npt.NDArray[np.uint8]] = []

    @property
    def key(self) -> str:
        return "centre"

    def detect(self, pixels: npt.NDArray[np.uint8]) -> list[tuple[FaceBox, float]]:
        self.seen.append(pixels)
        height, width = pixels.shape[:2]
        box = FaceBox(width // 3, height // 3, 2 * width // 3, 2 * height // 3)
        return [(box, 1.5)]


class RecordingLandmarks(FakeLandmarks):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def landmarks(self, pixels: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        self.seen.append(pixels.shape[:2])
        return super().landmarks(pixels, box)


def test_a_large_photo_is_detected_on_a_bounded_copy_and_its_boxes_scaled_back() -> None:
    detector, landmarks = CentreDetector(), RecordingLandmarks()
    engine = FaceEngine(detector=detector, landmarks=landmarks, embedder=FakeEmbedder())
    faces = engine.detect_faces(image_of(4000, 3000))

    [seen] = detector.seen
    height, width = seen.shape[:2]
    assert (height, width) != (3000, 4000), "the detector was given the whole photo"
    assert height * width <= EngineSettings().detect_max_pixels
    assert width / height == pytest.approx(4 / 3, rel=0.01)
    # The box is where the detector put it, in pixels of the full photo.
    [face] = faces
    for found, expected in zip(
        (face.box.left, face.box.top, face.box.right, face.box.bottom),
        (4000 // 3, 3000 // 3, 2 * 4000 // 3, 2 * 3000 // 3),
        strict=True,
    ):
        assert abs(found - expected) <= 4
    # Landmarks are placed on the full photo, not on the copy.
    assert landmarks.seen == [(3000, 4000)]


def test_a_photo_within_the_bound_reaches_the_detector_unchanged() -> None:
    detector = CentreDetector()
    engine = FaceEngine(detector=detector, landmarks=FakeLandmarks(), embedder=FakeEmbedder())
    image = image_of(250, 250)
    [face] = engine.detect_faces(image)
    assert detector.seen[0] is image.pixels
    assert face.box == FaceBox(83, 83, 166, 166)


class RecordingCnn(RecordingDetector):
    """Stands in for dlib's CNN detector, built the way the engine builds it."""

    made: ClassVar[list[RecordingCnn]] = []

    def __init__(self, upsample: int = 1) -> None:
        super().__init__()
        RecordingCnn.made.append(self)


@pytest.fixture
def recording_cnn(monkeypatch: pytest.MonkeyPatch) -> type[RecordingCnn]:
    RecordingCnn.made = []
    monkeypatch.setattr(engine_module, "CnnDetector", RecordingCnn)
    return RecordingCnn


def test_the_cnn_fallback_sees_no_more_than_its_own_bound(
    recording_cnn: type[RecordingCnn],
) -> None:
    primary = RecordingDetector()  # finds nothing, so the fallback runs
    engine = FaceEngine(
        EngineSettings(fallback="cnn"),
        detector=primary,
        landmarks=FakeLandmarks(),
        embedder=FakeEmbedder(),
    )
    assert engine.detect_faces(image_of(7000, 7000)) == []
    [fallback] = recording_cnn.made
    assert primary.seen != [(7000, 7000)], "the detector was given the whole photo"
    assert fallback.seen != [(7000, 7000)], "the CNN fallback was given the whole photo"
    [(height, width)] = primary.seen
    assert height * width <= EngineSettings().detect_max_pixels
    [(height, width)] = fallback.seen
    assert height * width <= EngineSettings().cnn_max_pixels
    assert height == width


def test_the_cnn_as_the_detector_is_held_to_the_cnn_bound(
    recording_cnn: type[RecordingCnn],
) -> None:
    engine = FaceEngine(
        EngineSettings(detector="cnn"), landmarks=FakeLandmarks(), embedder=FakeEmbedder()
    )
    engine.detect_faces(image_of(4000, 3000))
    [(height, width)] = recording_cnn.made[0].seen
    assert (height, width) != (3000, 4000), "the CNN was given the whole photo"
    assert height * width <= EngineSettings().cnn_max_pixels


def test_the_bounds_are_settings_recorded_in_the_key_only_when_not_the_defaults() -> None:
    assert EngineSettings(detector="hog").key == "hog/upsample=1/retry=-0.5"
    hog_cnn = EngineSettings(detector="hog", fallback="cnn")
    assert hog_cnn.key == "hog/upsample=1/retry=-0.5/fallback=cnn"
    wider = EngineSettings(detector="hog", detect_max_pixels=2_000_000, cnn_max_pixels=200_000)
    assert wider.key == "hog/upsample=1/retry=-0.5/max_pixels=2000000"
    assert EngineSettings(fallback="cnn", cnn_max_pixels=200_000).key.endswith(
        "/fallback=cnn/cnn_max_pixels=200000"
    )
    for bad in (0, 100, -5, 1.5, True):
        with pytest.raises(ValueError, match="detect_max_pixels"):
            EngineSettings(detect_max_pixels=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cnn_max_pixels"):
        EngineSettings(cnn_max_pixels=10)
