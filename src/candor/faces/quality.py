"""The quality gate: face size, sharpness, pose and detector confidence, with reasons.

All measures come from what the pipeline already has (landmarks, the aligned chip and the
detector's score), so the gate adds well under a millisecond per face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from candor.faces.records import FloatArray, QualityReport, UInt8Array

# Depth of the nose base in front of the plane of the eye corners, as a fraction of the
# distance between the eye centres (adult anthropometric averages: ~20 mm and ~63 mm).
# The yaw estimate hangs on this one number, which is why it is coarse.
_NOSE_DEPTH_RATIO = 0.32


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the quality gate; a face outside any of them is refused with a reason.

    min_eye_distance_px: pixels between the eye centres in the decoded image.
    min_sharpness: variance of the Laplacian of the grey 150x150 aligned chip.
    max_abs_yaw_degrees: sideways head turn, either direction.
    max_abs_roll_degrees: in-plane tilt, either direction.
    min_detector_confidence: detector score (HOG SVM margin, CNN MMOD confidence,
        BlazeFace's logit, whose sigmoid is its probability). Each detector's own cut-off
        is 0 on this scale (BlazeFace's is probability 0.5), so the limit means "this far
        above the detector's own cut-off" whichever detector found the face; faces that
        only the HOG retry finds score below it, so the default lists them, with this
        reason, instead of saying that no face was found.
    The defaults accept 99.4% of lfw-dev's photos (faces about 40 px between the eyes) and
    refuse no mated probe or gallery photo whose search would have found its mate at rank
    1; the measured figures are in bench/results/accuracy_lfw.json. They are deliberately
    loose: stricter limits (sharpness 5, yaw 55°) cost lfw-dev rank-1 hits, because
    dlib still matches many small, soft or turned faces.
    """

    min_eye_distance_px: float = 24.0
    min_sharpness: float = 4.0
    max_abs_yaw_degrees: float = 70.0
    max_abs_roll_degrees: float = 30.0
    min_detector_confidence: float = 0.0

    @property
    def key(self) -> str:
        """Stable text form of the limits, recorded in evaluation reports."""
        return (
            f"eye>={self.min_eye_distance_px:g},sharp>={self.min_sharpness:g},"
            f"yaw<={self.max_abs_yaw_degrees:g},roll<={self.max_abs_roll_degrees:g},"
            f"conf>={self.min_detector_confidence:g}"
        )


def eye_centres(landmarks: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Centres (x, y) of the eye on the image's left and the eye on the image's right."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected (5, 2) landmarks in dlib's 5-point order, got {points.shape}")
    right_of_image = (points[0] + points[1]) / 2.0
    left_of_image = (points[2] + points[3]) / 2.0
    return left_of_image, right_of_image


def eye_distance_px(landmarks: FloatArray) -> float:
    """Distance between the two eye centres, in pixels."""
    left, right = eye_centres(landmarks)
    return float(np.hypot(*(right - left)))


def roll_degrees(landmarks: FloatArray) -> float:
    """In-plane tilt of the eye line in degrees; positive is clockwise in the image."""
    left, right = eye_centres(landmarks)
    dx, dy = right - left
    return math.degrees(math.atan2(float(dy), float(dx)))


def yaw_degrees(landmarks: FloatArray) -> float:
    """Sideways head turn in degrees from the nose's offset off the eyes' midpoint.

    In the roll-corrected frame the nose base sits depth*sin(yaw) off the midpoint while
    the eye distance shrinks to width*cos(yaw), so yaw = atan(offset / eyes / depth_ratio).
    Positive means the nose points towards the image's right.
    """
    left, right = eye_centres(landmarks)
    axis = right - left
    distance = float(np.hypot(*axis))
    if distance == 0.0:
        return 90.0
    unit = axis / distance
    nose = np.asarray(landmarks, dtype=np.float64)[4]
    offset = float(np.dot(nose - (left + right) / 2.0, unit))
    return math.degrees(math.atan(offset / distance / _NOSE_DEPTH_RATIO))


def sharpness(chip: UInt8Array) -> float:
    """Variance of the 4-neighbour Laplacian of the chip's grey levels (0-255 scale)."""
    pixels = np.asarray(chip, dtype=np.float64)
    grey = pixels @ np.array([0.299, 0.587, 0.114]) if pixels.ndim == 3 else pixels
    laplacian = (
        grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    )
    return float(laplacian.var())


def quality_reasons(
    eye_distance: float,
    sharpness_value: float,
    yaw: float,
    roll: float,
    detector_confidence: float,
    thresholds: QualityThresholds,
) -> tuple[str, ...]:
    """One plain sentence per limit the measures fall outside; empty when all pass."""
    reasons: list[str] = []
    if eye_distance < thresholds.min_eye_distance_px:
        reasons.append(
            f"eyes {eye_distance:.0f} px apart, below the minimum of "
            f"{thresholds.min_eye_distance_px:g} px"
        )
    if sharpness_value < thresholds.min_sharpness:
        reasons.append(
            f"too blurred: sharpness {sharpness_value:.1f}, below the minimum of "
            f"{thresholds.min_sharpness:g}"
        )
    if abs(yaw) > thresholds.max_abs_yaw_degrees:
        reasons.append(
            f"head turned about {abs(yaw):.0f}° sideways, beyond the maximum of "
            f"{thresholds.max_abs_yaw_degrees:g}°"
        )
    if abs(roll) > thresholds.max_abs_roll_degrees:
        reasons.append(
            f"head tilted {abs(roll):.0f}°, beyond the maximum of "
            f"{thresholds.max_abs_roll_degrees:g}°"
        )
    if detector_confidence < thresholds.min_detector_confidence:
        reasons.append(
            f"detector confidence {detector_confidence:.2f}, below the minimum of "
            f"{thresholds.min_detector_confidence:g}"
        )
    return tuple(reasons)


def judge_quality(report: QualityReport, thresholds: QualityThresholds) -> QualityReport:
    """The same measures judged against other limits (for sweeps over cached results)."""
    return replace(
        report,
        reasons=quality_reasons(
            report.eye_distance_px,
            report.sharpness,
            report.yaw_degrees,
            report.roll_degrees,
            report.detector_confidence,
            thresholds,
        ),
    )


def assess_quality(
    landmarks: FloatArray,
    chip: UInt8Array,
    detector_confidence: float,
    thresholds: QualityThresholds,
) -> QualityReport:
    """Measure one face and list, in plain sentences, every limit it falls outside."""
    eyes = eye_distance_px(landmarks)
    sharp = sharpness(chip)
    yaw = yaw_degrees(landmarks)
    roll = roll_degrees(landmarks)
    return QualityReport(
        eye_distance_px=eyes,
        sharpness=sharp,
        yaw_degrees=yaw,
        roll_degrees=roll,
        detector_confidence=detector_confidence,
        reasons=quality_reasons(eyes, sharp, yaw, roll, detector_confidence, thresholds),
    )


# Limits that pass every face: for measuring the gate itself (what would it refuse?).
OPEN_GATE = QualityThresholds(
    min_eye_distance_px=0.0,
    min_sharpness=0.0,
    max_abs_yaw_degrees=90.0,
    max_abs_roll_degrees=180.0,
    min_detector_confidence=-math.inf,
)
