"""Re-enrolment: remake templates made by an older recipe from the photos the vault holds.

A recipe (`candor.faces.recipe`) decides how a template is made around the model: which
views of the aligned chip are averaged at enrolment, and whether dlib's CNN detector
looks again where HOG finds nothing. Every template row records the recipe key it was
made with. When this Candor's recipe makes templates differently, the existing ones
still compare (same model, same vector space) but are not what a new enrolment would
store, so scores of old and new photos are not made alike. `recipe_census` says how
many templates are *stale* in that sense; `reenrol` remakes them.

Only the enrolment views and the detector fallback make a template stale: the search
views, fusion and score normalisation act at search time on whatever is stored.
Templates recorded as "choose_face-v1/jitter=0" were made before recipes existed, with
one plain view and no fallback. Synthetic templates have no face to remake and are never
stale; a recipe string Candor does not recognise counts as stale, since remaking it from
its photo can only bring it up to date.

Re-enrolment finds the face again in the stored photo: the face whose box overlaps the
box stored at enrolment best, by intersection over union, and by at least
MIN_FACE_OVERLAP. Nothing is lost when that fails: the photo keeps its old template and
the summary says why. The quality gate is not applied again: it decided at enrolment
which faces the gallery holds, and re-enrolment changes how their templates are made,
not which faces are held.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from candor.faces import DetectedFace, EngineSettings, FaceEngine
from candor.faces.recipe import VIEW_SETS, Fallback, Views
from candor.faces.registry import dlib_resnet_model_id
from candor.images import DecodedImage, ImageError, decode_image
from candor.store import (
    FaceTemplate,
    GalleryImage,
    VaultError,
    add_template,
    face_models,
)
from candor.store.audit_log import lock_log_head
from candor.workflow.accounts import Actor
from candor.workflow.actions import act
from candor.workflow.audit_trail import record
from candor.workflow.context import SerialEngine, Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.models import (
    ModelError,
    activate_model,
    active_model,
    is_model_calibrated,
    model_calibration_gap,
    model_settings,
    require_usable_model,
)
from candor.workflow.permissions import require_permission
from candor.workflow.probes import stored_image
from candor.workflow.synthetic import SYNTHETIC_RECIPE

# What templates recorded before recipes existed were made with (one plain view, no
# fallback); the evaluation cache keeps the same string for the same reason.
LEGACY_RECIPE = "choose_face-v1/jitter=0"
LEGACY_MADE_WITH: tuple[Views, Fallback] = ("plain", "none")
# Intersection over union, 0 to 1, between a face found now and the box stored at
# enrolment. Half is the usual bar for "the same object" in detection benchmarks; the
# same detector on the same pixels gives 1.0.
MIN_FACE_OVERLAP = 0.5
DEFAULT_BATCH = 50

Box = tuple[int, int, int, int]  # left, top, right, bottom, in pixels of the decoded image
Progress = Callable[[int, int], None]


def made_with(recipe: str) -> tuple[Views, Fallback] | None:
    """The enrolment views and detector fallback a stored recipe string records.

    None for synthetic templates and for strings Candor does not recognise.
    """
    if recipe == LEGACY_RECIPE:
        return LEGACY_MADE_WITH
    if recipe == SYNTHETIC_RECIPE:
        return None
    fields = dict(part.split("=", 1) for part in recipe.split("/") if "=" in part)
    views, fallback = fields.get("enrol"), fields.get("fallback")
    for known_views in VIEW_SETS:
        if views == known_views and fallback in ("none", "cnn"):
            return known_views, "cnn" if fallback == "cnn" else "none"
    return None


@dataclass(frozen=True)
class RecipeCount:
    """Live templates of the census's model made by one recipe.

    enrol_views, fallback: what the recipe string records (None: synthetic or not
    recognised). stale: whether `reenrol` would remake them.
    """

    recipe: str
    templates: int
    enrol_views: Views | None
    fallback: Fallback | None
    stale: bool


@dataclass(frozen=True)
class RecipeCensus:
    """The model's live templates counted by the recipe that made them.

    model_key: the engine's model; templates of other models are not counted (they are
    never compared with this one's). recipe: this Candor's recipe key, with the
    enrolment views and fallback it makes templates with.
    """

    model_key: str
    recipe: str
    enrol_views: Views
    fallback: Fallback
    by_recipe: tuple[RecipeCount, ...]

    @property
    def templates(self) -> int:
        """Live templates of the model, every recipe together."""
        return sum(count.templates for count in self.by_recipe)

    @property
    def stale(self) -> int:
        """Templates `reenrol` would remake."""
        return sum(count.templates for count in self.by_recipe if count.stale)

    @property
    def stale_recipes(self) -> tuple[str, ...]:
        """The recipe strings of the stale templates, in sorted order."""
        return tuple(count.recipe for count in self.by_recipe if count.stale)

    @property
    def advice(self) -> str:
        """One sentence for an admin: what is stale, what to run, and that search still works."""
        if self.templates == 0:
            return "The gallery holds no templates of this model: nothing to re-enrol."
        if self.stale == 0:
            return (
                f"All {self.templates:,} templates were made as this Candor makes them "
                f"(enrolment views {self.enrol_views}, detector fallback {self.fallback}): "
                "nothing to re-enrol."
            )
        stale = [count for count in self.by_recipe if count.stale]
        old_views = _either(count.enrol_views for count in stale)
        old_fallbacks = _either(count.fallback for count in stale)
        differences: list[tuple[str, str, str]] = []
        if any(count.enrol_views != self.enrol_views for count in stale):
            differences.append(("enrolment views", old_views, self.enrol_views))
        if any(count.fallback != self.fallback for count in stale):
            differences.append(("detector fallback", old_fallbacks, self.fallback))
        was = " and ".join(f"{what} {old}" for what, old, _ in differences)
        now = " and ".join(f"{what} {new}" for what, _, new in differences)
        return (
            f"{self.stale:,} of {self.templates:,} templates were made with {was}; "
            f"this Candor makes them with {now}: run `candor reenrol` to remake them from "
            "the stored photos (searches still work meanwhile: same model, older recipe)."
        )


def _either(values: Iterable[str | None]) -> str:
    """'plain', or 'flip or plain' for several; an unrecognised recipe reads 'unrecorded'."""
    return " or ".join(sorted({"unrecorded" if value is None else value for value in values}))


def recipe_census(workflow: Workflow, actor: Actor) -> RecipeCensus:
    """How the engine model's live templates were made, and how many are stale.

    actor: a gallery admin (the policy's `gallery.enrol`, as for the other gallery views).
    Reads counts only; changes nothing and is not audited.
    """
    require_permission(workflow, actor, "gallery.enrol")
    return _census(workflow)


def _census(workflow: Workflow) -> RecipeCensus:
    recipe = workflow.recipe
    current = (recipe.enrol_views, recipe.fallback)
    model_key = workflow.engine.model.key
    with workflow.workspace.session() as session:
        rows = session.execute(
            select(FaceTemplate.recipe, func.count(FaceTemplate.id))
            .where(FaceTemplate.model_key == model_key)
            .group_by(FaceTemplate.recipe)
            .order_by(FaceTemplate.recipe)
        ).all()
    counts = []
    for key, templates in rows:
        made = made_with(key)
        counts.append(
            RecipeCount(
                recipe=key,
                templates=int(templates),
                enrol_views=None if made is None else made[0],
                fallback=None if made is None else made[1],
                stale=key != SYNTHETIC_RECIPE and made != current,
            )
        )
    return RecipeCensus(
        model_key=model_key,
        recipe=recipe.key,
        enrol_views=recipe.enrol_views,
        fallback=recipe.fallback,
        by_recipe=tuple(counts),
    )


@dataclass(frozen=True)
class Remade:
    """One photo's template made again: the old row is gone, the new one searched."""

    image_id: int
    image_sha256: str
    old_template_id: int
    new_template_id: int
    old_recipe: str


@dataclass(frozen=True)
class Kept:
    """A photo whose old template stays, and why it could not be remade."""

    image_id: int
    image_sha256: str
    template_id: int
    reason: str


@dataclass
class ReenrolSummary:
    """What one run did: the recipe it made templates with and each stale photo's fate.

    stale: stale templates of the model when the run began. batches: transactions
    committed, each with one `gallery.reenrolled` audit entry.
    """

    model_key: str
    recipe: str
    stale: int
    remade: list[Remade] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    batches: int = 0


@dataclass(frozen=True)
class _Stale:
    template_id: int
    image_id: int
    sha256: str
    box: Box
    recipe: str


@dataclass(frozen=True)
class _Made:
    stale: _Stale
    vector: np.ndarray


def reenrol(
    workflow: Workflow,
    actor: Actor,
    *,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> ReenrolSummary:
    """Remake every stale template of the engine's model with `workflow.recipe`.

    For each stale template, in template id order: the stored photo is read from the
    vault and decoded, its faces detected with `workflow.engine`, the face matching the
    box stored at enrolment taken (see module docstring), and its template made with the
    recipe's enrolment views. Per batch of `batch_size` photos, one transaction replaces
    the old template rows with new ones (recipe key `workflow.recipe.key`, detector key
    of `workflow.settings`) and writes one `gallery.reenrolled` audit entry naming old
    and new template ids and the images by id and hash; then the index drops the old
    vectors (zeroed in every index file, as for expungement) and takes the new ones.

    A photo that cannot be remade keeps its old template and is listed in `kept` with the
    reason. Running again finds nothing stale unless photos were kept.

    actor: a gallery admin (the policy's `gallery.enrol`), recorded as who re-enrolled.
    progress: called with (photos done, stale photos) after each photo.
    batch_size: photos per transaction; a failure loses at most one batch's work.
    """
    require_permission(workflow, actor, "gallery.enrol")
    if batch_size < 1:
        raise WorkflowError("the batch size must be 1 or more")
    census = _census(workflow)
    summary = ReenrolSummary(census.model_key, census.recipe, census.stale)
    stale_recipes = census.stale_recipes
    after = 0
    done = 0
    while stale_recipes:
        batch = _next_batch(workflow, census.model_key, stale_recipes, after, batch_size)
        if not batch:
            break
        after = batch[-1].template_id
        made: list[_Made] = []
        kept: list[Kept] = []
        for item in batch:
            outcome = _remake(workflow, item)
            if isinstance(outcome, Kept):
                kept.append(outcome)
            else:
                made.append(outcome)
            done += 1
            if progress is not None:
                progress(done, census.stale)
        _commit_batch(workflow, actor, made, kept, summary)
    return summary


def _next_batch(
    workflow: Workflow, model_key: str, recipes: Sequence[str], after: int, size: int
) -> list[_Stale]:
    """The next `size` stale templates with id above `after` (keyset paging: a gallery of
    millions is never listed at once, and a photo kept is not tried twice in one run)."""
    with workflow.workspace.session() as session:
        rows = session.execute(
            select(
                FaceTemplate.id,
                FaceTemplate.image_id,
                FaceTemplate.recipe,
                GalleryImage.sha256,
                GalleryImage.face_left,
                GalleryImage.face_top,
                GalleryImage.face_right,
                GalleryImage.face_bottom,
            )
            .join(GalleryImage, GalleryImage.id == FaceTemplate.image_id)
            .where(
                FaceTemplate.model_key == model_key,
                FaceTemplate.recipe.in_(recipes),
                FaceTemplate.id > after,
            )
            .order_by(FaceTemplate.id)
            .limit(size)
        ).all()
    return [
        _Stale(template_id, image_id, sha256, (left, top, right, bottom), recipe)
        for template_id, image_id, recipe, sha256, left, top, right, bottom in rows
    ]


def box_overlap(first: Box, second: Box) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes: 0 (apart) to 1 (equal)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    inner = max(width, 0) * max(height, 0)
    union = _area(first) + _area(second) - inner
    return inner / union if union > 0 else 0.0


def _area(box: Box) -> int:
    return max(box[2] - box[0], 0) * max(box[3] - box[1], 0)


def matching_face(faces: Sequence[DetectedFace], stored: Box) -> tuple[int | None, float]:
    """The index of the face overlapping `stored` best (at least MIN_FACE_OVERLAP), or None,
    and the best overlap found (0.0 when there are no faces). Ties go to the earlier face."""
    best_index: int | None = None
    best = 0.0
    for index, face in enumerate(faces):
        box = face.box
        overlap = box_overlap((box.left, box.top, box.right, box.bottom), stored)
        if overlap > best:
            best_index, best = index, overlap
    return (best_index if best >= MIN_FACE_OVERLAP else None), best


def _enrolled_face(
    workflow: Workflow, engine: FaceEngine, image_id: int, sha256: str, box: Box
) -> tuple[DecodedImage, DetectedFace] | str:
    """The stored photo and, found in it again by `engine`, the face chosen at enrolment
    (`box`); or why not, in words (no file names, no subject references)."""
    try:
        data = stored_image(workflow, sha256)
        image = decode_image(data, name=f"gallery image {image_id}")
    except (VaultError, ImageError) as error:
        return f"the stored photo could not be read: {error}"
    faces = engine.detect_faces(image)
    if not faces:
        return "no face was found in the stored photo with this Candor's detector"
    chosen, overlap = matching_face(faces, box)
    if chosen is None:
        return (
            f"none of the {len(faces)} face(s) found overlaps the face chosen at enrolment "
            f"enough (best intersection over union {overlap:.2f}, at least "
            f"{MIN_FACE_OVERLAP:.2f} needed)"
        )
    return image, faces[chosen]


def _remake(workflow: Workflow, stale: _Stale) -> _Made | Kept:
    """The new template of one stale photo, or why there is none (no file names, no refs)."""
    engine = workflow.engine
    found = _enrolled_face(workflow, engine, stale.image_id, stale.sha256, stale.box)
    if isinstance(found, str):
        return Kept(stale.image_id, stale.sha256, stale.template_id, found)
    image, face = found
    template = engine.face_template(image, face, workflow.recipe.enrol_views)
    return _Made(stale, template.vector)


def _commit_batch(
    workflow: Workflow,
    actor: Actor,
    made: list[_Made],
    kept: list[Kept],
    summary: ReenrolSummary,
) -> None:
    """Swap one batch's templates in one transaction with its audit entry, then the index."""
    workspace = workflow.workspace
    engine = workflow.engine
    remade: list[Remade] = []
    vectors: list[np.ndarray] = []
    with workspace.session() as session, session.begin():
        now = workflow.now()
        # New rows get ids above every id in the table: SQLite would otherwise give a
        # deleted old id to its replacement, and an id named in the audit log or in an
        # earlier search's candidates must never come to mean another template.
        next_id = (session.scalar(select(func.max(FaceTemplate.id))) or 0) + 1
        for item in made:
            old = item.stale
            if not _still_stale(session, old):
                kept.append(
                    Kept(
                        old.image_id,
                        old.sha256,
                        old.template_id,
                        "the template was removed or changed while it was being remade",
                    )
                )
                continue
            # The old row first: one template per image and model (a unique constraint).
            session.execute(delete(FaceTemplate).where(FaceTemplate.id == old.template_id))
            image = session.get(GalleryImage, old.image_id)
            assert image is not None  # the template row referenced it a moment ago
            stored = add_template(
                session,
                image,
                model=engine.model,
                detector_key=workflow.settings.key,
                recipe=workflow.recipe.key,
                vector=item.vector,
                vault=workspace.vault,
                keys=workspace.keys,
            )
            stored.id = next_id
            stored.created_at = now
            session.flush()
            next_id += 1
            remade.append(Remade(old.image_id, old.sha256, old.template_id, stored.id, old.recipe))
            vectors.append(item.vector)
        # Ids and hashes only: no subject reference, no vector.
        record(
            session,
            workflow,
            actor.username,
            "gallery.reenrolled",
            {},
            {
                "model": engine.model.key,
                "recipe": workflow.recipe.key,
                "images": [item.image_id for item in remade],
                "image_sha256": [item.image_sha256 for item in remade],
                "old_templates": [item.old_template_id for item in remade],
                "new_templates": [item.new_template_id for item in remade],
                "old_recipes": sorted({item.old_recipe for item in remade}),
                "kept_images": [item.image_id for item in kept],
                "kept_templates": [item.template_id for item in kept],
            },
        )
    summary.batches += 1
    summary.remade.extend(remade)
    summary.kept.extend(kept)
    if not remade:
        return
    workflow.forget_templates(item.old_template_id for item in remade)
    if workflow.index_loaded:
        workflow.index.add([item.new_template_id for item in remade], np.stack(vectors))


def _still_stale(session: Session, stale: _Stale) -> bool:
    """Whether the template is still there as it was read (an expunge or another re-enrolment
    may have run while its photo was being processed)."""
    recipe = session.scalar(select(FaceTemplate.recipe).where(FaceTemplate.id == stale.template_id))
    return recipe == stale.recipe


# --- Switching models: every gallery photo's template made with another model -------------
#
# `candor reenrol --model NAME` makes, for every gallery photo without one, a template of
# the named model (confirmed, its file unchanged, calibrated), in batches, each batch one
# unit of work with its `gallery.reenrolled` entry. Searches keep using the active model
# meanwhile: the index is per model key, so the new templates are never compared with the
# old ones. Once every photo has a template of the new model or was refused (the face not
# found again, the new model's quality gate, an unreadable photo: counted and named by
# image id), the model is made active in one transaction (`activate_model`, which writes
# `model.activated`): from the next search on, every process searches the new model's
# templates with its own thresholds. The old model's templates stay, so switching back is
# another `reenrol --model` that finds nothing (or only photos enrolled since) to make.


@dataclass(frozen=True)
class ModelCount:
    """One face model's templates in the gallery.

    name: the registry name ("dlib" for the built-in model); a key that no registered
    model makes (an older dlib build, synthetic vectors) is listed under its key.
    state: "built-in", "pending", "confirmed", "rejected" or "unregistered".
    missing: gallery photos without a template of this model (what `reenrol --model`
    would make).
    """

    name: str
    model_key: str
    state: str
    active: bool
    calibrated: bool
    templates: int
    missing: int


@dataclass(frozen=True)
class ModelCensus:
    """Gallery photos and, per model, how many have its template (the active model first)."""

    photos: int
    active: str
    models: tuple[ModelCount, ...]

    @property
    def advice(self) -> str:
        """One sentence: which model searches use, and what a switch would have to make."""
        active = next(count for count in self.models if count.active)
        line = (
            f"Searches use {active.name}: {active.templates:,} of {self.photos:,} gallery "
            "photos have its template."
        )
        others = [
            count
            for count in self.models
            if not count.active and count.state in ("built-in", "confirmed")
        ]
        for count in others:
            ready = "calibrated" if count.calibrated else "not calibrated: run `candor calibrate`"
            line += (
                f" {count.name} ({ready}): {count.missing:,} photo(s) without its template; "
                f"`candor reenrol --model {count.name}` makes them and switches."
            )
        return line


def model_census(workflow: Workflow, actor: Actor) -> ModelCensus:
    """Per model: its templates in the gallery and the photos without one (gallery admins).

    Reads counts only; changes nothing and is not audited.
    """
    require_permission(workflow, actor, "gallery.enrol")
    with workflow.workspace.session() as session:
        photos = face_models.gallery_photo_count(session)
        counts = face_models.template_counts_by_model(session)
        active = active_model(session)
        rows: list[tuple[str, str, str]] = []
        if active.name == face_models.BUILTIN_MODEL_NAME:
            rows.append((active.name, active.model_key, "built-in"))
        else:
            rows.append((face_models.BUILTIN_MODEL_NAME, dlib_resnet_model_id().key, "built-in"))
        rows.extend(
            (record.name, record.model_key, record.state)
            for record in face_models.face_models(session)
        )
        named = {model_key for _, model_key, _ in rows}
        rows.extend((key, key, "unregistered") for key in sorted(counts) if key not in named)
        models = [
            ModelCount(
                name=name,
                model_key=model_key,
                state=state,
                active=model_key == active.model_key,
                calibrated=state != "unregistered"
                and is_model_calibrated(session, model_key, workflow.recipe),
                templates=counts.get(model_key, 0),
                missing=photos - counts.get(model_key, 0),
            )
            for name, model_key, state in rows
        ]
    models.sort(key=lambda count: not count.active)  # stable: the rest keep their order
    return ModelCensus(photos=photos, active=active.name, models=tuple(models))


@dataclass(frozen=True)
class Refused:
    """A gallery photo that got no template of the new model, and why (ids, no biometrics)."""

    image_id: int
    image_sha256: str
    reason: str


@dataclass
class ModelReenrolSummary:
    """What one `reenrol_model` run did.

    missing: photos without a template of the model when the run began. made: new
    templates by id. refused: photos that got none (they stay in the gallery, searchable
    with any model that has their template). activated: whether the run made the model
    active (False when it already was).
    """

    model: str
    model_key: str
    recipe: str
    missing: int
    made: list[int] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    batches: int = 0
    activated: bool = False
    templates: int = 0


@dataclass(frozen=True)
class _Target:
    name: str
    model_key: str
    engine: FaceEngine
    active: bool
    missing: int


# A pass finds photos enrolled meanwhile (they have larger ids); the switch is made once a
# pass leaves none. Enrolments arriving faster than passes end are refused after this many.
_SWITCH_ATTEMPTS = 3


def model_target(workflow: Workflow, actor: Actor, name: str) -> tuple[str, int]:
    """Check that `name` may be re-enrolled to and made active: (its model key, the photos
    without its template). Raises ModelError (one line) when it is unknown, pending,
    rejected, its file changed, it is not calibrated, or it is active with nothing to make.
    """
    require_permission(workflow, actor, "gallery.enrol")
    target = _target(workflow, name)
    return target.model_key, target.missing


def _target(workflow: Workflow, name: str) -> _Target:
    with workflow.workspace.session() as session:
        # Unknown, pending, rejected, or its file's bytes not those confirmed.
        require_usable_model(session, name)
        # On the base settings: the active model's own sharpness limit must not ride along.
        settings = model_settings(session, name, workflow.base_settings)
        engine = workflow.engine if _same_settings(workflow, settings) else SerialEngine(settings)
        model_key = engine.model.key
        record_ = face_models.face_model_by_name(session, name)
        if record_ is not None and record_.model_key != model_key:
            raise ModelError(
                f"model {name}: its file makes templates of {model_key}, but it was added as "
                f"{record_.model_key}"
            )
        gap = model_calibration_gap(session, model_key, workflow.recipe)
        if gap is not None:
            raise ModelError(
                f"model {name} is not calibrated ({gap}): run `candor calibrate DIR --model "
                f"{name}` first (a model without thresholds cannot be made active)"
            )
        active = active_model(session).model_key == model_key
        missing = face_models.gallery_photo_count(session) - (
            face_models.template_counts_by_model(session).get(model_key, 0)
        )
    if active and missing == 0:
        raise ModelError(
            f"model {name} is already the active model and every gallery photo has its "
            "template: nothing to do"
        )
    return _Target(name, model_key, engine, active, missing)


def _same_settings(workflow: Workflow, settings: EngineSettings) -> bool:
    """Whether the workflow's own engine makes this model's templates (no second engine)."""
    return workflow.settings == settings


def reenrol_model(
    workflow: Workflow,
    actor: Actor,
    name: str,
    *,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH,
    job_id: int | None = None,
    skip: Collection[int] = frozenset(),
    on_refused: Callable[[Refused], None] | None = None,
) -> ModelReenrolSummary:
    """Make every gallery photo's template with model `name`, then make it the active model.

    Refuses (ModelError, one line, nothing changed) a model that is unknown, pending,
    rejected, not calibrated, whose file changed, or that is active with every template
    made. Each photo without a template of the model is read from the vault, its faces
    found, the face chosen at enrolment taken again (`matching_face`), the new model's
    quality gate applied (its limits can differ from the old model's), and its template
    made with the recipe's enrolment views; per batch of `batch_size` photos one unit of
    work stores them with a `gallery.reenrolled` entry. A photo refused keeps what it had.
    `model.reenrolment_started` and `model.reenrolment_finished` bracket the run; the
    switch itself (`activate_model`, `model.activated`) is one transaction, made once no
    photo is left without a template or a refusal.

    actor: a gallery admin (the policy's `gallery.enrol`); activate_model checks its own.
    progress: called with (photos done, photos to do) after each photo.
    job_id: the background job running this, recorded with the activation.
    skip: gallery image ids refused by an earlier run of the same job (a resumed job does
        not try them again; the job's report keeps them). on_refused: called with each
        refusal as it is decided, before its batch commits.
    """
    require_permission(workflow, actor, "gallery.enrol")
    if batch_size < 1:
        raise WorkflowError("the batch size must be 1 or more")
    target = _target(workflow, name)
    summary = ModelReenrolSummary(name, target.model_key, workflow.recipe.key, target.missing)
    with act(workflow, actor, "gallery.enrol") as action:
        action.record(
            "model.reenrolment_started",
            {} if job_id is None else {"job": job_id},
            {
                "model": name,
                "model_key": target.model_key,
                "photos_without_template": target.missing,
                "recipe": workflow.recipe.key,
            },
        )
    after = 0
    done = 0
    for _ in range(_SWITCH_ATTEMPTS):
        while True:
            with workflow.workspace.session() as session:
                batch = face_models.photos_without_template(
                    session, target.model_key, after=after, limit=batch_size
                )
            if not batch:
                break
            after = batch[-1].image_id
            made: list[tuple[face_models.PhotoWithoutTemplate, np.ndarray]] = []
            refused: list[Refused] = []
            for photo in batch:
                if photo.image_id in skip:
                    continue
                outcome = _make_for_model(workflow, target.engine, photo)
                if isinstance(outcome, Refused):
                    refused.append(outcome)
                    if on_refused is not None:
                        on_refused(outcome)
                else:
                    made.append((photo, outcome))
                done += 1
                if progress is not None:
                    progress(done, max(summary.missing, done))
            _commit_model_batch(workflow, actor, target, made, refused, summary)
        if target.active or _switched(workflow, actor, target, after, summary, job_id):
            break
    else:
        raise WorkflowError(
            f"photos were enrolled faster than their {name} templates were made; model "
            f"{name} was not made active: run `candor reenrol --model {name}` again"
        )
    _record_finished(workflow, actor, target, summary, job_id)
    if not target.active and not summary.activated:
        # Every photo refused: a model that would find no one is not switched to.
        raise ModelError(
            f"no gallery photo got a template of {name} ({len(summary.refused):,} refused: "
            f"{summary.refused[0].reason if summary.refused else 'none'}); it was not made "
            "active"
        )
    return summary


def _record_finished(
    workflow: Workflow,
    actor: Actor,
    target: _Target,
    summary: ModelReenrolSummary,
    job_id: int | None,
) -> None:
    with act(workflow, actor, "gallery.enrol") as action:
        action.record(
            "model.reenrolment_finished",
            {} if job_id is None else {"job": job_id},
            {
                "model": target.name,
                "model_key": target.model_key,
                "made": len(summary.made),
                "refused": len(summary.refused),
                "batches": summary.batches,
                "activated": summary.activated,
                "templates": summary.templates,
            },
        )


def _make_for_model(
    workflow: Workflow, engine: FaceEngine, photo: face_models.PhotoWithoutTemplate
) -> np.ndarray | Refused:
    """The new model's template of one photo's enrolled face, or why there is none."""
    found = _enrolled_face(workflow, engine, photo.image_id, photo.sha256, photo.box)
    if isinstance(found, str):
        return Refused(photo.image_id, photo.sha256, found)
    image, face = found
    # The new model's own quality gate (its sharpness limit is measured on its chips).
    if not face.quality.passed:
        reason = "the quality gate refused it: " + "; ".join(face.quality.reasons)
        return Refused(photo.image_id, photo.sha256, reason)
    return engine.face_template(image, face, workflow.recipe.enrol_views).vector


def _commit_model_batch(
    workflow: Workflow,
    actor: Actor,
    target: _Target,
    made: list[tuple[face_models.PhotoWithoutTemplate, np.ndarray]],
    refused: list[Refused],
    summary: ModelReenrolSummary,
) -> None:
    """One batch's new templates and its audit entry, in one unit of work."""
    workspace = workflow.workspace
    new_ids: list[int] = []
    vectors: list[np.ndarray] = []
    images: list[face_models.PhotoWithoutTemplate] = []
    with act(workflow, actor, "gallery.enrol") as action:
        for photo, vector in made:
            image = face_models.photo_lacking_template(
                action.session, photo.image_id, target.model_key
            )
            if image is None:
                continue  # expunged meanwhile, or another run made it first
            stored = add_template(
                action.session,
                image,
                model=target.engine.model,
                detector_key=target.engine.settings.key,
                recipe=workflow.recipe.key,
                vector=vector,
                vault=workspace.vault,
                keys=workspace.keys,
            )
            stored.created_at = action.now
            new_ids.append(stored.id)
            vectors.append(vector)
            images.append(photo)
        # Ids and hashes only: no subject reference, no vector, no reason text per photo
        # beyond what the quality gate says in words.
        action.record(
            "gallery.reenrolled",
            {},
            {
                "model": target.model_key,
                "recipe": workflow.recipe.key,
                "images": [photo.image_id for photo in images],
                "image_sha256": [photo.sha256 for photo in images],
                "old_templates": [],
                "new_templates": new_ids,
                "refused_images": [item.image_id for item in refused],
                "refused_reasons": [item.reason for item in refused],
            },
        )
    summary.batches += 1
    summary.made.extend(new_ids)
    summary.refused.extend(refused)
    # The workflow's own index holds the active model's templates only; when that is the
    # target (filling gaps), it takes the new ones now, as enrolment does.
    if (
        new_ids
        and target.active
        and workflow.index_loaded
        and workflow.engine.model.key == target.model_key
    ):
        workflow.index.add(new_ids, np.stack(vectors))


def _switched(
    workflow: Workflow,
    actor: Actor,
    target: _Target,
    after: int,
    summary: ModelReenrolSummary,
    job_id: int | None,
) -> bool:
    """Make the model active, unless photos were enrolled after the pass's last page (then
    False: another pass makes theirs first). One transaction, with `model.activated`."""
    with act(workflow, actor, "gallery.enrol") as action:
        session = action.session
        # Held to the commit (PostgreSQL; SQLite's writers hold the file): an enrolment
        # whose template is written but not committed finishes first, and the check below
        # sees its photo; one that writes after waits for the switch, then finds its model
        # no longer active and is refused (`enrolment`), so no photo is left without one.
        lock_log_head(session)
        if face_models.photos_without_template(session, target.model_key, after=after, limit=1):
            return False
        templates = face_models.template_counts_by_model(session).get(target.model_key, 0)
        if templates == 0 and face_models.gallery_photo_count(session) > 0:
            return True  # not switched: the caller says why
        activate_model(session, workflow, actor, target.name, templates, job_id)
    summary.activated = True
    summary.templates = templates
    # This process switches now; every other one at its next search (`model_in_step`).
    with workflow.workspace.session() as session:
        workflow.model_in_step(session)
    return True
