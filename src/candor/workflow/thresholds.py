"""The 1:1 verification threshold, and where its number comes from.

1:N search thresholds are set by policy from a target FPIR and the gallery's size (the
accountable-search issue); this module holds only the 1:1 threshold that `verify` uses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerifyThreshold:
    """A cosine threshold with the measurement that gives it meaning."""

    cosine: float
    false_match_rate: float
    false_non_match_rate: float
    measured_on: str

    @property
    def meaning(self) -> str:
        """One sentence a person can read next to a verdict."""
        return (
            f"at cosine {self.cosine:.3f}, about 1 in {round(1 / self.false_match_rate):,} "
            f"comparisons of two different people pass, and about "
            f"{self.false_non_match_rate * 100:.0f} in 100 of the same person fail "
            f"({self.measured_on})"
        )


# From bench/verification_lfw.py (bench/results/verification_lfw.json): the threshold
# at a false match rate of 1e-3 over 7,019,777 impostor pairs of lfw-dev photos; the
# false non-match rate over LFW's 1,500 matched pairs counts photos without a usable
# face as failures. dlib's customary distance 0.6 would pass far more impostors.
VERIFY_THRESHOLD = VerifyThreshold(
    cosine=0.926,
    false_match_rate=0.001,
    false_non_match_rate=0.072,
    measured_on="measured on the lfw-dev photos with dlib ResNet and default settings",
)
