"""BlazeFace behind the detector protocol: decoding, letterbox, keypoints, the engine.

The photos are from ../shared/faces (skipped without it); the weights are installed by
`make` (scripts/install-blazeface.py).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from candor.faces import KEYPOINT_NAMES, EngineSettings, FaceBox, FaceEngine, KeypointDetector
from candor.faces.blazeface import (
    WEIGHTS_PATH,
    BlazeFaceDetector,
    BlazeFaceError,
    blazeface_anchors,
    weighted_nms,
)
from candor.faces.blazeface import _letterboxed as letterboxed
from candor.faces.dlib_models import HogDetector
from candor.faces.engine import detect_keypoints_within
from candor.faces.extraction import extract_faces
from candor.faces.quality import eye_centres
from candor.images import DecodedImage, load_image

pytestmark = pytest.mark.faces

PEOPLE = (("Aaron_Peirsol", 1), ("Juan_Carlos_Ferrero", 8), ("Colin_Powell", 14))


def _iou(a: FaceBox, b: FaceBox) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    overlap = max(right - left, 0) * max(bottom - top, 0)
    return overlap / (a.area + b.area - overlap)


def _photo(faces_dir: Path, name: str, number: int) -> DecodedImage:
    return load_image(faces_dir / "lfw-dev" / name / f"{name}_{number:04d}.jpg")


def _on_canvas(
    pixels: npt.NDArray[np.uint8], size: tuple[int, int], at: tuple[int, int]
) -> DecodedImage:
    canvas = Image.new("RGB", size, (120, 120, 120))
    canvas.paste(Image.fromarray(pixels), at)
    return DecodedImage(np.asarray(canvas), "0" * 64, "PNG", b"")


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def blazeface_engine() -> FaceEngine:
    return FaceEngine(EngineSettings(detector="blazeface"))


@pytest.fixture(scope="module")
def hog_engine() -> FaceEngine:
    return FaceEngine(EngineSettings(detector="hog"))


def test_anchors_follow_mediapipes_ssd_options() -> None:
    anchors = blazeface_anchors()
    assert anchors.shape == (896, 2)
    # Stride 8: a 16 x 16 grid, 2 anchors a cell; stride 16: 8 x 8, 6 a cell.
    assert anchors[0] == pytest.approx([0.5 / 16, 0.5 / 16])
    assert anchors[1] == pytest.approx(anchors[0])
    assert anchors[2] == pytest.approx([1.5 / 16, 0.5 / 16])
    assert anchors[511] == pytest.approx([15.5 / 16, 15.5 / 16])
    assert anchors[512:518] == pytest.approx(np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    assert anchors[518] == pytest.approx([1.5 / 8, 0.5 / 8])
    assert anchors[-1] == pytest.approx([7.5 / 8, 7.5 / 8])


def test_weighted_nms_blends_an_overlapping_group_and_keeps_a_separate_face() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float64)
    points = np.zeros((3, 6, 2))
    points[1] += 3.0
    scores = np.array([0.9, 0.6, 0.7])
    merged = weighted_nms(boxes, points, scores, 0.3)
    assert [best for _, _, best in merged] == [0, 2]
    box, keypoints, _ = merged[0]
    assert box == pytest.approx([0.4, 0, 10.4, 10])  # (0.9 * 0 + 0.6 * 1) / 1.5
    assert keypoints == pytest.approx(np.full((6, 2), 1.2))
    assert merged[1][0] == pytest.approx(boxes[2])


def test_letterbox_keeps_the_photos_shape_centred_on_black() -> None:
    pixels = np.full((100, 400, 3), 255, dtype=np.uint8)
    tensor, scale, pad_x, pad_y = letterboxed(pixels)
    assert tensor.shape == (1, 128, 128, 3)
    assert tensor.dtype == np.float32
    assert scale == pytest.approx([128 / 400, 32 / 100])
    assert (pad_x, pad_y) == (0.0, 48.0)
    assert np.all(tensor[0, :48] == -1.0) and np.all(tensor[0, 80:] == -1.0)
    assert np.all(tensor[0, 48:80] == pytest.approx(1.0))


# MediaPipe 0.10.14's own face_detection (model_selection=0, min_detection_confidence=0.5)
# on Manfred_Stolpe_0001 resized to 128 x 128 (PIL bilinear), so that no resampling of
# MediaPipe's own enters: score, box (x0, y0, x1, y1) and eyes, nose tip, mouth centre.
MEDIAPIPE_FACES = (
    (
        0.9242453575134277,
        (31.922101974487305, 41.01459884643555, 86.73417472839355, 95.81842803955078),
        ((51.36078643798828, 56.88953399658203), (74.4052505493164, 56.17719268798828)),
        ((66.07830810546875, 70.33332824707031), (64.73028564453125, 81.06732177734375)),
    ),
    (
        0.8416706919670105,
        (95.52754211425781, 27.61823272705078, 130.31626892089844, 62.40580368041992),
        ((106.15023040771484, 35.78456115722656), (121.7041015625, 36.34096908569336)),
        ((114.23400115966797, 43.210540771484375), (113.59919738769531, 51.432167053222656)),
    ),
)


def test_decoding_matches_mediapipe_on_its_own_input_size(faces_dir: Path) -> None:
    """Anchors, offsets, scores and weighted NMS as MediaPipe's graph: the same faces
    to a hundredth of a pixel (on larger photos the two resample differently: about 1%
    of the box apart, measured on 33 photos)."""
    photo = faces_dir / "lfw-dev" / "Manfred_Stolpe" / "Manfred_Stolpe_0001.jpg"
    resized = Image.open(photo).convert("RGB").resize((128, 128), Image.Resampling.BILINEAR)
    found = BlazeFaceDetector(box_geometry="blazeface").detect_keypoints(np.asarray(resized))
    assert len(found) == len(MEDIAPIPE_FACES)
    for (box, logit, keypoints), (score, corners, eyes, nose_mouth) in zip(
        sorted(found, key=lambda face: -face[1]), MEDIAPIPE_FACES, strict=True
    ):
        assert 1.0 / (1.0 + math.exp(-logit)) == pytest.approx(score, abs=1e-4)
        assert (box.left, box.top) == (math.floor(corners[0]), math.floor(corners[1]))
        assert (box.right, box.bottom) == (math.ceil(corners[2]), math.ceil(corners[3]))
        assert keypoints[[0, 1, 2, 5]] == pytest.approx(np.array([*eyes, *nose_mouth]), abs=0.01)


def test_lfw_faces_are_found_where_hog_finds_them(
    detector: BlazeFaceDetector, faces_dir: Path
) -> None:
    assert isinstance(detector, KeypointDetector)
    hog = HogDetector(upsample=1)
    overlaps = []
    for name, number in PEOPLE:
        pixels = _photo(faces_dir, name, number).pixels
        [(hog_box, _)] = hog.detect(pixels)
        [(box, confidence)] = detector.detect(pixels)
        overlaps.append(_iou(box, hog_box))
        assert overlaps[-1] > 0.5, name
        # Confidence is the logit: 0 is BlazeFace's own cut-off (probability 0.5).
        assert 0.0 < confidence < 10.0
    # The box is mapped to HOG's geometry (bench/results/blazeface_box_fit.json: median
    # IoU 0.88 on lfw-dev's report half, 0.75 for BlazeFace's own box).
    assert np.mean(overlaps) > 0.7


def test_keypoints_sit_on_the_eyes_nose_and_mouth(
    detector: BlazeFaceDetector, hog_engine: FaceEngine, faces_dir: Path
) -> None:
    image = _photo(faces_dir, "Aaron_Peirsol", 1)
    [(_, _, keypoints)] = detector.detect_keypoints(image.pixels)
    assert keypoints.shape == (len(KEYPOINT_NAMES), 2)
    rows = {name: keypoints[index] for index, name in enumerate(KEYPOINT_NAMES)}
    assert np.isnan(rows["mouth_left"]).all() and np.isnan(rows["mouth_right"]).all()
    [face] = hog_engine.detect_faces(image)
    left, right = eye_centres(face.landmarks)
    eyes = float(np.hypot(*(right - left)))
    # Within a fifth of the eye distance of the centres of dlib's eye corners.
    assert np.hypot(*(rows["eye_left"] - left)) < 0.2 * eyes
    assert np.hypot(*(rows["eye_right"] - right)) < 0.2 * eyes
    assert left[0] < rows["nose_tip"][0] < right[0]
    assert rows["eye_left"][1] < rows["nose_tip"][1] < rows["mouth_centre"][1]


def test_a_photo_off_square_maps_keypoints_back_to_its_pixels(
    detector: BlazeFaceDetector, faces_dir: Path
) -> None:
    pixels = _photo(faces_dir, "Aaron_Peirsol", 1).pixels
    [(_, _, square)] = detector.detect_keypoints(pixels)
    eyes = float(np.hypot(*(square[1] - square[0])))
    for size, at in (((600, 250), (300, 0)), ((250, 500), (0, 40))):
        image = _on_canvas(pixels, size, at)
        [(_, _, moved)] = detector.detect_keypoints(image.pixels)
        shifted = square + np.array(at, dtype=np.float64)
        seen = ~np.isnan(shifted[:, 0])
        # Letterboxed at a smaller scale, so a few pixels of noise; a padding not undone
        # would be off by over 100 px.
        assert np.abs(moved[seen] - shifted[seen]).max() < 0.2 * eyes, size


def test_the_engine_gives_templates_close_to_hogs(
    blazeface_engine: FaceEngine, hog_engine: FaceEngine, faces_dir: Path
) -> None:
    for name, number in PEOPLE[:2]:
        image = _photo(faces_dir, name, number)
        [face] = blazeface_engine.detect_faces(image)
        [hog_face] = hog_engine.detect_faces(image)
        assert face.keypoints is not None and face.keypoints.shape == (6, 2)
        assert hog_face.keypoints is None
        assert face.quality.passed, face.quality.reasons
        ours = blazeface_engine.face_template(image, face).normalised()
        theirs = hog_engine.face_template(image, hog_face).normalised()
        # bench/results/blazeface_box_fit.json: median cosine 0.9996 on lfw-dev.
        assert float(ours @ theirs) > 0.99, name


def test_a_large_photo_keeps_landmarks_and_keypoints_at_full_resolution(
    blazeface_engine: FaceEngine, faces_dir: Path
) -> None:
    image = load_image(faces_dir / "deepface-tests" / "deepface_id13" / "img40.jpg")
    assert image.pixels.shape[:2] == (4600, 3061)
    [face] = blazeface_engine.detect_faces(image)
    assert face.keypoints is not None
    assert face.quality.passed, face.quality.reasons
    assert face.quality.eye_distance_px > 300
    left, right = eye_centres(face.landmarks)
    for point, eye in ((face.keypoints[0], left), (face.keypoints[1], right)):
        assert np.hypot(*(point - eye)) < 0.2 * face.quality.eye_distance_px


class _FixedKeypoints:
    """A keypoint detector that finds one face at fixed fractions of what it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    @property
    def key(self) -> str:
        return "fixed"

    def detect(self, pixels: npt.NDArray[np.uint8]) -> list[tuple[FaceBox, float]]:
        return [(box, score) for box, score, _ in self.detect_keypoints(pixels)]

    def detect_keypoints(
        self, pixels: npt.NDArray[np.uint8]
    ) -> list[tuple[FaceBox, float, npt.NDArray[np.float64]]]:
        height, width = pixels.shape[:2]
        self.seen.append((height, width))
        points = np.full((6, 2), np.nan)
        points[0] = (width * 0.25, height * 0.5)
        box = FaceBox(0, 0, width // 2, height // 2)
        return [(box, 1.0, points)]


def test_keypoints_of_a_bounded_copy_are_scaled_back() -> None:
    detector = _FixedKeypoints()
    pixels = np.zeros((3000, 4000, 3), dtype=np.uint8)
    [(box, _, points)] = detect_keypoints_within(detector, pixels, 800_000)
    [(height, width)] = detector.seen
    assert height * width <= 800_000
    assert points[0] == pytest.approx([1000.0, 1500.0], abs=3.0)
    assert np.isnan(points[1:]).all()
    assert abs(box.right - 2000) <= 3 and abs(box.bottom - 1500) <= 3


def test_a_small_face_in_a_large_frame_is_found_by_the_hog_fallback(faces_dir: Path) -> None:
    pixels = _photo(faces_dir, "Aaron_Peirsol", 1).pixels
    # Eyes about 40 px apart in a 1600 px frame: about 3 px in BlazeFace's input.
    image = _on_canvas(pixels, (1600, 1200), (1100, 200))
    without = FaceEngine(EngineSettings(detector="blazeface", hog_fallback=False))
    assert without.detect_faces(image) == []
    [face] = FaceEngine(EngineSettings(detector="blazeface")).detect_faces(image)
    assert face.keypoints is None  # HOG's face
    assert 1100 < face.box.centre[0] < 1350 and 200 < face.box.centre[1] < 450
    assert face.quality.eye_distance_px > 30


def test_settings_name_blazeface_and_its_fallback_in_the_key() -> None:
    assert EngineSettings(detector="hog").key == "hog/upsample=1/retry=-0.5"
    key = EngineSettings(detector="blazeface").key
    assert key.startswith("blazeface/d388b1cf8a5f6f1a/")
    assert "hog_fallback=upsample=1" in key
    assert "hog_fallback" not in EngineSettings(detector="blazeface", hog_fallback=False).key
    with pytest.raises(ValueError, match="unknown detector 'yunet'; use one of hog, cnn"):
        EngineSettings(detector="yunet")  # type: ignore[arg-type]


def test_missing_or_altered_weights_say_to_run_make(tmp_path: Path) -> None:
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    missing = BlazeFaceDetector(path=tmp_path / "absent.onnx")
    with pytest.raises(BlazeFaceError, match=r"missing; run `make`") as raised:
        missing.detect(pixels)
    assert "\n" not in str(raised.value)
    altered = tmp_path / "altered.onnx"
    shutil.copyfile(WEIGHTS_PATH, altered)
    data = bytearray(altered.read_bytes())
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(BlazeFaceError, match=r"not the pinned file .*; run `make`"):
        BlazeFaceDetector(path=altered).detect(pixels)


def test_the_engine_uses_blazeface_when_asked(blazeface_engine: FaceEngine) -> None:
    assert isinstance(blazeface_engine.detector, BlazeFaceDetector)
    assert math.isclose(blazeface_engine.detector.min_score, 0.5)


def test_a_worker_process_finds_the_same_faces_bit_for_bit(faces_dir: Path) -> None:
    """ONNX Runtime on one thread: a spawned worker gives what this process gives."""
    paths = [
        faces_dir / "lfw-dev" / name / f"{name}_{number:04d}.jpg" for name, number in PEOPLE[:2]
    ]
    settings = EngineSettings(detector="blazeface")
    here = list(extract_faces(paths, settings, workers=1))
    there = list(extract_faces(paths, settings, workers=2))
    for ours, theirs in zip(here, there, strict=True):
        assert ours.template is not None and theirs.template is not None
        assert np.array_equal(ours.template.vector, theirs.template.vector)
        [face], [other] = ours.faces, theirs.faces
        assert face.box == other.box and face.confidence == other.confidence
        assert face.keypoints is not None and other.keypoints is not None
        assert np.array_equal(face.keypoints, other.keypoints, equal_nan=True)
