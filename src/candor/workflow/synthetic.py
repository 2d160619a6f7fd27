"""Synthetic gallery subjects: made-up people for simulations and benchmarks only.

Each subject gets a tiny noise picture (32x32 PNG, unique, so content addressing works
as for any photo) stored in the vault like any gallery image, and one template per
picture of the engine model's dimension. Templates are identity-clustered: every
subject has a centre, and its templates lie close around it, so two templates of one
subject score about SAME_SUBJECT_COSINE and two subjects about BETWEEN_SUBJECTS_COSINE,
roughly as the model's real templates do. No face was ever detected: the template's
detector key and recipe say "synthetic", and the images carry the workspace's purpose
as their source type, so they can never be mistaken for photos of people.

Only `simulation` and `benchmark` workspaces accept them (DESIGN.md, Workspaces).
Loading is audited: one `gallery.synthetic_loaded` entry per batch, naming each image
and its subject by internal id (as `gallery.enrolled` does one by one).

A batch is written in bulk: its pictures into the vault with one round of fsyncs
(candor.store.vault_batch), its rows by three multi-row INSERTs (add_gallery_bulk), its
audit entry, one commit; the index takes the batch once it has committed. The former
row-at-a-time, file-at-a-time path stays behind `one_at_a_time=True` as the benchmark's
baseline (bench/gallery_load.py) and the tests' reference for what a gallery must hold.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from PIL import Image

from candor.policy import gallery_retain_until_limit
from candor.store import (
    GalleryError,
    Provenance,
    add_gallery_image,
    add_template,
    find_subject,
    get_or_create_subject,
    image_by_sha256,
    sha256_hex,
    validate_provenance,
)
from candor.store.gallery import BulkImage, BulkSubject, add_gallery_bulk
from candor.store.vault_batch import start_put_new_images
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.permissions import require_permission

SYNTHETIC_PURPOSES = ("simulation", "benchmark")
SYNTHETIC_RECIPE = "synthetic"
SYNTHETIC_DETECTOR = "synthetic (no face detected)"
IMAGE_SIDE = 32
# The length of dlib ResNet templates as the model emits them; the index normalises,
# but stored vectors should look like the model's.
TEMPLATE_NORM = 1.46
SAME_SUBJECT_COSINE = 0.95
BETWEEN_SUBJECTS_COSINE = 0.75
DEFAULT_BATCH = 500
RETAIN_DAYS = 3650


class SyntheticDataRefusedError(WorkflowError):
    """Synthetic subjects were offered to a workspace that may not hold them."""


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


def check_synthetic_allowed(workflow: Workflow) -> None:
    """Refuse unless the workspace's purpose is one that holds synthetic subjects."""
    purpose = workflow.workspace.purpose
    if purpose not in SYNTHETIC_PURPOSES:
        raise SyntheticDataRefusedError(
            f"synthetic subjects may only enter a {' or '.join(SYNTHETIC_PURPOSES)} "
            f"workspace; this one is {purpose}"
        )


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
    policy = require_permission(workflow, actor, "gallery.enrol")
    workspace = workflow.workspace
    source_type = workspace.purpose
    if source_type not in policy.gallery_source_types:
        raise SyntheticDataRefusedError(
            f"the active policy does not allow gallery source type {source_type!r}; "
            f"it allows {', '.join(sorted(policy.gallery_source_types))}"
        )
    today = workflow.today()
    retain_until = today + timedelta(days=RETAIN_DAYS)
    limit = gallery_retain_until_limit(policy, today)
    if limit is not None:
        retain_until = min(retain_until, limit)
    provenance = validate_provenance(
        Provenance(
            source_type=source_type,
            source_ref=f"synthetic subjects {prefix}, seed {seed}",
            legal_basis="synthetic data made by Candor: no real person",
            collected_on=today,
            retain_until=retain_until,
        ),
        allowed_source_types=(source_type,),
        today=today,
    )
    first, last = synthetic_ref(prefix, 1), synthetic_ref(prefix, subjects)
    with workspace.session() as session:
        for ref in (first, last):
            if find_subject(session, ref) is not None:
                raise WorkflowError(
                    f"subject {ref} already exists: load synthetic subjects under another prefix"
                )
    model = workflow.engine.model
    vectors = synthetic_templates(subjects, images_per_subject, model.dimension, seed)
    pictures = np.random.default_rng([seed, 1])
    batches = 0
    for start in range(0, subjects, batch_size):
        stop = min(start + batch_size, subjects)
        load = _load_batch_one_at_a_time if one_at_a_time else _load_batch
        load(workflow, actor, provenance, prefix, start, stop, vectors, pictures, seed)
        batches += 1
        if progress is not None:
            progress(stop, subjects)
    return SyntheticLoad(
        subjects=subjects,
        images=subjects * images_per_subject,
        templates=subjects * images_per_subject,
        batches=batches,
        first_ref=first,
        last_ref=last,
        source_type=source_type,
        model=model.key,
        seed=seed,
    )


def _load_batch(
    workflow: Workflow,
    actor: Actor,
    provenance: Provenance,
    prefix: str,
    start: int,
    stop: int,
    vectors: np.ndarray,
    pictures: np.random.Generator,
    seed: int,
) -> None:
    """Subjects start..stop-1 in one transaction: files synced together, rows in bulk."""
    workspace = workflow.workspace
    vault = workspace.vault
    model = workflow.engine.model
    today, now = workflow.today(), workflow.now()
    # Drawn in the order the one-at-a-time path draws them: the same seed, the same files.
    batch: list[BulkSubject] = []
    files: list[tuple[str, bytes]] = []
    for number in range(start, stop):
        images = []
        for vector in vectors[number]:
            data = noise_png(pictures)
            sha256 = sha256_hex(data)
            files.append((sha256, data))
            images.append(BulkImage(sha256, len(data), vault.encode_template(vector)))
        batch.append(BulkSubject(synthetic_ref(prefix, number + 1), images))
    # The files are written while the rows are inserted, and durable before the commit.
    writing = start_put_new_images(vault, files)
    written: list[str] = []
    try:
        with workspace.session() as session, session.begin():
            rows = add_gallery_bulk(
                session,
                batch,
                image_format="PNG",
                width=IMAGE_SIDE,
                height=IMAGE_SIDE,
                provenance=provenance,
                allowed_source_types=(provenance.source_type,),
                today=today,
                enrolled_by=actor.username,
                enrolled_at=now,
                face_choice="largest-central",
                face_box=(0, 0, IMAGE_SIDE, IMAGE_SIDE),
                quality={"synthetic": True},
                model=model,
                detector_key=SYNTHETIC_DETECTOR,
                recipe=SYNTHETIC_RECIPE,
            )
            record(
                session,
                workflow,
                actor.username,
                "gallery.synthetic_loaded",
                {"first_subject": rows[0].subject_id, "last_subject": rows[-1].subject_id},
                {
                    "subjects": stop - start,
                    "image_ids": [row.image_id for row in rows],
                    "image_subjects": [row.subject_id for row in rows],
                    "templates": len(rows),
                    "source_type": provenance.source_type,
                    "recipe": SYNTHETIC_RECIPE,
                    "model": model.key,
                    "seed": seed,
                    "synthetic": True,
                },
            )
            written = writing.result()
    except GalleryError as error:
        _erase_unreferenced(workflow, _finished(writing))
        raise WorkflowError(f"{error}: load synthetic subjects under another prefix") from error
    except BaseException:
        _erase_unreferenced(workflow, written or _finished(writing))
        raise
    if workflow.index_loaded and rows:
        workflow.index.add(
            [row.template_id for row in rows],
            vectors[start:stop].reshape(-1, model.dimension),
        )


def _load_batch_one_at_a_time(
    workflow: Workflow,
    actor: Actor,
    provenance: Provenance,
    prefix: str,
    start: int,
    stop: int,
    vectors: np.ndarray,
    pictures: np.random.Generator,
    seed: int,
) -> None:
    workspace = workflow.workspace
    vault = workspace.vault
    model = workflow.engine.model
    today, now = workflow.today(), workflow.now()
    written: list[str] = []
    added: list[tuple[int, np.ndarray]] = []
    subject_ids: list[int] = []
    # Every image by id with its subject: reports reconcile the gallery against the log.
    image_ids: list[int] = []
    image_subjects: list[int] = []
    try:
        with workspace.session() as session, session.begin():
            for number in range(start, stop):
                ref = synthetic_ref(prefix, number + 1)
                subject, created = get_or_create_subject(session, ref, actor.username)
                if not created:
                    raise WorkflowError(
                        f"subject {ref} already exists: load synthetic subjects under "
                        "another prefix"
                    )
                subject.created_at = now
                subject_ids.append(subject.id)
                for vector in vectors[number]:
                    data = noise_png(pictures)
                    sha256 = sha256_hex(data)
                    vault.put_image(sha256, data)
                    written.append(sha256)
                    image = add_gallery_image(
                        session,
                        subject,
                        sha256=sha256,
                        image_format="PNG",
                        width=IMAGE_SIDE,
                        height=IMAGE_SIDE,
                        byte_size=len(data),
                        provenance=provenance,
                        allowed_source_types=(provenance.source_type,),
                        today=today,
                        enrolled_by=actor.username,
                        face_choice="largest-central",
                        face_box=(0, 0, IMAGE_SIDE, IMAGE_SIDE),
                        quality={"synthetic": True},
                        enrolled_at=now,
                    )
                    template = add_template(
                        session,
                        image,
                        model=model,
                        detector_key=SYNTHETIC_DETECTOR,
                        recipe=SYNTHETIC_RECIPE,
                        vector=vector,
                        vault=vault,
                    )
                    template.created_at = now
                    added.append((template.id, vector))
                    image_ids.append(image.id)
                    image_subjects.append(subject.id)
            record(
                session,
                workflow,
                actor.username,
                "gallery.synthetic_loaded",
                {"first_subject": subject_ids[0], "last_subject": subject_ids[-1]},
                {
                    "subjects": stop - start,
                    "image_ids": image_ids,
                    "image_subjects": image_subjects,
                    "templates": len(added),
                    "source_type": provenance.source_type,
                    "recipe": SYNTHETIC_RECIPE,
                    "model": model.key,
                    "seed": seed,
                    "synthetic": True,
                },
            )
    except BaseException:
        _erase_unreferenced(workflow, written)
        raise
    if workflow.index_loaded and added:
        workflow.index.add(
            [template_id for template_id, _ in added], np.stack([v for _, v in added])
        )


def _finished(writing: Future[list[str]]) -> list[str]:
    """The files a background write made, once it is over (none if it failed: it erased
    its own)."""
    try:
        return writing.result()
    except BaseException:
        return []


def _erase_unreferenced(workflow: Workflow, hashes: list[str]) -> None:
    """Erase pictures written for a batch whose rows did not commit."""
    with workflow.workspace.session() as session:
        orphans = [sha256 for sha256 in hashes if image_by_sha256(session, sha256) is None]
    for sha256 in orphans:
        workflow.workspace.vault.erase_image(sha256)
