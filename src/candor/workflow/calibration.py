"""The 1:N threshold for the gallery as it is now, from a target FPIR and a calibration.

The policy sets a target false positive identification rate (FPIR): the share of
searches for someone not enrolled that return a false candidate. With a gallery of N
templates and a per-comparison false match rate p, FPIR = 1 - (1 - p)^N if comparisons
are independent, so p = 1 - (1 - FPIR)^(1/N); the threshold is the calibration's cosine
at that p, interpolated in log(p). As the gallery grows, p falls and the threshold rises,
so the threshold keeps its meaning. Where p is below what the calibration resolves, the
highest tabulated threshold is used and the choice says it is an extrapolation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from importlib.resources import files

from candor.evaluation.calibration import CalibrationTable

DEFAULT_CALIBRATION = "default-calibration.json"


@dataclass(frozen=True)
class ThresholdChoice:
    """A 1:N cosine threshold and the facts that give it meaning."""

    cosine: float
    target_fpir: float
    gallery_size: int
    per_comparison_fmr: float
    calibration: str
    extrapolated: bool

    @property
    def meaning(self) -> str:
        """One sentence for the candidate list."""
        per_hundred = self.target_fpir * 100
        sentence = (
            f"at this threshold ({self.cosine:.4f}), about {per_hundred:.2g} in 100 searches "
            f"for someone not enrolled return a false candidate, for a gallery of "
            f"{self.gallery_size:,} templates ({self.calibration})"
        )
        if self.extrapolated:
            sentence += (
                "; the gallery is larger than the calibration resolves, so the threshold is "
                "the calibration's highest and the true rate may differ"
            )
        return sentence

    def to_dict(self) -> dict[str, object]:
        """For the search record and its audit entry (numbers as text: no floats in audit)."""
        return {
            "cosine": f"{self.cosine:.6f}",
            "target_fpir": f"{self.target_fpir:g}",
            "gallery_size": self.gallery_size,
            "per_comparison_fmr": f"{self.per_comparison_fmr:.3e}",
            "calibration": self.calibration,
            "extrapolated": self.extrapolated,
        }


def shipped_calibration() -> CalibrationTable:
    """The calibration that ships with Candor (dlib ResNet on lfw-dev; see bench/)."""
    text = files("candor.workflow").joinpath("data", DEFAULT_CALIBRATION).read_text()
    return CalibrationTable.from_json(text)


def threshold_for_gallery(
    table: CalibrationTable, gallery_size: int, target_fpir: float
) -> ThresholdChoice:
    """The cosine threshold giving `target_fpir` for a gallery of `gallery_size` templates."""
    if not 0 < target_fpir < 1:
        raise ValueError(f"target FPIR must be between 0 and 1, not {target_fpir}")
    if not table.points:
        raise ValueError(f"calibration {table.dataset} has no tabulated points")
    size = max(gallery_size, 1)
    rate = -math.expm1(math.log1p(-target_fpir) / size)
    described = (
        f"calibration on {table.dataset}: {table.impostor_pairs:,} impostor pairs, "
        f"model {table.model_key}"
    )
    points = table.points  # rate falling, threshold rising
    if rate >= points[0][0]:
        return ThresholdChoice(points[0][1], target_fpir, gallery_size, rate, described, False)
    if rate <= points[-1][0]:
        extrapolated = rate < points[-1][0]
        return ThresholdChoice(
            points[-1][1], target_fpir, gallery_size, rate, described, extrapolated
        )
    for (high_rate, low_threshold), (low_rate, high_threshold) in itertools.pairwise(points):
        if low_rate <= rate <= high_rate:
            weight = (math.log(high_rate) - math.log(rate)) / (
                math.log(high_rate) - math.log(low_rate)
            )
            cosine = low_threshold + weight * (high_threshold - low_threshold)
            return ThresholdChoice(cosine, target_fpir, gallery_size, rate, described, False)
    raise AssertionError("unreachable: the rate lies within the table")
