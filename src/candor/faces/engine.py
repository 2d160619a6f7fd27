"""FaceEngine: detect, place landmarks, gate on quality, align and make templates.

The verbs are named by what they return (`detect_faces`, `aligned_chip`, `face_template`),
in the spirit of face_recognition's api.py. An engine holds native dlib objects that must
not be shared between threads: use one engine per process (see `extract_faces`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from PIL import Image

from candor.faces.blazeface import BLAZEFACE_SHA256, BOX_FIT_NAME, BlazeFaceDetector
from candor.faces.dlib_models import CnnDetector, DlibLandmarks, DlibResNetEmbedder, HogDetector
from candor.faces.onnx_models import OnnxArcFaceEmbedder, OnnxModelSpec, OnnxScrfdDetector
from candor.faces.protocols import FaceDetector, FaceEmbedder, KeypointDetector, LandmarkModel
from candor.faces.quality import QualityThresholds, assess_quality
from candor.faces.recipe import Fallback, Views, view_chips
from candor.faces.records import DetectedFace, FaceBox, FloatArray, Template, UInt8Array
from candor.faces.registry import ModelId

if TYPE_CHECKING:
    from candor.images import DecodedImage


DETECT_MAX_PIXELS: Final = 800_000
"""Default `EngineSettings.detect_max_pixels`: see there, and docs/performance.md."""
CNN_MAX_PIXELS: Final = 100_000
"""Default `EngineSettings.cnn_max_pixels`: see there, and docs/performance.md."""
DETECTORS: Final = ("hog", "cnn", "blazeface")
"""The values of `EngineSettings.detector`."""
# Below this a bound would shrink ordinary photos to where no detector finds a face.
_MIN_BOUND: Final = 64 * 64


@dataclass(frozen=True)
class EngineSettings:
    """How faces are found and gated.

    detector: "blazeface" (the default), "hog" (dlib's HOG, tens of ms per photo) or
        "cnn" (dlib's MMOD CNN, seconds per photo on a CPU, finds more turned faces).
        "blazeface" is MediaPipe's BlazeFace short-range model through ONNX Runtime: it
        made at least as many lfw-dev and deepface-tests photos usable as HOG (upsample 1)
        and gave the same rank-1 and FNIR within their paired intervals with the baseline
        and the default recipe, at a fraction of its cost (bench/results/detectors_lfw*.json;
        docs/performance.md; a few ms per photo, Apache-2.0 weights
        installed by `make`; see `candor.faces.blazeface`). BlazeFace sees the photo
        letterboxed to 128 x 128, so it finds faces down to about a tenth of the photo's
        longer side; its boxes are mapped to HOG's geometry for dlib's 5-point
        landmarks, and its own keypoints (eyes, nose tip, mouth centre) go to
        `DetectedFace.keypoints` and to the embedder's alignment. Its confidence is the
        network's logit, 0 at its own cut-off as HOG's margin is (`QualityThresholds`).
    upsample: how many times the image is doubled before detection; 1 finds faces down to
        about 40 px wide, at four times the cost of 0. For "blazeface", the upsampling of
        its HOG fallback.
    hog_fallback: "blazeface" only: on a photo where BlazeFace finds nothing, run HOG
        (`upsample`, `hog_retry_threshold`) on the same (bounded) photo. This finds the
        small faces BlazeFace's 128 x 128 input cannot see (eyes under about 40 px in a
        large frame) and costs HOG's time only on those photos. Recorded in the key.
    hog_retry_threshold: HOG only; when no face scores 0 or more, detect once more down to
        this score (None: no second pass). See `HogDetector`.
    quality: the quality gate's limits.
    embedder_model: an operator-provided ArcFace-class ONNX file to make templates with,
        instead of dlib's ResNet (None: dlib).
    detector_model: an operator-provided SCRFD-class ONNX file to find faces with, instead
        of `detector` (None: dlib's). Landmarks stay dlib's 5 points either way.
    fallback: "cnn" runs dlib's CNN detector (seconds per photo) on a photo where the
        detector found nothing at all; "none" does not. It costs only on those photos.
    detect_max_pixels: the most pixels (width x height) of the picture a detector is
        given. A larger photo is detected on a copy scaled down to this, keeping its
        shape, and the boxes are scaled back: landmarks, the quality gate and the aligned
        chip use the full photo, so the face keeps its detail, and a photo within the
        bound is detected exactly as before. A detector's cost follows the pixels it
        scans, so this bounds what any photo costs: HOG (upsample 1) on 800,000 pixels
        (1033 x 775) takes about 0.7 s of one core with a face, 1.1-1.4 s when its retry
        runs, where a 4000 x 3000 photo took 10 s (docs/performance.md). In a larger
        photo, faces narrower than about 40 x sqrt(pixels / detect_max_pixels) are not
        found (about 150 px in a 4000 x 3000 photo): crop such a photo around the face.
    cnn_max_pixels: the same bound for dlib's CNN detector, as the fallback or as the
        detector: it costs about 15 times more per pixel (a 7000 x 7000 photo ran it for
        284 s at 10 GB). 100,000 pixels (316 x 316) takes about 1.3 s, and lfw's 250 x 250
        photos are detected as before.
    """

    detector: Literal["hog", "cnn", "blazeface"] = "blazeface"
    upsample: int = 1
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    hog_retry_threshold: float | None = -0.5
    embedder_model: OnnxModelSpec | None = None
    detector_model: OnnxModelSpec | None = None
    fallback: Fallback = "none"
    detect_max_pixels: int = DETECT_MAX_PIXELS
    cnn_max_pixels: int = CNN_MAX_PIXELS
    hog_fallback: bool = True

    def __post_init__(self) -> None:
        if self.fallback not in ("none", "cnn"):
            raise ValueError(f"unknown detector fallback {self.fallback!r}; use 'none' or 'cnn'")
        if self.detector not in DETECTORS:
            raise ValueError(
                f"unknown detector {self.detector!r}; use one of {', '.join(DETECTORS)}"
            )
        if not 0 <= self.upsample <= 4:
            raise ValueError("upsample must be between 0 and 4")
        if self.hog_retry_threshold is not None and not self.hog_retry_threshold < 0.0:
            raise ValueError("hog_retry_threshold must be below 0")
        for name in ("detect_max_pixels", "cnn_max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < _MIN_BOUND:
                raise ValueError(f"{name} must be a whole number of pixels, {_MIN_BOUND} or more")

    @property
    def key(self) -> str:
        """Detector settings as recorded with every template, e.g. "hog/upsample=1/retry=-0.5"."""
        if self.detector_model is not None:
            model = self.detector_model
            return f"onnx/{model.name}/{model.version}/{model.sha256.lower()[:16]}"
        if self.detector == "blazeface":
            key = f"blazeface/{BLAZEFACE_SHA256[:16]}/box={BOX_FIT_NAME}"
            if self.hog_fallback:
                key += f"/hog_fallback=upsample={self.upsample}"
                if self.hog_retry_threshold is not None:
                    key += f"/retry={self.hog_retry_threshold:g}"
        else:
            key = f"{self.detector}/upsample={self.upsample}"
        if self.detector == "hog" and self.hog_retry_threshold is not None:
            key += f"/retry={self.hog_retry_threshold:g}"
        if self.fallback != "none":
            key += f"/fallback={self.fallback}"
        # Only a photo beyond a bound detects differently, so the defaults keep the key
        # that templates were recorded with before the bounds existed.
        if self.detect_max_pixels != DETECT_MAX_PIXELS:
            key += f"/max_pixels={self.detect_max_pixels}"
        uses_cnn = self.detector == "cnn" or self.fallback == "cnn"
        if uses_cnn and self.cnn_max_pixels != CNN_MAX_PIXELS:
            key += f"/cnn_max_pixels={self.cnn_max_pixels}"
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


def detect_within(
    detector: FaceDetector, pixels: UInt8Array, max_pixels: int
) -> list[tuple[FaceBox, float]]:
    """`detector.detect` on the photo, scaled down first when it has over `max_pixels`.

    The boxes come back in pixels of `pixels`. A photo within the bound is passed as it
    is, so its faces are exactly what the detector finds on it.
    """
    small, x_factor, y_factor = bounded_pixels(pixels, max_pixels)
    if small is pixels:
        return detector.detect(pixels)
    found = detector.detect(small)
    return [(_scaled_box(box, x_factor, y_factor), score) for box, score in found]


def detect_keypoints_within(
    detector: KeypointDetector, pixels: UInt8Array, max_pixels: int
) -> list[tuple[FaceBox, float, FloatArray]]:
    """`detector.detect_keypoints` under the same bound as `detect_within`.

    Boxes and keypoints come back in pixels of `pixels`.
    """
    small, x_factor, y_factor = bounded_pixels(pixels, max_pixels)
    if small is pixels:
        return detector.detect_keypoints(pixels)
    factors = np.array([x_factor, y_factor])
    return [
        (_scaled_box(box, x_factor, y_factor), score, np.asarray(points, np.float64) * factors)
        for box, score, points in detector.detect_keypoints(small)
    ]


def bounded_pixels(pixels: UInt8Array, max_pixels: int) -> tuple[UInt8Array, float, float]:
    """The photo itself when within `max_pixels`, else a copy scaled down to the bound;
    with the factors (x, y) that take the copy's pixels back to the photo's."""
    height, width = pixels.shape[:2]
    if height * width <= max_pixels:
        return pixels, 1.0, 1.0
    scale = math.sqrt(max_pixels / (height * width))
    # Rounded down, so the copy never exceeds the bound.
    small_width, small_height = max(1, int(width * scale)), max(1, int(height * scale))
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    # reducing_gap: an exact box reduction by a whole factor first, then the filter over
    # a picture at most twice the target, which keeps large photos fast.
    small = picture.resize((small_width, small_height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    del picture
    return np.asarray(small, dtype=np.uint8), width / small_width, height / small_height


def _scaled_box(box: FaceBox, x_factor: float, y_factor: float) -> FaceBox:
    return FaceBox(
        left=round(box.left * x_factor),
        top=round(box.top * y_factor),
        right=round(box.right * x_factor),
        bottom=round(box.bottom * y_factor),
    )


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
            elif self.settings.detector == "blazeface":
                detector = BlazeFaceDetector()
            else:
                detector = HogDetector(self.settings.upsample, self.settings.hog_retry_threshold)
        if embedder is None and self.settings.embedder_model is not None:
            embedder = OnnxArcFaceEmbedder(self.settings.embedder_model)
        self.detector: FaceDetector = detector
        self._detect_pixels = self.settings.detect_max_pixels
        if isinstance(detector, CnnDetector):
            self._detect_pixels = min(self._detect_pixels, self.settings.cnn_max_pixels)
        self._fallback: FaceDetector | None = None
        self._hog_fallback: FaceDetector | None = None
        self.landmark_model: LandmarkModel = landmarks or DlibLandmarks()
        self.embedder: FaceEmbedder = embedder or DlibResNetEmbedder()
        self.model: ModelId = self.embedder.model

    def detect_faces(self, image: DecodedImage) -> list[DetectedFace]:
        """Every face in the image, largest box first, each with landmarks and quality.

        Boxes and landmarks are in pixels of `image.pixels`. Faces that fail the quality
        gate are still listed (with their reasons), so a caller can show them. A detector
        sees the photo scaled down to `EngineSettings.detect_max_pixels` (`cnn_max_pixels`
        for dlib's CNN) when it is larger; everything after detection uses the full photo.
        """
        pixels = image.pixels
        found = sorted(self._found(pixels), key=lambda item: -item[0].area)
        faces: list[DetectedFace] = []
        for box, confidence, keypoints in found:
            points = self.landmark_model.landmarks(pixels, box)
            chip = self.embedder.aligned_chip(pixels, points, keypoints)
            quality = assess_quality(points, chip, confidence, self.settings.quality)
            faces.append(DetectedFace(box, confidence, points, quality, keypoints))
        return faces

    def _found(self, pixels: UInt8Array) -> list[tuple[FaceBox, float, FloatArray | None]]:
        """The detector's faces (with keypoints when it places them), then the fallbacks'."""
        found: list[tuple[FaceBox, float, FloatArray | None]]
        if isinstance(self.detector, KeypointDetector):
            found = list(detect_keypoints_within(self.detector, pixels, self._detect_pixels))
        else:
            found = [
                (box, score, None)
                for box, score in detect_within(self.detector, pixels, self._detect_pixels)
            ]
        settings = self.settings
        if (
            not found
            and settings.detector == "blazeface"
            and settings.detector_model is None
            and settings.hog_fallback
        ):
            if self._hog_fallback is None:
                self._hog_fallback = HogDetector(settings.upsample, settings.hog_retry_threshold)
            found = [
                (box, score, None)
                for box, score in detect_within(self._hog_fallback, pixels, self._detect_pixels)
            ]
        if not found and settings.fallback == "cnn":
            if self._fallback is None:
                self._fallback = CnnDetector(settings.upsample)
            found = [
                (box, score, None)
                for box, score in detect_within(self._fallback, pixels, settings.cnn_max_pixels)
            ]
        return found

    def aligned_chip(self, image: DecodedImage, face: DetectedFace) -> UInt8Array:
        """The face rotated upright and scaled as the model sees it: (150, 150, 3) uint8 RGB."""
        return self.embedder.aligned_chip(image.pixels, face.landmarks, face.keypoints)

    def face_template(
        self, image: DecodedImage, face: DetectedFace, views: Views = "plain"
    ) -> Template:
        """The template of one detected face (no quality check here: see `face.quality`).

        views: "plain" embeds the aligned chip once; "flip" and "jitter" embed 2 or 6
        fixed variants of it (see `candor.faces.recipe`) and average their vectors, at 2
        or 6 times the network's cost.
        """
        chip = self.embedder.aligned_chip(image.pixels, face.landmarks, face.keypoints)
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
