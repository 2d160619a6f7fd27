"""Accuracy of a face model and its settings on a labelled folder, in scratch space.

Computes only: running an evaluation as an audited action belongs to the workflow.
"""

from candor.evaluation.acceptance import QualityAcceptance, quality_acceptance
from candor.evaluation.cache import PhotoOutcome, default_cache_dir, extract_photos
from candor.evaluation.identification import (
    IdentificationReport,
    MatedSearch,
    NonMatedSearch,
    OperatingPoint,
    ProtocolPlan,
    fnir_at,
    fpir_at,
    plan_identification_protocol,
    run_identification_protocol,
    threshold_at_fpir,
)

__all__ = [
    "IdentificationReport",
    "MatedSearch",
    "NonMatedSearch",
    "OperatingPoint",
    "PhotoOutcome",
    "ProtocolPlan",
    "QualityAcceptance",
    "default_cache_dir",
    "extract_photos",
    "fnir_at",
    "fpir_at",
    "plan_identification_protocol",
    "quality_acceptance",
    "run_identification_protocol",
    "threshold_at_fpir",
]
