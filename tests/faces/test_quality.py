from __future__ import annotations

import numpy as np
import pytest

from candor.faces import QualityThresholds
from candor.faces.quality import (
    OPEN_GATE,
    assess_quality,
    eye_distance_px,
    judge_quality,
    roll_degrees,
    sharpness,
    yaw_degrees,
)
from tests.faces.helpers import frontal_landmarks

SHARP_CHIP = np.zeros((150, 150, 3), dtype=np.uint8)
SHARP_CHIP[::2, ::2] = 255


def rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(axis=0)
    return (points - centre) @ rotation.T + centre


def test_frontal_face_measures() -> None:
    points = frontal_landmarks(100, 100, 40)
    assert eye_distance_px(points) == pytest.approx(40)
    assert roll_degrees(points) == pytest.approx(0, abs=1e-9)
    assert yaw_degrees(points) == pytest.approx(0, abs=1e-9)


def test_roll_follows_rotation_and_yaw_ignores_it() -> None:
    points = rotated(frontal_landmarks(100, 100, 40), 20)
    assert roll_degrees(points) == pytest.approx(20)
    assert yaw_degrees(points) == pytest.approx(0, abs=1e-6)
    assert eye_distance_px(points) == pytest.approx(40)


def test_yaw_sign_and_size_follow_the_nose() -> None:
    points = frontal_landmarks(100, 100, 40)
    points[4, 0] += 40 * 0.32  # nose shifted by depth_ratio * eyes: tan(yaw) = 1
    assert yaw_degrees(points) == pytest.approx(45)
    points[4, 0] = 100 - 40 * 0.32
    assert yaw_degrees(points) == pytest.approx(-45)


def test_sharpness_of_flat_and_busy_chips() -> None:
    assert sharpness(np.full((150, 150, 3), 128, dtype=np.uint8)) == 0.0
    assert sharpness(SHARP_CHIP) > 1000


def test_a_good_face_passes_with_no_reasons() -> None:
    report = assess_quality(frontal_landmarks(100, 100, 40), SHARP_CHIP, 1.2, QualityThresholds())
    assert report.passed
    assert report.reasons == ()
    assert report.detector_confidence == 1.2


def test_each_failed_check_gives_one_human_sentence() -> None:
    points = rotated(frontal_landmarks(100, 100, 18), 40)
    blurred = np.full((150, 150, 3), 90, dtype=np.uint8)
    thresholds = QualityThresholds(min_detector_confidence=0.5)
    report = assess_quality(points, blurred, 0.25, thresholds)
    assert not report.passed
    assert report.reasons == (
        "eyes 18 px apart, below the minimum of 24 px",
        "too blurred: sharpness 0.0, below the minimum of 4",
        "head tilted 40°, beyond the maximum of 30°",
        "detector confidence 0.25, below the minimum of 0.5",
    )


def test_turned_head_is_refused_with_its_angle() -> None:
    points = frontal_landmarks(100, 100, 40)
    points[4, 0] += 40 * 0.32 * 3  # tan(yaw) = 3: about 72°
    report = assess_quality(points, SHARP_CHIP, 1.0, QualityThresholds())
    assert report.reasons == ("head turned about 72° sideways, beyond the maximum of 70°",)


def test_thresholds_key_changes_with_any_limit() -> None:
    base = QualityThresholds()
    assert base.key != QualityThresholds(min_sharpness=6).key
    assert base.key != QualityThresholds(max_abs_roll_degrees=10).key


def test_judging_again_with_other_limits_keeps_the_measures() -> None:
    points = frontal_landmarks(100, 100, 30)
    report = assess_quality(points, SHARP_CHIP, 1.0, QualityThresholds())
    assert report.passed
    strict = judge_quality(report, QualityThresholds(min_eye_distance_px=35))
    assert strict.reasons == ("eyes 30 px apart, below the minimum of 35 px",)
    assert strict.eye_distance_px == report.eye_distance_px
    assert judge_quality(strict, QualityThresholds()).passed


def test_open_gate_passes_even_a_hopeless_face() -> None:
    points = rotated(frontal_landmarks(100, 100, 3), 170)
    points[4, 0] += 50
    report = assess_quality(points, np.zeros((150, 150, 3), np.uint8), -9.0, OPEN_GATE)
    assert report.passed
