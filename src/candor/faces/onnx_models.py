"""ArcFace-class embedders and SCRFD-class detectors from ONNX files the operator provides.

Candor ships no such weights: an agency that holds a licensed model gives its file and
the sha256 it expects (`OnnxModelSpec`). The file is hashed before it is opened, and a
file whose bytes differ is refused, so a template's `ModelId` always names the bytes that
made it. ONNX Runtime runs the model on the CPU, or on CUDA where the operator asks for it
and the installed onnxruntime has that provider.

What a file is, is read from its own signature, as insightface's model_zoo does: an
embedder takes one (N, 3, 112, 112) image batch and gives one (N, D) output; a detector
takes one (N, 3, H, W) image and gives 6, 9, 10 or 15 outputs (scores, boxes and, for 9
and 15, five keypoints, at 3 or 5 strides). Anything else is refused with the shapes it
has, rather than being run on a guess.

Alignment: the embedder warps the face so that the two eye centres of dlib's 5-point
landmarks land where ArcFace's reference template puts the eyes (a similarity transform,
which two points determine), then resamples bilinearly to 112 x 112.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from candor.faces.records import FaceBox, FloatArray, UInt8Array
from candor.faces.registry import ModelId, file_sha256

Provider = Literal["cpu", "cuda"]
ModelKind = Literal["arcface", "scrfd"]

ARCFACE_SIZE: Final = 112
# Eye centres of insightface's arcface_dst template (left of image, right of image).
_ARCFACE_EYES: Final = np.array([[38.2946, 51.6963], [73.5318, 51.5014]])
_EMBEDDING_DIMENSIONS: Final = frozenset({128, 256, 512})
# Number of outputs -> (strides, keypoints present), after insightface's SCRFD class.
_SCRFD_LAYOUTS: Final[dict[int, tuple[tuple[int, ...], bool]]] = {
    6: ((8, 16, 32), False),
    9: ((8, 16, 32), True),
    10: ((8, 16, 32, 64, 128), False),
    15: ((8, 16, 32, 64, 128), True),
}
_PROVIDERS: Final[dict[str, str]] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
}


class OnnxModelError(ValueError):
    """An ONNX model file is missing, differs from its declared hash, or is not recognised."""


@dataclass(frozen=True)
class OnnxModelSpec:
    """An operator-provided ONNX model: where it is and which bytes it must be.

    name, version: how templates will name the model (an embedder's `ModelId`).
    sha256: the hex digest the operator declares; the file is refused when it differs.
    provider: "cpu", or "cuda" where onnxruntime-gpu and a GPU are present.
    input_mean, input_std: pixel normalisation, (value - mean) / std; 127.5 and 127.5
        for insightface's ArcFace exports, 127.5 and 128.0 for its SCRFD exports.
    threads: ONNX Runtime intra-op threads (0: its default, one per core).
    """

    name: str
    version: str
    path: Path
    sha256: str
    provider: Provider = "cpu"
    input_mean: float = 127.5
    input_std: float = 127.5
    threads: int = 0

    def __post_init__(self) -> None:
        digest = self.sha256.lower()
        if len(digest) != 64 or any(char not in "0123456789abcdef" for char in digest):
            raise ValueError(f"sha256 of {self.name} must be 64 hex digits")
        if self.provider not in _PROVIDERS:
            raise ValueError(f"unknown provider {self.provider!r}; use 'cpu' or 'cuda'")
        if self.input_std == 0.0:
            raise ValueError("input_std must not be 0")


@dataclass(frozen=True)
class OnnxSignature:
    """The input and output shapes an ONNX file declares (None for a symbolic axis)."""

    inputs: tuple[tuple[int | None, ...], ...]
    outputs: tuple[tuple[int | None, ...], ...]

    def __str__(self) -> str:
        def show(shapes: tuple[tuple[int | None, ...], ...]) -> str:
            return ", ".join(
                "(" + ", ".join("?" if axis is None else str(axis) for axis in shape) + ")"
                for shape in shapes
            )

        return f"inputs [{show(self.inputs)}], outputs [{show(self.outputs)}]"


def _axis(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def signature_of(session: Any) -> OnnxSignature:
    """The declared shapes of an onnxruntime InferenceSession."""
    return OnnxSignature(
        inputs=tuple(tuple(_axis(a) for a in item.shape) for item in session.get_inputs()),
        outputs=tuple(tuple(_axis(a) for a in item.shape) for item in session.get_outputs()),
    )


def recognise(signature: OnnxSignature) -> ModelKind:
    """Which kind of model the shapes say ("arcface" or "scrfd"); OnnxModelError otherwise."""
    if len(signature.inputs) == 1 and len(signature.inputs[0]) == 4:
        channels, height, width = signature.inputs[0][1:]
        if channels in (3, None):
            if (
                len(signature.outputs) == 1
                and (height, width) == (ARCFACE_SIZE, ARCFACE_SIZE)
                and len(signature.outputs[0]) == 2
                and signature.outputs[0][1] in _EMBEDDING_DIMENSIONS
            ):
                return "arcface"
            if len(signature.outputs) in _SCRFD_LAYOUTS and all(
                len(shape) in (2, 3) for shape in signature.outputs
            ):
                return "scrfd"
    raise OnnxModelError(
        f"not a recognised face model: {signature}; expected an ArcFace-class embedder "
        f"(one (N, 3, 112, 112) input, one (N, D) output, D in "
        f"{sorted(_EMBEDDING_DIMENSIONS)}) or an SCRFD-class detector (one (N, 3, H, W) "
        f"input, {sorted(_SCRFD_LAYOUTS)} outputs)"
    )


def open_session(spec: OnnxModelSpec, expected: ModelKind) -> tuple[Any, OnnxSignature]:
    """Check the file's hash, open it with ONNX Runtime and check what kind of model it is."""
    # Imported here so that dlib-only engines never load it; it ships no type information.
    onnxruntime: Any = importlib.import_module("onnxruntime")

    if not spec.path.is_file():
        raise OnnxModelError(f"model file {spec.path} of {spec.name} does not exist")
    actual = file_sha256(spec.path)
    if actual != spec.sha256.lower():
        raise OnnxModelError(
            f"model file {spec.path} has sha256 {actual}, not the declared {spec.sha256}; "
            "refusing a model whose bytes are not the ones declared"
        )
    provider = _PROVIDERS[spec.provider]
    available = onnxruntime.get_available_providers()
    if provider not in available:
        raise OnnxModelError(
            f"ONNX Runtime provider {provider} is not available here (have {available})"
        )
    options = onnxruntime.SessionOptions()
    if spec.threads:
        options.intra_op_num_threads = spec.threads
    session = onnxruntime.InferenceSession(str(spec.path), options, providers=[provider])
    signature = signature_of(session)
    kind = recognise(signature)
    if kind != expected:
        raise OnnxModelError(f"{spec.path} is an {kind} model, not an {expected} model")
    return session, signature


def arcface_transform(landmarks: FloatArray) -> npt.NDArray[np.float64]:
    """2 x 3 affine matrix taking image pixels to ArcFace chip pixels (eye centres matched)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected (5, 2) landmarks, got {points.shape}")
    # dlib's order: 0-1 corners of the eye on the image's right, 2-3 the image's left.
    source = np.array([(points[2] + points[3]) / 2.0, (points[0] + points[1]) / 2.0])
    source_vector = source[1] - source[0]
    target_vector = _ARCFACE_EYES[1] - _ARCFACE_EYES[0]
    source_length = math.hypot(*source_vector)
    if source_length == 0.0:
        raise ValueError("the two eye centres coincide; no alignment is possible")
    scale = math.hypot(*target_vector) / source_length
    angle = math.atan2(target_vector[1], target_vector[0]) - math.atan2(
        source_vector[1], source_vector[0]
    )
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    shift = _ARCFACE_EYES[0] - rotation @ source[0]
    return np.hstack([rotation, shift[:, np.newaxis]])


def _to_batch(images: Sequence[UInt8Array], mean: float, std: float) -> npt.NDArray[np.float32]:
    stacked = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return np.ascontiguousarray(((stacked - mean) / std).transpose(0, 3, 1, 2))


class OnnxArcFaceEmbedder:
    """An ArcFace-class embedder (112 x 112 RGB chip in, D-dimensional vector out).

    The session opens on first use (hash check included); `model` hashes the file only.
    """

    def __init__(self, spec: OnnxModelSpec) -> None:
        self.spec = spec
        self._session: Any = None
        self._input_name = ""
        self._dimension: int | None = None

    def _open(self) -> Any:
        if self._session is None:
            session, signature = open_session(self.spec, "arcface")
            self._input_name = session.get_inputs()[0].name
            self._dimension = signature.outputs[0][1]
            self._session = session
        return self._session

    @property
    def model(self) -> ModelId:
        self._open()
        if self._dimension is None:
            raise OnnxModelError(f"{self.spec.path} declares no output dimension")
        return ModelId(
            name=self.spec.name,
            version=self.spec.version,
            weights_sha256=self.spec.sha256.lower(),
            dimension=self._dimension,
        )

    def aligned_chip(
        self, pixels: UInt8Array, landmarks: FloatArray, keypoints: FloatArray | None = None
    ) -> UInt8Array:
        matrix = arcface_transform(landmarks)
        # PIL wants the map from output pixels back to input pixels.
        inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
        image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB")
        warped = image.transform(
            (ARCFACE_SIZE, ARCFACE_SIZE),
            Image.Transform.AFFINE,
            tuple(float(value) for value in inverse.ravel()),
            resample=Image.Resampling.BILINEAR,
        )
        return np.asarray(warped, dtype=np.uint8)

    def embed(self, chip: UInt8Array) -> npt.NDArray[np.float32]:
        vector: npt.NDArray[np.float32] = self.embed_batch([chip])[0]
        return vector

    def embed_batch(self, chips: Sequence[UInt8Array]) -> npt.NDArray[np.float32]:
        """(len(chips), D) vectors in one run of the network."""
        for chip in chips:
            if chip.shape != (ARCFACE_SIZE, ARCFACE_SIZE, 3) or chip.dtype != np.uint8:
                raise ValueError(f"expected ({ARCFACE_SIZE}, {ARCFACE_SIZE}, 3) uint8 chips")
        if not chips:
            return np.zeros((0, self.model.dimension), dtype=np.float32)
        session = self._open()
        batch = _to_batch(chips, self.spec.input_mean, self.spec.input_std)
        (output,) = session.run(None, {self._input_name: batch})
        return np.asarray(output, dtype=np.float32).reshape(len(chips), -1)


class OnnxScrfdDetector:
    """An SCRFD-class detector: anchor-free boxes at 3 or 5 strides, scored and merged by NMS.

    input_size: (width, height) the photo is letterboxed into when the file's own input
        size is symbolic; a file with a fixed size uses that.
    threshold: lowest face score kept; nms_threshold: overlap above which the weaker of
        two boxes is dropped.
    """

    def __init__(
        self,
        spec: OnnxModelSpec,
        *,
        input_size: tuple[int, int] = (640, 640),
        threshold: float = 0.5,
        nms_threshold: float = 0.4,
    ) -> None:
        self.spec = spec
        self.input_size = input_size
        self.threshold = threshold
        self.nms_threshold = nms_threshold
        self._session: Any = None
        self._input_name = ""
        self._strides: tuple[int, ...] = ()
        self.keypoints_present = False

    @property
    def key(self) -> str:
        return (
            f"{self.spec.name}-{self.spec.version}-{self.spec.sha256.lower()[:16]}/"
            f"size={self.input_size[0]}x{self.input_size[1]}/threshold={self.threshold:g}"
        )

    def _open(self) -> Any:
        if self._session is None:
            session, signature = open_session(self.spec, "scrfd")
            height, width = signature.inputs[0][2:]
            if height is not None and width is not None:
                self.input_size = (width, height)
            self._strides, self.keypoints_present = _SCRFD_LAYOUTS[len(signature.outputs)]
            self._input_name = session.get_inputs()[0].name
            self._session = session
        return self._session

    def detect(self, pixels: UInt8Array) -> list[tuple[FaceBox, float]]:
        session = self._open()
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB pixels, got {pixels.shape}")
        width, height = self.input_size
        scale = min(width / pixels.shape[1], height / pixels.shape[0])
        resized = Image.fromarray(np.ascontiguousarray(pixels), "RGB").resize(
            (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
            Image.Resampling.BILINEAR,
        )
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[: resized.height, : resized.width] = np.asarray(resized)
        batch = _to_batch([canvas], self.spec.input_mean, self.spec.input_std)
        outputs = [np.asarray(item) for item in session.run(None, {self._input_name: batch})]
        boxes, scores = self._decode(outputs, width, height)
        keep = _nms(boxes, scores, self.nms_threshold)
        return [
            (
                FaceBox(
                    left=math.floor(boxes[row, 0] / scale),
                    top=math.floor(boxes[row, 1] / scale),
                    right=math.ceil(boxes[row, 2] / scale),
                    bottom=math.ceil(boxes[row, 3] / scale),
                ),
                float(scores[row]),
            )
            for row in keep
        ]

    def _decode(
        self, outputs: list[np.ndarray], width: int, height: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        count = len(self._strides)
        all_boxes: list[np.ndarray] = []
        all_scores: list[np.ndarray] = []
        for level, stride in enumerate(self._strides):
            # Batched exports add a leading axis of 1; the layout is otherwise the same.
            scores = outputs[level].reshape(-1).astype(np.float64)
            distances = outputs[level + count].reshape(-1, 4).astype(np.float64) * stride
            cells = (height // stride) * (width // stride)
            if cells == 0 or len(scores) % cells:
                raise OnnxModelError(
                    f"{self.spec.path}: {len(scores)} scores at stride {stride} do not fit a "
                    f"{width}x{height} input"
                )
            anchors = len(scores) // cells
            ys, xs = np.mgrid[: height // stride, : width // stride]
            centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float64) * stride
            centres = np.repeat(centres, anchors, axis=0)
            chosen = np.flatnonzero(scores >= self.threshold)
            centre, distance = centres[chosen], distances[chosen]
            all_boxes.append(np.hstack([centre - distance[:, :2], centre + distance[:, 2:]]))
            all_scores.append(scores[chosen])
        return np.vstack(all_boxes), np.concatenate(all_scores)


def _nms(
    boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], threshold: float
) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order:
        best = int(order.pop(0))
        keep.append(best)
        if not order:
            break
        rest = np.asarray(order)
        left = np.maximum(boxes[best, 0], boxes[rest, 0])
        top = np.maximum(boxes[best, 1], boxes[rest, 1])
        right = np.minimum(boxes[best, 2], boxes[rest, 2])
        bottom = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.maximum(right - left, 0) * np.maximum(bottom - top, 0)
        union = areas[best] + areas[rest] - overlap
        ratio = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = [int(row) for row, value in zip(rest, ratio, strict=True) if value <= threshold]
    return keep
