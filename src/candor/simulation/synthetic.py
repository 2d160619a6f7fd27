"""Synthetic gallery subjects: made-up people for simulations and benchmarks only.

Each subject gets tiny noise pictures (32x32 PNG, unique, so content addressing works as
for any photo) and one template per picture of the engine model's dimension. Templates
are identity-clustered: every subject has a centre, and its templates lie close around
it, so two templates of one subject score about SAME_SUBJECT_COSINE and two subjects
about BETWEEN_SUBJECTS_COSINE, roughly as the model's real templates do.

This module only draws them; the workflow writes them
(candor.workflow.synthetic.enrol_synthetic_subjects: the workspace purpose, the
permission, provenance, the vault, the rows, the audit entries and the index).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from candor.workflow import Actor, Workflow, WorkflowError
from candor.workflow.synthetic import (
    IMAGE_SIDE,
    SYNTHETIC_DETECTOR,
    SYNTHETIC_PURPOSES,
    SYNTHETIC_RECIPE,
    SyntheticDataRefusedError,
    SyntheticSubject,
    check_synthetic_allowed,
    enrol_synthetic_subjects,
)

# The length of dlib ResNet templates as the model emits them; the index normalises,
# but stored vectors should look like the model's.
TEMPLATE_NORM = 1.46
SAME_SUBJECT_COSINE = 0.95
BETWEEN_SUBJECTS_COSINE = 0.75
DEFAULT_BATCH = 500


@dataclass(frozen=True)
class SyntheticLoad:
    """What one load added, by count and reference range (no vectors)."""

    subjects: int
    images: int
    templates: int
    batches: int
    first_ref: str
    last_ref: str
    source_type: str
    model: str
    seed: int


Progress = Callable[[int, int], None]


def synthetic_ref(prefix: str, number: int) -> str:
    """The external reference of synthetic subject `number` (from 1)."""
    return f"{prefix}-{number:06d}"


def synthetic_templates(subjects: int, per_subject: int, dimension: int, seed: int) -> np.ndarray:
    """(subjects, per_subject, dimension) float32 templates, clustered by subject.

    A shared population direction, each subject's centre at BETWEEN_SUBJECTS_COSINE from
    the others on average, each template at SAME_SUBJECT_COSINE from its subject's
    others, all scaled to TEMPLATE_NORM. The same seed gives the same vectors.
    """
    rng = np.random.default_rng(seed)
    population = _unit(rng.standard_normal(dimension))
    # Two independent unit vectors in many dimensions are nearly orthogonal, so mixing
    # in a shared part with weight sqrt(c) gives pairs a cosine of about c.
    shared, own = np.sqrt(BETWEEN_SUBJECTS_COSINE), np.sqrt(1 - BETWEEN_SUBJECTS_COSINE)
    centres = _unit(shared * population + own * _unit(rng.standard_normal((subjects, dimension))))
    close, spread = np.sqrt(SAME_SUBJECT_COSINE), np.sqrt(1 - SAME_SUBJECT_COSINE)
    noise = _unit(rng.standard_normal((subjects, per_subject, dimension)))
    vectors = _unit(close * centres[:, None, :] + spread * noise)
    lengths = TEMPLATE_NORM * (1 + 0.02 * rng.standard_normal((subjects, per_subject, 1)))
    return (vectors * lengths).astype(np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / norms, dtype=np.float64)


def noise_png(rng: np.random.Generator) -> bytes:
    """A 32x32 RGB noise picture as PNG: unique bytes, nobody's face."""
    pixels = rng.integers(0, 256, size=(IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def load_synthetic_gallery(
    workflow: Workflow,
    actor: Actor,
    *,
    subjects: int = 2000,
    images_per_subject: int = 1,
    seed: int = 0,
    prefix: str = "SYN",
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    one_at_a_time: bool = False,
) -> SyntheticLoad:
    """Add `subjects` synthetic subjects with `images_per_subject` pictures each.

    actor: an admin (the policy's `gallery.enrol`), recorded as who enrolled them.
    seed: fixes the pictures and templates; a second load needs another prefix (an
        existing reference is refused before anything is written).
    progress: called with (subjects done, subjects) after each batch.
    one_at_a_time: add each row and file on its own (the path before bulk loading, kept
        as a baseline for benchmarks and tests); the gallery and the log are the same.
    """
    check_synthetic_allowed(workflow)
    if subjects < 1 or images_per_subject < 1 or batch_size < 1:
        raise WorkflowError("subjects, images per subject and batch size must be 1 or more")
    first, last = synthetic_ref(prefix, 1), synthetic_ref(prefix, subjects)
    dimension = workflow.engine.model.dimension

    def batches() -> Iterator[list[SyntheticSubject]]:
        # Drawn only once the workflow has accepted the load, batch by batch as written.
        vectors = synthetic_templates(subjects, images_per_subject, dimension, seed)
        pictures = np.random.default_rng([seed, 1])
        for start in range(0, subjects, batch_size):
            stop = min(start + batch_size, subjects)
            yield [
                SyntheticSubject(
                    synthetic_ref(prefix, number + 1),
                    tuple(noise_png(pictures) for _ in vectors[number]),
                    vectors[number],
                )
                for number in range(start, stop)
            ]

    loaded = enrol_synthetic_subjects(
        workflow,
        actor,
        batches(),
        first_ref=first,
        last_ref=last,
        source_ref=f"synthetic subjects {prefix}, seed {seed}",
        seed=seed,
        progress=None if progress is None else lambda done: progress(done, subjects),
        one_at_a_time=one_at_a_time,
    )
    return SyntheticLoad(
        subjects=loaded.subjects,
        images=loaded.images,
        templates=loaded.templates,
        batches=loaded.batches,
        first_ref=first,
        last_ref=last,
        source_type=loaded.source_type,
        model=loaded.model,
        seed=seed,
    )


__all__ = [
    "BETWEEN_SUBJECTS_COSINE",
    "DEFAULT_BATCH",
    "IMAGE_SIDE",
    "SAME_SUBJECT_COSINE",
    "SYNTHETIC_DETECTOR",
    "SYNTHETIC_PURPOSES",
    "SYNTHETIC_RECIPE",
    "TEMPLATE_NORM",
    "SyntheticDataRefusedError",
    "SyntheticLoad",
    "load_synthetic_gallery",
    "noise_png",
    "synthetic_ref",
    "synthetic_templates",
]
