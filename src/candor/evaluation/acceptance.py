"""How many photos the quality gate accepts, and which checks refuse the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from candor.evaluation.cache import PhotoOutcome
from candor.faces import QualityReport, QualityThresholds

CHECKS = ("eye_distance", "sharpness", "yaw", "roll", "detector_confidence")


def failed_checks(quality: QualityReport, thresholds: QualityThresholds) -> tuple[str, ...]:
    """Names (from CHECKS) of the limits this face falls outside."""
    failed = []
    if quality.eye_distance_px < thresholds.min_eye_distance_px:
        failed.append("eye_distance")
    if quality.sharpness < thresholds.min_sharpness:
        failed.append("sharpness")
    if abs(quality.yaw_degrees) > thresholds.max_abs_yaw_degrees:
        failed.append("yaw")
    if abs(quality.roll_degrees) > thresholds.max_abs_roll_degrees:
        failed.append("roll")
    if quality.detector_confidence < thresholds.min_detector_confidence:
        failed.append("detector_confidence")
    return tuple(failed)


@dataclass(frozen=True)
class QualityAcceptance:
    """The gate's verdict on the chosen face of each photo.

    acceptance_of_faces: accepted / photos where a face was found (the gate's own rate).
    acceptance_of_photos: accepted / all photos (also counts decode failures and photos
    where the detector found nothing).
    refused_by: per check, how many chosen faces fail it (a face may fail several).
    """

    photos: int
    decoded: int
    with_face: int
    accepted: int
    refused_by: dict[str, int]

    @property
    def acceptance_of_faces(self) -> float:
        return self.accepted / self.with_face if self.with_face else 0.0

    @property
    def acceptance_of_photos(self) -> float:
        return self.accepted / self.photos if self.photos else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "photos": self.photos,
            "decoded": self.decoded,
            "with_face": self.with_face,
            "accepted": self.accepted,
            "acceptance_of_faces": self.acceptance_of_faces,
            "acceptance_of_photos": self.acceptance_of_photos,
            "refused_by": dict(self.refused_by),
        }


def quality_acceptance(
    outcomes: Sequence[PhotoOutcome], thresholds: QualityThresholds
) -> QualityAcceptance:
    """Count the gate's acceptance over the chosen face of every photo."""
    refused_by = dict.fromkeys(CHECKS, 0)
    decoded = with_face = accepted = 0
    for outcome in outcomes:
        if outcome.sha256 is not None:
            decoded += 1
        if outcome.quality is None:
            continue
        with_face += 1
        failed = failed_checks(outcome.quality, thresholds)
        if not failed:
            accepted += 1
        for name in failed:
            refused_by[name] += 1
    return QualityAcceptance(len(outcomes), decoded, with_face, accepted, refused_by)
