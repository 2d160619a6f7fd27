"""Recipes: how templates are made and compared beyond the model itself.

The model identity (weights and alignment, `ModelId`) says which templates may be compared
at all. A recipe says what Candor does around the model, and is recorded with every
template and every search:

- views at enrolment and at search: the aligned chip alone ("plain"), the chip and its
  mirror image ("flip"), or those plus two chips shifted by 3 pixels diagonally and their
  mirrors ("jitter", 6 views). The template is the mean of the views' vectors. The
  shifts are fixed, not random: dlib's own `num_jitters` draws from a generator that lives
  in the network object, so the same photo gives a different template depending on what
  the process embedded before, which would make a template impossible to reproduce.
- a detector fallback: when HOG finds no face, dlib's CNN detector looks once more.
- fusion: how a subject enrolled with several photos scores (the best photo's score, or
  the mean of the best two).
- score normalisation: the cosine minus the mean of the probe's `cohort_k` highest
  cosines against a cohort of faces of other people (probe-side adaptive normalisation).
  The cosine stays the score shown; the normalised score is what a threshold applies to
  (docs/scores.md).

`RECIPES` names the recipes `candor evaluate --compare` can run; `DEFAULT_RECIPE` is the
one enrolment and search use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from candor.faces.records import UInt8Array

Views = Literal["plain", "flip", "jitter"]
Fusion = Literal["max", "mean-top2"]
Fallback = Literal["none", "cnn"]

VIEW_SETS: tuple[Views, ...] = ("plain", "flip", "jitter")
JITTER_SHIFTS: tuple[tuple[int, int], ...] = ((-3, -3), (3, 3))
_PAD = 4  # reflected border around the chip, enough for the largest shift


def _mirrored(chip: UInt8Array) -> UInt8Array:
    return np.ascontiguousarray(chip[:, ::-1])


def _shifted(chip: UInt8Array, dx: int, dy: int) -> UInt8Array:
    """The chip moved by (dx, dy) pixels, its new border filled by reflection."""
    height, width = chip.shape[:2]
    padded = np.pad(chip, ((_PAD, _PAD), (_PAD, _PAD), (0, 0)), mode="reflect")
    top, left = _PAD + dy, _PAD + dx
    return np.ascontiguousarray(padded[top : top + height, left : left + width])


def view_chips(chip: UInt8Array, views: Views) -> list[UInt8Array]:
    """The chips a view set embeds, the unaltered chip first (1, 2 or 6 chips)."""
    if views == "plain":
        return [chip]
    if views == "flip":
        return [chip, _mirrored(chip)]
    if views == "jitter":
        chips = [chip, _mirrored(chip)]
        for dx, dy in JITTER_SHIFTS:
            moved = _shifted(chip, dx, dy)
            chips += [moved, _mirrored(moved)]
        return chips
    raise ValueError(f"unknown view set {views!r}; use one of {', '.join(VIEW_SETS)}")


@dataclass(frozen=True)
class Recipe:
    """One way of making and comparing templates around a model (see module docstring).

    cohort_k: None for raw cosine scores; else how many of the probe's highest cohort
    cosines are averaged and subtracted.
    """

    name: str
    description: str
    enrol_views: Views = "plain"
    search_views: Views = "plain"
    fallback: Fallback = "none"
    fusion: Fusion = "max"
    cohort_k: int | None = None

    def __post_init__(self) -> None:
        for views in (self.enrol_views, self.search_views):
            if views not in VIEW_SETS:
                raise ValueError(f"unknown view set {views!r}; use one of {', '.join(VIEW_SETS)}")
        if self.fallback not in ("none", "cnn"):
            raise ValueError(f"unknown detector fallback {self.fallback!r}; use none or cnn")
        if self.fusion not in ("max", "mean-top2"):
            raise ValueError(f"unknown fusion {self.fusion!r}; use max or mean-top2")
        if self.cohort_k is not None and self.cohort_k < 1:
            raise ValueError("cohort_k must be 1 or more")

    @property
    def normalised(self) -> bool:
        """True when thresholds apply to the cohort-normalised score, not the cosine."""
        return self.cohort_k is not None

    @property
    def key(self) -> str:
        """Everything that changes a template or a score, recorded with templates and searches.

        e.g. "enrol=jitter/search=flip/fallback=cnn/fusion=max/norm=cohort-mean-30".
        """
        norm = "none" if self.cohort_k is None else f"cohort-mean-{self.cohort_k}"
        return (
            f"enrol={self.enrol_views}/search={self.search_views}/fallback={self.fallback}/"
            f"fusion={self.fusion}/norm={norm}"
        )

    def template_key(self, role: Literal["enrol", "search"]) -> str:
        """What makes one template of this recipe: the face choice and the view set."""
        views = self.enrol_views if role == "enrol" else self.search_views
        return f"choose_face-v1/views={views}/fallback={self.fallback}"


_RECIPE_LIST = (
    Recipe("baseline", "the foundation: one plain view, raw cosine, no fallback"),
    Recipe("flip", "mirror image averaged in, at enrolment and search", "flip", "flip"),
    Recipe("jitter", "6 fixed views (mirror, 3 px shifts) at enrolment only", "jitter", "plain"),
    Recipe("fallback", "dlib's CNN detector where HOG finds no face", fallback="cnn"),
    Recipe("fusion-mean", "subject score = mean of its best two photos", fusion="mean-top2"),
    Recipe("cohort-norm", "cosine minus the mean of its top 30 cosines on a cohort", cohort_k=30),
    Recipe(
        "flip-norm",
        "flip at enrolment and search, and cohort normalisation",
        "flip",
        "flip",
        cohort_k=30,
    ),
    Recipe(
        "combined",
        "jitter at enrolment, flip at search, CNN fallback, cohort normalisation",
        "jitter",
        "flip",
        "cnn",
        "max",
        30,
    ),
)
RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in _RECIPE_LIST}
# Chosen on lfw-dev's tune half by the rule in docs/recipes.md: the recipe with the most
# figures better beyond the noise (paired bootstrap) and none worse. "combined" was the
# only one with two (FNIR at FPIR 0.01 and 0.05); its cost, 6 network passes per face at
# enrolment and 2 at search, is in bench/results/recipes_lfw.json. It was chosen with
# dlib's HOG detector. With BlazeFace, the default detector since issue 16, the CNN
# fallback runs only where BlazeFace and its HOG fallback both find nothing; on lfw-dev's
# foundation protocol the recipe gave the same rank-1 and FNIR under both detectors,
# within their paired intervals (docs/performance.md, "The BlazeFace detector").
DEFAULT_RECIPE = RECIPES["combined"]


def recipe_named(name: str) -> Recipe:
    """The recipe called `name`; ValueError listing the known names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        known = ", ".join(RECIPES)
        raise ValueError(f"no recipe named {name!r}; known recipes: {known}") from None
