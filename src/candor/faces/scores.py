"""Scores: the cosine of L2-normalised templates, higher = more alike (see docs/scores.md).

For unit vectors the Euclidean distance d and the cosine c are tied by d^2 = 2 - 2c. dlib's
descriptors are not unit vectors (norm about 1.46); for raw descriptors of norms n1, n2 the
relation is d^2 = n1^2 + n2^2 - 2 n1 n2 c, which `euclidean_distance` keeps for comparison
with dlib's customary 1:1 threshold of 0.6.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from candor.faces.records import Template
from candor.faces.registry import require_same_model


def cosine_score(a: Template, b: Template) -> float:
    """Cosine similarity of two templates, in [-1, 1]; raises ModelMismatchError across models."""
    require_same_model(a.model, b.model)
    return float(np.clip(np.dot(a.normalised(), b.normalised()), -1.0, 1.0))


def cosine_scores(query: npt.ArrayLike, gallery: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Cosine of one (d,) query against each row of an (n, d) gallery, as (n,) float32.

    Raw vectors: both sides are normalised here. The caller guarantees one model (these are
    bare arrays; `Template`s carry the check). A zero row scores 0.
    """
    q = np.asarray(query, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    if q.ndim != 1 or g.ndim != 2 or g.shape[1] != q.shape[0]:
        raise ValueError(f"expected a (d,) query and an (n, d) gallery, got {q.shape} {g.shape}")
    q_norm = float(np.linalg.norm(q))
    if q_norm == 0.0:
        raise ValueError("a zero query vector has no direction to compare")
    g_norms = np.linalg.norm(g, axis=1)
    safe = np.where(g_norms == 0.0, 1.0, g_norms)
    scores = (g @ (q / q_norm)) / safe
    return np.clip(scores, -1.0, 1.0).astype(np.float32)


def euclidean_distance(a: Template, b: Template) -> float:
    """dlib's raw Euclidean distance between unnormalised vectors (dlib's 1:1 cut-off: 0.6)."""
    require_same_model(a.model, b.model)
    return float(np.linalg.norm(a.vector.astype(np.float64) - b.vector.astype(np.float64)))


def cosine_from_unit_distance(distance: float) -> float:
    """Cosine of two unit vectors at Euclidean distance `distance`: 1 - d^2 / 2."""
    return 1.0 - distance * distance / 2.0


def raw_distance_from_cosine(cosine: float, norm_a: float, norm_b: float) -> float:
    """Euclidean distance of raw vectors with norms n1, n2 and cosine c: sqrt(n1²+n2²-2n1n2c)."""
    squared = norm_a * norm_a + norm_b * norm_b - 2.0 * norm_a * norm_b * cosine
    return float(np.sqrt(max(squared, 0.0)))
