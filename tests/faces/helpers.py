"""Synthetic faces and a model-free engine, so unit tests need neither photos nor dlib."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import numpy.typing as npt

from candor.faces import DetectedFace, FaceBox, FaceDetector, ModelId, QualityReport

FAKE_MODEL = ModelId(name="fake", version="1", weights_sha256="ab" * 32, dimension=4)
OTHER_MODEL = ModelId(name="fake", version="2", weights_sha256="cd" * 32, dimension=4)


def frontal_landmarks(cx: float, cy: float, eyes: float) -> npt.NDArray[np.float64]:
    """dlib 5-point landmarks of an upright frontal face with `eyes` px between eye centres."""
    half = eyes / 2.0
    corner = eyes / 5.0
    return np.array(
        [
            [cx + half + corner, cy],
            [cx + half - corner, cy],
            [cx - half - corner, cy],
            [cx - half + corner, cy],
            [cx, cy + eyes * 0.9],
        ]
    )


def passed_quality() -> QualityReport:
    return QualityReport(40.0, 30.0, 0.0, 0.0, 1.0, ())


def face_at(left: int, top: int, size: int, confidence: float = 1.0) -> DetectedFace:
    box = FaceBox(left, top, left + size, top + size)
    landmarks = frontal_landmarks(left + size / 2, top + size * 0.4, size * 0.37)
    return DetectedFace(box, confidence, landmarks, passed_quality())


def image_of(width: int, height: int) -> SimpleNamespace:
    """Stands in for a DecodedImage: the engine only reads `.pixels`."""
    return SimpleNamespace(pixels=np.zeros((height, width, 3), dtype=np.uint8))


class FakeDetector:
    """Returns fixed boxes, smallest first, to check that the engine sorts them."""

    def __init__(self, boxes: list[tuple[FaceBox, float]]) -> None:
        self.boxes = boxes

    @property
    def key(self) -> str:
        return "fake-detector"

    def detect(self, pixels: npt.NDArray[np.uint8]) -> list[tuple[FaceBox, float]]:
        return list(self.boxes)


class FakeLandmarks:
    def landmarks(self, pixels: npt.NDArray[np.uint8], box: FaceBox) -> npt.NDArray[np.float64]:
        cx, _ = box.centre
        return frontal_landmarks(cx, box.top + box.height * 0.4, box.width * 0.37)


class FakeEmbedder:
    """A 4-d "model" whose vector is the chip's mean colour plus the face's width."""

    @property
    def model(self) -> ModelId:
        return FAKE_MODEL

    def aligned_chip(
        self,
        pixels: npt.NDArray[np.uint8],
        landmarks: npt.NDArray[np.float64],
        keypoints: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.uint8]:
        chip = np.zeros((8, 8, 3), dtype=np.uint8)
        chip[::2, ::2] = 200
        return chip

    def embed(self, chip: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return np.array([1.0, 2.0, 3.0, float(chip.mean())], dtype=np.float32)


class RecordingDetector:
    """Wraps a detector (or finds nothing): records the (height, width) of every picture
    it is handed, and refuses one over `ceiling` pixels.

    The refusal keeps a test of a huge photo quick where the code under test would hand
    the whole photo to a real detector (minutes) instead of failing on its assertion.
    """

    def __init__(self, inner: FaceDetector | None = None, ceiling: int | None = None) -> None:
        self.inner = inner
        self.ceiling = ceiling
        self.seen: list[tuple[int, int]] = []

    @property
    def key(self) -> str:
        return "recording" if self.inner is None else self.inner.key

    def detect(self, pixels: npt.NDArray[np.uint8]) -> list[tuple[FaceBox, float]]:
        height, width = pixels.shape[:2]
        self.seen.append((height, width))
        if self.ceiling is not None and height * width > self.ceiling:
            raise AssertionError(
                f"a detector was handed {width} x {height} pixels, over {self.ceiling:,}"
            )
        return [] if self.inner is None else self.inner.detect(pixels)
