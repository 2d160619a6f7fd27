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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from candor.faces import DetectedFace
from candor.faces.recipe import VIEW_SETS, Fallback, Views
from candor.images import ImageError, decode_image
from candor.store import (
    FaceTemplate,
    GalleryImage,
    VaultError,
    add_template,
)
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
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


def _remake(workflow: Workflow, stale: _Stale) -> _Made | Kept:
    """The new template of one stale photo, or why there is none (no file names, no refs)."""

    def kept(reason: str) -> Kept:
        return Kept(stale.image_id, stale.sha256, stale.template_id, reason)

    try:
        data = stored_image(workflow, stale.sha256)
        image = decode_image(data, name=f"gallery image {stale.image_id}")
    except (VaultError, ImageError) as error:
        return kept(f"the stored photo could not be read: {error}")
    engine = workflow.engine
    faces = engine.detect_faces(image)
    if not faces:
        return kept("no face was found in the stored photo with this Candor's detector")
    chosen, overlap = matching_face(faces, stale.box)
    if chosen is None:
        return kept(
            f"none of the {len(faces)} face(s) found overlaps the face chosen at enrolment "
            f"enough (best intersection over union {overlap:.2f}, at least "
            f"{MIN_FACE_OVERLAP:.2f} needed)"
        )
    template = engine.face_template(image, faces[chosen], workflow.recipe.enrol_views)
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
