"""The workflow's side of synthetic data: the only place synthetic subjects and simulated
activity are written (candor.simulation makes them, and calls these like any client).

Synthetic subjects are made-up people for simulations and benchmarks only. Each has tiny
noise pictures (IMAGE_SIDE x IMAGE_SIDE PNG, unique, so content addressing works as for
any photo) stored in the vault like any gallery image, and one template per picture. No
face was ever detected: the template's detector key and recipe say "synthetic", and the
images carry the workspace's purpose as their source type, so they can never be
mistaken for photos of people.

Only `simulation` and `benchmark` workspaces accept them (DESIGN.md, Workspaces).
Loading is audited: one `gallery.synthetic_loaded` entry per batch, naming each image
and its subject by internal id (as `gallery.enrolled` does one by one).

A batch is written in bulk: its pictures into the vault with one round of fsyncs
(candor.store.vault_batch), its rows by three multi-row INSERTs (add_gallery_bulk), its
audit entry, one commit; the index takes the batch once it has committed. The former
row-at-a-time, file-at-a-time path stays behind `one_at_a_time=True` as the benchmark's
baseline (bench/gallery_load.py) and the tests' reference for what a gallery must hold.

Simulated activity (candor.simulation.activity) writes its own two log entries,
`simulation.started` and `simulation.finished`, through record_simulation_step, and
reads its counts through simulated_activity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from candor.policy import gallery_retain_until_limit, parse_policy
from candor.sealing import new_data_key
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
from candor.store.audit_log import log_size
from candor.store.gallery import BulkImage, BulkSubject, add_gallery_bulk
from candor.store.reporting import ActivityCounts, activity_counts
from candor.store.vault import template_context
from candor.store.vault_batch import start_put_new_images
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.permissions import require_permission

SYNTHETIC_PURPOSES = ("simulation", "benchmark")
SIMULATION_PURPOSE = "simulation"
SIMULATION_STEPS = ("simulation.started", "simulation.finished")
SYNTHETIC_RECIPE = "synthetic"
SYNTHETIC_DETECTOR = "synthetic (no face detected)"
IMAGE_SIDE = 32
RETAIN_DAYS = 3650


class SyntheticDataRefusedError(WorkflowError):
    """Synthetic subjects were offered to a workspace that may not hold them."""


@dataclass(frozen=True)
class SyntheticSubject:
    """One made-up subject as the simulation drew it: a reference, its pictures (PNG,
    IMAGE_SIDE square) and one template per picture, (pictures, dimension)."""

    ref: str
    pictures: tuple[bytes, ...]
    vectors: np.ndarray


@dataclass(frozen=True)
class SyntheticEnrolment:
    """What enrol_synthetic_subjects added, by count (no vectors)."""

    subjects: int
    images: int
    templates: int
    batches: int
    source_type: str
    model: str


def check_synthetic_allowed(workflow: Workflow) -> None:
    """Refuse unless the workspace's purpose is one that holds synthetic subjects."""
    purpose = workflow.workspace.purpose
    if purpose not in SYNTHETIC_PURPOSES:
        raise SyntheticDataRefusedError(
            f"synthetic subjects may only enter a {' or '.join(SYNTHETIC_PURPOSES)} "
            f"workspace; this one is {purpose}"
        )


def check_policy_text(text: str, *, file: str) -> None:
    """Raise the policy parser's one-line error unless `text` is a valid policy (a client
    writing a policy file checks it here: only the workflow uses the policy part)."""
    parse_policy(text, file=file)


def enrol_synthetic_subjects(
    workflow: Workflow,
    actor: Actor,
    batches: Iterable[Sequence[SyntheticSubject]],
    *,
    first_ref: str,
    last_ref: str,
    source_ref: str,
    seed: int,
    progress: Callable[[int], None] | None = None,
    one_at_a_time: bool = False,
) -> SyntheticEnrolment:
    """Add the synthetic subjects of `batches`, each batch in one transaction.

    actor: an admin (the policy's `gallery.enrol`), recorded as who enrolled them.
    first_ref, last_ref: the first and last subject's reference; an existing one is
        refused before anything is written (or anything of `batches` is drawn).
    source_ref: the provenance's source reference (which load, which seed).
    seed: recorded in each batch's audit entry.
    progress: called with the subjects written so far after each batch.
    one_at_a_time: add each row and file on its own (the path before bulk loading, kept
        as a baseline for benchmarks and tests); the gallery and the log are the same.
    """
    check_synthetic_allowed(workflow)
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
            source_ref=source_ref,
            legal_basis="synthetic data made by Candor: no real person",
            collected_on=today,
            retain_until=retain_until,
        ),
        allowed_source_types=(source_type,),
        today=today,
    )
    with workspace.session() as session:
        for ref in (first_ref, last_ref):
            if find_subject(session, ref) is not None:
                raise WorkflowError(
                    f"subject {ref} already exists: load synthetic subjects under another prefix"
                )
    load = _load_batch_one_at_a_time if one_at_a_time else _load_batch
    subjects = images = count = 0
    for batch in batches:
        if not batch:
            continue
        load(workflow, actor, provenance, batch, seed)
        count += 1
        subjects += len(batch)
        images += sum(len(subject.pictures) for subject in batch)
        if progress is not None:
            progress(subjects)
    return SyntheticEnrolment(
        subjects=subjects,
        images=images,
        templates=images,
        batches=count,
        source_type=source_type,
        model=workflow.engine.model.key,
    )


def _checked(workflow: Workflow, batch: Sequence[SyntheticSubject]) -> np.ndarray:
    """The batch's templates, (templates, dimension) float32, once their shapes agree."""
    dimension = workflow.engine.model.dimension
    for subject in batch:
        shape = np.shape(subject.vectors)
        if len(shape) != 2 or shape != (len(subject.pictures), dimension):
            raise WorkflowError(
                f"synthetic subject {subject.ref}: {len(subject.pictures)} pictures need "
                f"as many templates of dimension {dimension}, not an array of shape {shape}"
            )
    return np.concatenate([np.asarray(s.vectors, dtype=np.float32) for s in batch])


def _audit_details(
    workflow: Workflow,
    provenance: Provenance,
    subjects: int,
    image_ids: list[int],
    image_subjects: list[int],
    seed: int,
) -> dict[str, object]:
    return {
        "subjects": subjects,
        "image_ids": image_ids,
        "image_subjects": image_subjects,
        "templates": len(image_ids),
        "source_type": provenance.source_type,
        "recipe": SYNTHETIC_RECIPE,
        "model": workflow.engine.model.key,
        "seed": seed,
        "synthetic": True,
    }


def _load_batch(
    workflow: Workflow,
    actor: Actor,
    provenance: Provenance,
    subjects: Sequence[SyntheticSubject],
    seed: int,
) -> None:
    """One batch in one transaction: files synced together, rows in bulk."""
    vectors = _checked(workflow, subjects)
    workspace = workflow.workspace
    vault = workspace.vault
    model = workflow.engine.model
    today, now = workflow.today(), workflow.now()
    batch: list[BulkSubject] = []
    files: list[tuple[str, bytes, bytes]] = []
    for subject in subjects:
        # Made before the subject's row exists, so its pictures are sealed before the
        # transaction; add_gallery_bulk stores it (wrapped) with the row.
        key = new_data_key()
        images = []
        for data, vector in zip(subject.pictures, subject.vectors, strict=True):
            sha256 = sha256_hex(data)
            files.append((sha256, data, key))
            context = template_context(sha256, model.key)
            images.append(BulkImage(sha256, len(data), vault.encode_template(vector, key, context)))
        batch.append(BulkSubject(subject.ref, images, key))
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
                keys=workspace.keys,
            )
            record(
                session,
                workflow,
                actor.username,
                "gallery.synthetic_loaded",
                {"first_subject": rows[0].subject_id, "last_subject": rows[-1].subject_id},
                _audit_details(
                    workflow,
                    provenance,
                    len(subjects),
                    [row.image_id for row in rows],
                    [row.subject_id for row in rows],
                    seed,
                ),
            )
            written = writing.result()
    except GalleryError as error:
        _erase_unreferenced(workflow, _finished(writing))
        raise WorkflowError(f"{error}: load synthetic subjects under another prefix") from error
    except BaseException:
        _erase_unreferenced(workflow, written or _finished(writing))
        raise
    if workflow.index_loaded and rows:
        workflow.index.add([row.template_id for row in rows], vectors)


def _load_batch_one_at_a_time(
    workflow: Workflow,
    actor: Actor,
    provenance: Provenance,
    subjects: Sequence[SyntheticSubject],
    seed: int,
) -> None:
    _checked(workflow, subjects)
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
            for synthetic in subjects:
                subject, created = get_or_create_subject(session, synthetic.ref, actor.username)
                if not created:
                    raise WorkflowError(
                        f"subject {synthetic.ref} already exists: load synthetic subjects "
                        "under another prefix"
                    )
                subject.created_at = now
                subject_ids.append(subject.id)
                for data, vector in zip(synthetic.pictures, synthetic.vectors, strict=True):
                    sha256 = sha256_hex(data)
                    vault.put_image(
                        sha256, data, workspace.keys.subject_key(session, subject.id, create=True)
                    )
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
                        keys=workspace.keys,
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
                _audit_details(
                    workflow, provenance, len(subjects), image_ids, image_subjects, seed
                ),
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


# -- simulated activity -------------------------------------------------------------------


def check_simulation_workspace(workflow: Workflow) -> None:
    """Refuse unless this is a simulation workspace (where simulated activity may go)."""
    purpose = workflow.workspace.purpose
    if purpose != SIMULATION_PURPOSE:
        raise SyntheticDataRefusedError(
            f"simulated activity may only enter a simulation workspace; this one is {purpose} "
            "(make one with `candor init --purpose simulation`)"
        )


def record_simulation_step(workflow: Workflow, action: str, details: Mapping[str, object]) -> int:
    """Log the simulation's start or end (no actor: the simulation itself); the log's
    number of entries once it is appended (its last seq: the log has no gaps)."""
    check_simulation_workspace(workflow)
    if action not in SIMULATION_STEPS:
        raise WorkflowError(
            f"a simulation logs only {' and '.join(SIMULATION_STEPS)}, not {action!r}"
        )
    with workflow.workspace.session() as session, session.begin():
        record(session, workflow, None, action, {}, details)
        return log_size(session)


def simulated_activity(workflow: Workflow) -> ActivityCounts:
    """Requests, decisions, verdicts and releases, counted from the store (one snapshot)."""
    with workflow.workspace.session() as session:
        return activity_counts(session)
