"""Face engine: detection, landmarks, alignment, quality gate, templates, model registry.

Nothing loads at import time: models load inside a `FaceEngine`, on first use.
"""

from candor.faces.engine import EngineSettings, FaceEngine, choose_face
from candor.faces.protocols import FaceDetector, FaceEmbedder, KeypointDetector, LandmarkModel
from candor.faces.quality import QualityThresholds
from candor.faces.records import (
    KEYPOINT_NAMES,
    DetectedFace,
    FaceBox,
    QualityReport,
    Template,
)
from candor.faces.registry import ModelId, ModelMismatchError, dlib_resnet_model_id
from candor.faces.scores import cosine_score, cosine_scores, euclidean_distance

__all__ = [
    "KEYPOINT_NAMES",
    "DetectedFace",
    "EngineSettings",
    "FaceBox",
    "FaceDetector",
    "FaceEmbedder",
    "FaceEngine",
    "KeypointDetector",
    "LandmarkModel",
    "ModelId",
    "ModelMismatchError",
    "QualityReport",
    "QualityThresholds",
    "Template",
    "choose_face",
    "cosine_score",
    "cosine_scores",
    "dlib_resnet_model_id",
    "euclidean_distance",
]
