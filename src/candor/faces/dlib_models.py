"""dlib's HOG and CNN detectors, 5-point landmarks and ResNet embedder behind the Protocols.

Each wrapper loads its dlib object on first use and keeps it for the life of the wrapper:
creating a `FaceEngine` is cheap, and a worker process pays for a model only if it uses it.
dlib objects must not be shared between threads (they segfault), hence one engine per
process in `extract_faces`.

dlib's networks (the ResNet embedder and the CNN detector) run on the BLAS dlib was built
against (OpenBLAS, see pyproject.toml). OpenBLAS splits its work differently on different
thread counts, so the same chip embedded on four threads and on one gave templates 1.3e-7
apart. Every network pass here runs on exactly one BLAS thread, whatever the environment
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS) or the caller's own threadpool settings: the same
photo gives the same template, bit for bit, in any process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from candor.faces.records import FaceBox, FloatArray, UInt8Array
from candor.faces.registry import (
    DlibModelFiles,
    ModelId,
    dlib_model_files,
    dlib_resnet_model_id,
    file_sha256,
)

# dlib's compute_face_descriptor aligns with exactly these values; the network was trained
# on such chips, so they are part of the model, not a setting.
CHIP_SIZE = 150
CHIP_PADDING = 0.25


# The BLAS thread count is one setting per process: passes in two threads at once would
# each restore it under the other, so they take turns.
_BLAS_LOCK = threading.Lock()
_blas_controller: ThreadpoolController | None = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with every BLAS library of the process on one thread, then restore.

    One thread is also the fastest way to fill the cores: extraction workers each run one
    network (docs/performance.md).
    """
    global _blas_controller
    with _BLAS_LOCK:
        if _blas_controller is None:
            # Made after `import dlib` above has loaded dlib's BLAS, so it is among the
            # libraries the controller finds.
            _blas_controller = ThreadpoolController()
        with _blas_controller.limit(limits=1, user_api="blas"):
            yield


def _box_of(rect: Any) -> FaceBox:
    # Not clipped to the image: the landmark model was trained on dlib's own boxes, which
    # may run past the edges, and clipping would shift the landmarks of faces at a border.
    return FaceBox(
        left=int(rect.left()),
        top=int(rect.top()),
        right=int(rect.right()) + 1,
        bottom=int(rect.bottom()) + 1,
    )


def _rect_of(box: FaceBox) -> Any:
    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)


def _check_pixels(pixels: UInt8Array) -> UInt8Array:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB pixels, got {pixels.shape} {pixels.dtype}")
    return np.ascontiguousarray(pixels)


class HogDetector:
    """dlib's frontal HOG + linear SVM detector; `upsample` doubles the image that many times.

    One upsampling pass finds faces down to about 40 px wide (80 px without), at four times
    the cost (about 100 ms for a 512 px photo on one core).

    retry_threshold: when nothing scores 0 or more (dlib's own cut-off), run once more
    accepting detections down to this (negative) score. On lfw-dev this finds the face in
    most of the photos HOG otherwise misses (turned or shadowed faces scoring just under 0),
    costs one more pass only on those photos, and never adds weak boxes to a photo where a
    face was found. The weak faces keep their negative confidence, for the quality gate.
    """

    def __init__(self, upsample: int = 1, retry_threshold: float | None = None) -> None:
        if upsample < 0:
            raise ValueError("upsample must be 0 or more")
        if retry_threshold is not None and not retry_threshold < 0.0:
            raise ValueError("retry_threshold must be below 0")
        self.upsample = upsample
        self.retry_threshold = retry_threshold
        self._detector: Any = None

    @property
    def key(self) -> str:
        retry = "" if self.retry_threshold is None else f"/retry={self.retry_threshold:g}"
        return f"dlib-hog-{dlib.__version__}/upsample={self.upsample}{retry}"

    def detect(self, pixels: UInt8Array) -> list[tuple[FaceBox, float]]:
        image = _check_pixels(pixels)
        if self._detector is None:
            self._detector = dlib.get_frontal_face_detector()
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        if not rects and self.retry_threshold is not None:
            rects, scores, _ = self._detector.run(image, self.upsample, self.retry_threshold)
        return [(_box_of(rect), float(score)) for rect, score in zip(rects, scores, strict=True)]


class CnnDetector:
    """dlib's MMOD CNN detector: finds more turned faces, but 1.6-8 s per photo on a CPU."""

    def __init__(self, upsample: int = 1, files: DlibModelFiles | None = None) -> None:
        if upsample < 0:
            raise ValueError("upsample must be 0 or more")
        self.upsample = upsample
        self._path = (files or dlib_model_files()).cnn_detector
        self._detector: Any = None

    @property
    def key(self) -> str:
        return f"dlib-mmod-{file_sha256(self._path)[:16]}/upsample={self.upsample}"

    def detect(self, pixels: UInt8Array) -> list[tuple[FaceBox, float]]:
        image = _check_pixels(pixels)
        if self._detector is None:
            self._detector = dlib.cnn_face_detection_model_v1(str(self._path))
        with one_blas_thread():
            found = self._detector(image, self.upsample)
        return [(_box_of(item.rect), float(item.confidence)) for item in found]


class DlibLandmarks:
    """dlib's 5-point shape predictor (eye corners and nose base), about 0.2 ms per face."""

    def __init__(self, files: DlibModelFiles | None = None) -> None:
        self._path = (files or dlib_model_files()).landmarks_5
        self._predictor: Any = None

    def landmarks(self, pixels: UInt8Array, box: FaceBox) -> FloatArray:
        image = _check_pixels(pixels)
        if self._predictor is None:
            self._predictor = dlib.shape_predictor(str(self._path))
        shape = self._predictor(image, _rect_of(box))
        return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64)


class DlibResNetEmbedder:
    """dlib's ResNet-29 face descriptor (128-d, about 78 ms per face on one core).

    Alignment is dlib.get_face_chip(size=150, padding=0.25) from the 5 landmarks, the same
    chip compute_face_descriptor builds itself, with no jitter, and the network runs on one
    BLAS thread: the same photo always gives the same template.
    """

    def __init__(self, files: DlibModelFiles | None = None) -> None:
        self._files = files or dlib_model_files()
        self._model_id: ModelId | None = None
        self._network: Any = None

    @property
    def model(self) -> ModelId:
        if self._model_id is None:
            self._model_id = dlib_resnet_model_id(self._files)
        return self._model_id

    def aligned_chip(
        self, pixels: UInt8Array, landmarks: FloatArray, keypoints: FloatArray | None = None
    ) -> UInt8Array:
        # The ResNet was trained on chips aligned by dlib's 5 points: keypoints are unused.
        image = _check_pixels(pixels)
        points = np.asarray(landmarks, dtype=np.float64)
        if points.shape != (5, 2):
            raise ValueError(f"expected (5, 2) landmarks, got {points.shape}")
        parts = [dlib.point(round(float(x)), round(float(y))) for x, y in points]
        xs, ys = points[:, 0], points[:, 1]
        rect = dlib.rectangle(
            int(xs.min()), int(ys.min()), int(np.ceil(xs.max())), int(np.ceil(ys.max()))
        )
        shape = dlib.full_object_detection(rect, parts)
        chip: UInt8Array = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return chip

    def embed(self, chip: UInt8Array) -> npt.NDArray[np.float32]:
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError(f"expected a ({CHIP_SIZE}, {CHIP_SIZE}, 3) uint8 chip")
        if self._network is None:
            self._network = dlib.face_recognition_model_v1(str(self._files.resnet))
        with one_blas_thread():
            descriptor = self._network.compute_face_descriptor(np.ascontiguousarray(chip), 0)
        return np.asarray(descriptor, dtype=np.float32)
