"""FaceEngine: detect, place landmarks, gate on quality, align and make templates.

The verbs are named by what they return (`detect_faces`, `aligned_chip`, `face_template`),
in the spirit of face_recognition's api.py. An engine holds native dlib objects that must
not be shared between threads: use one engine per process (see `extract_faces`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from candor.faces.dlib_models import CnnDetector, DlibLandmarks, DlibResNetEmbedder, HogDetector
from candor.faces.onnx_models import OnnxArcFaceEmbedder, OnnxModelSpec, OnnxScrfdDetector
from candor.faces.protocols import FaceDetector, FaceEmbedder, LandmarkModel
from candor.faces.quality import QualityThresholds, assess_quality
from candor.faces.recipe import Fallback, Views, view_chips
from candor.faces.records import DetectedFace, Template, UInt8Array
from candor.faces.registry import ModelId

if TYPE_CHECKING:
    from candor.images import DecodedImage


@dataclass(frozen=True)
class EngineSettings:
    """How faces are found and gated.

    detector: "hog" (dlib's HOG, tens of ms per photo) or "cnn" (dlib's MMOD CNN, seconds
        per photo on a CPU, finds more turned faces).
    upsample: how many times the image is doubled before detection; 1 finds faces down to
        about 40 px wide, at four times the cost of 0.
    hog_retry_threshold: HOG only; when no face scores 0 or more, detect once more down to
        this score (None: no second pass). See `HogDetector`.
    quality: the quality gate's limits.
    embedder_model: an operator-provided ArcFace-class ONNX file to make templates with,
        instead of dlib's ResNet (None: dlib).
    detector_model: an operator-provided SCRFD-class ONNX file to find faces with, instead
        of `detector` (None: dlib's). Landmarks stay dlib's 5 points either way.
    fallback: "cnn" runs dlib's CNN detector (seconds per photo) on a photo where the
        detector found nothing at all; "none" does not. It costs only on those photos.
    """

    detector: Literal["hog", "cnn"] = "hog"
    upsample: int = 1
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    hog_retry_threshold: float | None = -0.5
    embedder_model: OnnxModelSpec | None = None
    detector_model: OnnxModelSpec | None = None
    fallback: Fallback = "none"

    def __post_init__(self) -> None:
        if self.fallback not in ("none", "cnn"):
            raise ValueError(f"unknown detector fallback {self.fallback!r}; use 'none' or 'cnn'")
        if self.detector not in ("hog", "cnn"):
            raise ValueError(f"unknown detector {self.detector!r}; use 'hog' or 'cnn'")
        if not 0 <= self.upsample <= 4:
            raise ValueError("upsample must be between 0 and 4")
        if self.hog_retry_threshold is not None and not self.hog_retry_threshold < 0.0:
            raise ValueError("hog_retry_threshold must be below 0")

    @property
    def key(self) -> str:
        """Detector settings as recorded with every template, e.g. "hog/upsample=1/retry=-0.5"."""
        if self.detector_model is not None:
            model = self.detector_model
            return f"onnx/{model.name}/{model.version}/{model.sha256.lower()[:16]}"
        key = f"{self.detector}/upsample={self.upsample}"
        if self.detector == "hog" and self.hog_retry_threshold is not None:
            key += f"/retry={self.hog_retry_threshold:g}"
        if self.fallback != "none":
            key += f"/fallback={self.fallback}"
        return key


def choose_face(faces: Sequence[DetectedFace], width: int, height: int) -> int:
    """Index of the largest face nearest the image's centre (bulk enrolment's choice).

    Each face scores sqrt(box area) * (1 - distance of box centre from image centre /
    half the image diagonal): a face twice as wide wins unless it sits far out towards a
    corner. The false small faces that HOG with upsampling finds on single-face photos
    lose to the real one. Ties go to the earlier face. Raises ValueError when empty.
    """
    if not faces:
        raise ValueError("no faces to choose from")
    half_diagonal = math.hypot(width, height) / 2.0
    if half_diagonal <= 0.0:
        raise ValueError("image width and height must be positive")
    best_index = 0
    best_score = -math.inf
    for index, face in enumerate(faces):
        cx, cy = face.box.centre
        offset = math.hypot(cx - width / 2.0, cy - height / 2.0)
        score = math.sqrt(face.box.area) * (1.0 - offset / half_diagonal)
        if score > best_score:
            best_index, best_score = index, score
    return best_index


class FaceEngine:
    """dlib's pipeline by default; another detector, landmark model or embedder plugs in.

    Creating an engine hashes the weight files (once per process) but loads no network:
    each model loads on first use and stays with the engine.
    """

    def __init__(
        self,
        settings: EngineSettings | None = None,
        *,
        detector: FaceDetector | None = None,
        landmarks: LandmarkModel | None = None,
        embedder: FaceEmbedder | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        if detector is None:
            if self.settings.detector_model is not None:
                detector = OnnxScrfdDetector(self.settings.detector_model)
            elif self.settings.detector == "cnn":
                detector = CnnDetector(self.settings.upsample)
            else:
                detector = HogDetector(self.settings.upsample, self.settings.hog_retry_threshold)
        if embedder is None and self.settings.embedder_model is not None:
            embedder = OnnxArcFaceEmbedder(self.settings.embedder_model)
        self.detector: FaceDetector = detector
        self._fallback: FaceDetector | None = None
        self.landmark_model: LandmarkModel = landmarks or DlibLandmarks()
        self.embedder: FaceEmbedder = embedder or DlibResNetEmbedder()
        self.model: ModelId = self.embedder.model

    def detect_faces(self, image: DecodedImage) -> list[DetectedFace]:
        """Every face in the image, largest box first, each with landmarks and quality.

        Boxes and landmarks are in pixels of `image.pixels`. Faces that fail the quality
        gate are still listed (with their reasons), so a caller can show them.
        """
        pixels = image.pixels
        found = self.detector.detect(pixels)
        if not found and self.settings.fallback == "cnn":
            if self._fallback is None:
                self._fallback = CnnDetector(self.settings.upsample)
            found = self._fallback.detect(pixels)
        found = sorted(found, key=lambda item: -item[0].area)
        faces: list[DetectedFace] = []
        for box, confidence in found:
            points = self.landmark_model.landmarks(pixels, box)
            chip = self.embedder.aligned_chip(pixels, points)
            quality = assess_quality(points, chip, confidence, self.settings.quality)
            faces.append(DetectedFace(box, confidence, points, quality))
        return faces

    def aligned_chip(self, image: DecodedImage, face: DetectedFace) -> UInt8Array:
        """The face rotated upright and scaled as the model sees it: (150, 150, 3) uint8 RGB."""
        return self.embedder.aligned_chip(image.pixels, face.landmarks)

    def face_template(
        self, image: DecodedImage, face: DetectedFace, views: Views = "plain"
    ) -> Template:
        """The template of one detected face (no quality check here: see `face.quality`).

        views: "plain" embeds the aligned chip once; "flip" and "jitter" embed 2 or 6
        fixed variants of it (see `candor.faces.recipe`) and average their vectors, at 2
        or 6 times the network's cost.
        """
        chip = self.embedder.aligned_chip(image.pixels, face.landmarks)
        vectors = [self.embedder.embed(view) for view in view_chips(chip, views)]
        vector = vectors[0] if len(vectors) == 1 else np.mean(vectors, axis=0, dtype=np.float32)
        return Template(vector=np.asarray(vector, dtype=np.float32), model=self.model)

    def chosen_face(self, image: DecodedImage) -> tuple[list[DetectedFace], int | None]:
        """All faces (largest first) and the index `choose_face` picks, None when none."""
        faces = self.detect_faces(image)
        if not faces:
            return faces, None
        height, width = image.pixels.shape[:2]
        return faces, choose_face(faces, width, height)
