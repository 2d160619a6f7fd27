"""Score calibration: how often two different people's templates score above a threshold.

A calibration is the impostor score distribution's upper tail, measured on a labelled
folder: for per-comparison false match rates from 1e-1 down to what the number of
impostor pairs can resolve, the cosine threshold that gives each. The workflow turns it
into a 1:N threshold for a gallery of a given size (see candor.workflow.calibration).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from candor.evaluation.cache import extract_photos
from candor.evaluation.identification import list_people
from candor.faces import EngineSettings, FaceEngine

# Per-comparison false match rates tabulated: 8 points per decade.
_POINTS_PER_DECADE = 8
_MIN_PAIRS_PER_POINT = 10  # a rate is tabulated only where >= 10 impostor pairs exceed it
_BLOCK = 2048


@dataclass(frozen=True)
class CalibrationTable:
    """Cosine thresholds at per-comparison false match rates, for one model."""

    model_key: str
    dataset: str
    dataset_sha256: str
    templates: int
    impostor_pairs: int
    points: tuple[tuple[float, float], ...]  # (false match rate, cosine threshold), rate falling

    def to_json(self) -> str:
        """The table as JSON text (what is stored and shipped)."""
        return json.dumps(
            {
                "model_key": self.model_key,
                "dataset": self.dataset,
                "dataset_sha256": self.dataset_sha256,
                "templates": self.templates,
                "impostor_pairs": self.impostor_pairs,
                "points": [[rate, threshold] for rate, threshold in self.points],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> CalibrationTable:
        """Parse `to_json`'s output."""
        raw: dict[str, Any] = json.loads(text)
        return cls(
            model_key=str(raw["model_key"]),
            dataset=str(raw["dataset"]),
            dataset_sha256=str(raw["dataset_sha256"]),
            templates=int(raw["templates"]),
            impostor_pairs=int(raw["impostor_pairs"]),
            points=tuple((float(rate), float(threshold)) for rate, threshold in raw["points"]),
        )


def impostor_threshold_points(
    vectors: npt.NDArray[np.floating], labels: npt.NDArray[np.str_]
) -> tuple[int, tuple[tuple[float, float], ...]]:
    """(impostor pair count, points) from templates and their people's labels.

    Every pair of templates of two different people is compared; the pairs are scored in
    blocks so memory stays at a few blocks' worth even for tens of thousands of templates.
    """
    unit = np.asarray(vectors, dtype=np.float32)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    count = len(unit)
    # Enough of the upper tail to resolve the smallest tabulated rate.
    pairs_total = count * (count - 1) // 2
    keep = max(1000, min(pairs_total, 2_000_000))
    tail = np.empty(0, dtype=np.float32)
    impostor_pairs = 0
    for start in range(0, count, _BLOCK):
        block = unit[start : start + _BLOCK] @ unit[start:].T
        rows, cols = np.triu_indices(block.shape[0], k=1, m=block.shape[1])
        different = labels[start + rows] != labels[start + cols]
        scores = block[rows[different], cols[different]]
        impostor_pairs += len(scores)
        tail = np.concatenate([tail, scores])
        if len(tail) > keep:
            tail = np.partition(tail, len(tail) - keep)[-keep:]
    tail = np.sort(tail)[::-1]
    points: list[tuple[float, float]] = []
    decades = math.log10(impostor_pairs / _MIN_PAIRS_PER_POINT) if impostor_pairs else 0.0
    for step in range(_POINTS_PER_DECADE, int(decades * _POINTS_PER_DECADE) + 1):
        rate = 10 ** (-step / _POINTS_PER_DECADE)
        allowed = math.floor(rate * impostor_pairs)
        if allowed >= len(tail):
            continue
        # Just above the (allowed+1)-th highest score: at most `allowed` pairs reach it.
        points.append((rate, float(np.nextafter(tail[allowed], np.float32(np.inf)))))
    return impostor_pairs, tuple(points)


def calibrate_folder(
    dataset_dir: Path,
    settings: EngineSettings | None = None,
    *,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationTable:
    """A calibration from every usable photo of a labelled folder (one folder per person)."""
    chosen = settings or EngineSettings()
    listed = list_people(dataset_dir)
    paths = [photo for _, photos in listed for photo in photos]
    names = [name for name, photos in listed for _ in photos]
    outcomes = extract_photos(paths, chosen, cache_dir, workers=workers, progress=progress)
    usable = [
        (o.vector, name) for o, name in zip(outcomes, names, strict=True) if o.vector is not None
    ]
    if len(usable) < 2:
        raise ValueError(f"{dataset_dir} has fewer than two usable photos to calibrate on")
    vectors = np.stack([vector for vector, _ in usable])
    labels = np.array([name for _, name in usable])
    impostor_pairs, points = impostor_threshold_points(vectors, labels)
    digest = hashlib.sha256()
    for outcome in outcomes:
        digest.update((outcome.sha256 or "-").encode())
    return CalibrationTable(
        model_key=FaceEngine(chosen).model.key,
        dataset=str(dataset_dir),
        dataset_sha256=digest.hexdigest(),
        templates=len(usable),
        impostor_pairs=impostor_pairs,
        points=points,
    )
