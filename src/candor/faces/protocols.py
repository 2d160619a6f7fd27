"""The seams of the face engine: a detector, a landmark model and an embedder.

`FaceEngine` talks to these Protocols only, so another model (an ArcFace-class ONNX file
the operator provides, run through ONNX Runtime) plugs in as one more class with these
methods, and no caller changes. Implementations may hold non-thread-safe native objects:
the engine uses each from one thread.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from candor.faces.records import FaceBox, FloatArray, UInt8Array
from candor.faces.registry import ModelId


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in an (H, W, 3) uint8 RGB image."""

    @property
    def key(self) -> str:
        """Text naming the detector and its settings, recorded with templates."""
        ...

    def detect(self, pixels: UInt8Array) -> list[tuple[FaceBox, float]]:
        """Every face found as (box in image pixels, detector confidence), in any order."""
        ...


@runtime_checkable
class KeypointDetector(FaceDetector, Protocol):
    """A detector that also places keypoints on each face it finds (BlazeFace)."""

    def detect_keypoints(self, pixels: UInt8Array) -> list[tuple[FaceBox, float, FloatArray]]:
        """Every face as (box, confidence, keypoints): keypoints a (6, 2) float array of
        (x, y) in image pixels in `KEYPOINT_NAMES` order, NaN rows where the detector
        gives no such point."""
        ...


@runtime_checkable
class LandmarkModel(Protocol):
    """Places the 5 landmarks (dlib's order, see `DetectedFace`) on one detected face."""

    def landmarks(self, pixels: UInt8Array, box: FaceBox) -> FloatArray:
        """(5, 2) float array of (x, y) in image pixels."""
        ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Turns an aligned face into a template vector; owns its alignment recipe."""

    @property
    def model(self) -> ModelId:
        """The model, pinned to the sha256 of its weights."""
        ...

    def aligned_chip(
        self, pixels: UInt8Array, landmarks: FloatArray, keypoints: FloatArray | None = None
    ) -> UInt8Array:
        """The face cut out, rotated upright and scaled as the model expects, RGB uint8.

        landmarks: dlib's 5 points (see `DetectedFace`); keypoints: the detector's own
        (6, 2) points in `KEYPOINT_NAMES` order with NaN rows, or None. An embedder uses
        whichever its alignment needs.
        """
        ...

    def embed(self, chip: UInt8Array) -> npt.NDArray[np.float32]:
        """(model.dimension,) float32 vector of an aligned chip, unnormalised."""
        ...
