"""Each model's own 1:1 threshold and repeat-search similarity, and where the numbers come
from.

1:N search thresholds are set by policy from a target FPIR and the gallery's size
(candor.workflow.calibration); this module holds what else depends on the model in use:
- the 1:1 threshold that `verify` uses: the model's active `ModelCalibration` (from
  `candor calibrate --model`), else, for dlib only, the shipped figures below;
- the repeat-search similarity: the policy's `repeat.similarity` is a cosine of dlib's
  templates; for any calibrated model it becomes the cosine at which that model passes
  the same share of impostor pairs (docs/scores.md). dlib without a calibration of its
  own uses the policy's value as it stands.
A model that is neither dlib nor calibrated has no such numbers: asking for them is an
error naming the command that records them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from candor.store.face_models import (
    BUILTIN_MODEL_NAME,
    ModelCalibration,
    active_model_calibration,
)
from candor.workflow.calibration import (
    REPEAT_RULE,
    RepeatSimilarity,
    active_calibration,
    derive_repeat_similarity,
    is_builtin,
    is_calibrated,
    model_name,
)
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError

__all__ = [
    "VERIFY_THRESHOLD",
    "RepeatSimilarity",
    "VerifyThreshold",
    "is_calibrated",
    "model_name",
    "repeat_similarity",
    "verify_threshold",
]


@dataclass(frozen=True)
class VerifyThreshold:
    """A cosine threshold with the measurement that gives it meaning, for one model."""

    cosine: float
    false_match_rate: float
    false_non_match_rate: float
    measured_on: str
    model_name: str = BUILTIN_MODEL_NAME
    model_key: str = ""

    @property
    def model(self) -> str:
        """The model as a person reads it: its registry name and, when known, its key."""
        return f"{self.model_name} ({self.model_key})" if self.model_key else self.model_name

    @property
    def meaning(self) -> str:
        """One sentence a person can read next to a verdict."""
        return (
            f"at cosine {self.cosine:.3f}, about 1 in {round(1 / self.false_match_rate):,} "
            f"comparisons of two different people pass, and about "
            f"{self.false_non_match_rate * 100:.0f} in 100 of the same person fail "
            f"(model {self.model}, {self.measured_on})"
        )


# From bench/verification_lfw.py (bench/results/verification_lfw.json): the threshold
# at a false match rate of 1e-3 over 7,019,777 impostor pairs of lfw-dev photos; the
# false non-match rate over LFW's 1,500 matched pairs counts photos without a usable
# face as failures. dlib's customary distance 0.6 would pass far more impostors.
# dlib's default only: every other model's comes from its own calibration.
VERIFY_THRESHOLD = VerifyThreshold(
    cosine=0.926,
    false_match_rate=0.001,
    false_non_match_rate=0.072,
    measured_on="measured on the lfw-dev photos with default settings",
)


def _uncalibrated(session: Session, model_key: str, what: str) -> WorkflowError:
    name = model_name(session, model_key)
    return WorkflowError(
        f"model {name} ({model_key}) has no {what} of its own; record its calibration with "
        f"`candor calibrate DIR --model {name}`"
    )


def verify_threshold(workflow: Workflow, session: Session) -> VerifyThreshold:
    """The 1:1 threshold of the engine's model, as `session`'s transaction sees it."""
    model_key = workflow.engine.model.key
    row = active_model_calibration(session, model_key)
    name = model_name(session, model_key)
    if row is not None:
        return VerifyThreshold(
            cosine=row.verify_threshold,
            false_match_rate=row.verify_false_match_rate,
            false_non_match_rate=row.verify_false_non_match_rate,
            measured_on=(
                f"measured on {row.dataset}: {row.impostor_pairs:,} impostor pairs, "
                f"{row.mated_pairs:,} mated pairs"
            ),
            model_name=name,
            model_key=model_key,
        )
    if is_builtin(model_key):
        return replace(VERIFY_THRESHOLD, model_name=name, model_key=model_key)
    raise _uncalibrated(session, model_key, "1:1 threshold")


def repeat_similarity(
    workflow: Workflow, session: Session, policy_similarity: float
) -> RepeatSimilarity:
    """The repeat-search cosine of the engine's model for the policy's `repeat.similarity`.

    dlib without a calibration of its own: the policy's value. A calibrated model: the
    value its calibration stored, or, when the policy's value changed since, the same
    rule applied again to its active cosine calibration.
    """
    model_key = workflow.engine.model.key
    row = active_model_calibration(session, model_key)
    if row is None:
        if is_builtin(model_key):
            return RepeatSimilarity(policy_similarity, policy_similarity, math.nan, False)
        raise _uncalibrated(session, model_key, "repeat-search similarity")
    stored = _stored_rule(row)
    if stored is not None and stored.policy_similarity == policy_similarity:
        return stored
    return derive_repeat_similarity(
        policy_similarity, active_calibration(workflow, "cosine", session)
    )


def _stored_rule(row: ModelCalibration) -> RepeatSimilarity | None:
    rule = (row.details or {}).get(REPEAT_RULE)
    if not isinstance(rule, dict):
        return None
    try:
        return RepeatSimilarity(
            similarity=row.repeat_similarity,
            policy_similarity=float(rule["policy_similarity"]),
            impostor_rate=float(rule["impostor_rate"]),
            extrapolated=bool(rule["extrapolated"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
