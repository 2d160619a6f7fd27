"""The values the face engine hands out: boxes, quality reports, detected faces, templates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from candor.faces.registry import ModelId

FloatArray = npt.NDArray[np.floating]
UInt8Array = npt.NDArray[np.uint8]

KEYPOINT_NAMES = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right", "mouth_centre")
"""The rows of `DetectedFace.keypoints`, in order; left and right are of the IMAGE (the
person's right eye is "eye_left"). Eye points are eye centres."""


@dataclass(frozen=True)
class FaceBox:
    """A face's box in pixels of the decoded image; `right` and `bottom` are exclusive.

    The detector's box is kept as it is, so it may run past the image's edges.
    """

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.bottom - self.top

    @property
    def area(self) -> int:
        """Area in square pixels (0 for a degenerate box)."""
        return max(self.width, 0) * max(self.height, 0)

    @property
    def centre(self) -> tuple[float, float]:
        """(x, y) of the box's centre, in pixels."""
        return ((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)


@dataclass(frozen=True)
class QualityReport:
    """What the quality gate measured on one face, and why it refused it (if it did).

    eye_distance_px: distance between the two eye centres, in pixels of the decoded image.
    sharpness: variance of the Laplacian of the grey aligned chip (grey levels 0-255).
    yaw_degrees: sideways head turn estimated from the 5 landmarks; 0 is frontal,
        positive means the nose points towards the image's right. Coarse (about ±10°).
    roll_degrees: in-plane tilt of the line through the eye centres; positive is clockwise
        in the image.
    detector_confidence: the detector's own score (HOG: SVM margin; CNN: MMOD confidence;
        BlazeFace: the logit of its face probability), 0 at each detector's own cut-off.
    reasons: one human sentence per failed check; empty when the face passes.
    """

    eye_distance_px: float
    sharpness: float
    yaw_degrees: float
    roll_degrees: float
    detector_confidence: float
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.reasons


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face found in an image: box, detector confidence, landmarks and quality.

    `landmarks` is a (5, 2) float array of (x, y) pixels in dlib's 5-point order: outer and
    inner corner of the eye on the image's right, outer and inner corner of the eye on the
    image's left, base of the nose. They feed the quality gate and dlib's chip.

    `keypoints` is what a keypoint detector (BlazeFace) placed itself: a (6, 2) float array
    of (x, y) pixels in `KEYPOINT_NAMES` order, with NaN rows for points the detector does
    not give (BlazeFace gives no mouth corners); None for a detector without keypoints
    (dlib's HOG and CNN). An ArcFace-class embedder may align on them.
    """

    box: FaceBox
    confidence: float
    landmarks: FloatArray
    quality: QualityReport
    keypoints: FloatArray | None = None


@dataclass(frozen=True, eq=False)
class Template:
    """A face template: the model's vector as emitted, tied to the model that made it.

    `vector` is (d,) float32, unnormalised (dlib's ResNet emits norms of about 1.46);
    scores use `normalised()`.
    """

    vector: npt.NDArray[np.float32]
    model: ModelId

    def __post_init__(self) -> None:
        if self.vector.shape != (self.model.dimension,):
            raise ValueError(
                f"a template of {self.model.key} has shape ({self.model.dimension},), "
                f"not {self.vector.shape}"
            )

    def normalised(self) -> npt.NDArray[np.float32]:
        """The vector scaled to unit L2 norm (float32); a zero vector is an error."""
        norm = float(np.linalg.norm(self.vector))
        if norm == 0.0 or not np.isfinite(norm):
            raise ValueError("a template with zero or non-finite norm cannot be normalised")
        return (self.vector / norm).astype(np.float32)
