"""Face models as installed, named things: added by one admin, confirmed by another, pinned
to their bytes, listed, loaded, activated, and followed by every Workflow of the workspace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select

from candor.faces import EngineSettings
from candor.faces.recipe import DEFAULT_RECIPE
from candor.index.cohort import score_name
from candor.store import AuditEntry, FaceTemplate, Workspace
from candor.store.calibrations import add_active_calibration
from candor.store.face_models import (
    FaceModelRecord,
    ModelCalibration,
    add_model_calibration,
    face_model_by_name,
)
from candor.workflow import Workflow
from candor.workflow import accounts as accounts_module
from candor.workflow.accounts import (
    Actor,
    NewUser,
    NotAnAdminError,
    SelfConfirmationError,
    authenticate,
    bootstrap,
    confirm_change,
    login,
    request_user,
)
from candor.workflow.enrolment import EnrolmentRequest, EnrolmentStatus, enrol_files
from candor.workflow.governed import RequestForm, request_search
from candor.workflow.limits import TextRefusedError
from candor.workflow.models import (
    ModelError,
    ModelNotFoundError,
    activate_model,
    active_model,
    add_model,
    confirm_model,
    model_settings,
    model_view,
    model_views,
    reject_model,
    require_usable_model,
)
from candor.workflow.workspaces import create_workspace
from tests.agency import make_agency
from tests.faces.test_onnx_models import arcface_file
from tests.server.support import DEMO_PROVENANCE, demo_photos

PASSWORD = "correct horse battery staple"
CHEAP_HASHER = PasswordHasher(
    time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=16, type=Type.ID
)
LICENCE = "Licensed to the agency, contract 2026-17"
SOURCE = "Vendor X, delivered on USB 2026-11-02"
FORM = RequestForm(
    case_number="2026-000123",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example City Police Department",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)


def _user(name: str, *roles: str) -> NewUser:
    return NewUser(
        username=name,
        unit="Records",
        certificate_ref=f"FR-{name}",
        certificate_expires=datetime(2030, 1, 1).date(),
        password=PASSWORD,
        roles=roles,
    )


class People:
    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        bootstrap(workflow, _user("admin1"), _user("admin2"))
        self.admin1 = self.log_in("admin1")
        self.admin2 = self.log_in("admin2")
        for name, role in (("aud", "auditor"), ("ana", "analyst")):
            change = request_user(workflow, self.admin1, _user(name, role))
            confirm_change(workflow, self.admin2, change.id)
        self.auditor = self.log_in("aud")
        self.analyst = self.log_in("ana")

    def log_in(self, name: str) -> Actor:
        return authenticate(self.workflow, login(self.workflow, name, PASSWORD).token)


@pytest.fixture
def workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workflow]:
    monkeypatch.setattr(accounts_module, "PASSWORD_HASHER", CHEAP_HASHER)
    with Workflow(create_workspace(tmp_path / "ws")) as opened:
        yield opened


@pytest.fixture
def people(workflow: Workflow) -> People:
    return People(workflow)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "vendor.onnx"
    path.parent.mkdir()
    arcface_file(path, 64)
    return path


def _entries(workflow: Workflow, prefix: str = "model.") -> list[dict[str, Any]]:
    with workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    entries = [json.loads(body) for body in bodies]
    return [entry for entry in entries if entry["action"].startswith(prefix)]


def _rows(workflow: Workflow) -> list[FaceModelRecord]:
    with workflow.workspace.session() as session:
        return list(session.scalars(select(FaceModelRecord)))


def _add(workflow: Workflow, actor: Actor, path: Path, name: str = "vendor", **extra: Any) -> Any:
    values: dict[str, Any] = {"name": name, "licence": LICENCE, "source": SOURCE, **extra}
    return add_model(workflow, actor, path, **values)


def _alter(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last initialiser byte: still a valid ONNX file, other bytes
    path.write_bytes(bytes(data))


def calibrate_model(workflow: Workflow, model_key: str) -> None:
    """Rows as `candor calibrate --model` stores them (the figures do not matter here)."""
    now = datetime.now(UTC)
    with workflow.workspace.session() as session, session.begin():
        add_active_calibration(
            session,
            model_key=model_key,
            score="cosine",
            dataset="lfw-dev",
            dataset_sha256="a" * 64,
            impostor_pairs=1000,
            templates=100,
            points=[[0.1, 0.2], [0.01, 0.4], [0.001, 0.6]],
            created_at=now,
            created_by=None,
        )
        # The default recipe's normalised score (a folder of COHORT_SIZE people per half).
        add_active_calibration(
            session,
            model_key=model_key,
            score=score_name(DEFAULT_RECIPE.cohort_k),
            dataset="lfw-dev",
            dataset_sha256="a" * 64,
            impostor_pairs=1000,
            templates=4000,
            points=[[0.1, 0.2], [0.01, 0.4], [0.001, 0.6]],
            created_at=now,
            created_by=None,
        )
        add_model_calibration(
            session,
            ModelCalibration(
                model_key=model_key,
                dataset="lfw-dev",
                dataset_sha256="a" * 64,
                verify_threshold=0.5,
                verify_false_match_rate=0.001,
                verify_false_non_match_rate=0.05,
                impostor_pairs=1000,
                mated_pairs=100,
                repeat_similarity=0.8,
                min_sharpness=7.5,
                recipe=None,
                details={},
                created_at=now,
                created_by=None,
            ),
        )


def test_added_by_one_admin_confirmed_by_another_listed_and_shown(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    added = _add(workflow, people.admin1, model_file)
    assert (added.state, added.dimension, added.layout, added.input_size) == (
        "pending",
        64,
        "NCHW",
        112,
    )
    assert added.path == str(model_file.resolve())
    (entry,) = _entries(workflow)
    assert entry["action"] == "model.added" and entry["actor"] == "admin1"
    details = entry["details"]
    assert details["sha256"] == added.sha256 and details["dimension"] == 64
    assert details["licence"] == LICENCE and details["source"] == SOURCE
    assert details["normalisation"] == {"mean": "127.5", "std": "127.5"}
    assert {"dimension", "layout", "input_size"} <= set(details["recognised"])
    assert details["declared"] == []
    # Not usable before a second admin vouches for it.
    with workflow.workspace.session() as session, pytest.raises(ModelError, match="pending"):
        require_usable_model(session, "vendor")

    with pytest.raises(SelfConfirmationError, match="another admin must"):
        confirm_model(workflow, people.admin1, "vendor")
    assert [row.state for row in _rows(workflow)] == ["pending"]
    assert len(_entries(workflow)) == 1

    confirmed = confirm_model(workflow, people.admin2, "vendor")
    assert (confirmed.state, confirmed.added_by, confirmed.decided_by) == (
        "confirmed",
        "admin1",
        "admin2",
    )
    assert [e["action"] for e in _entries(workflow)] == ["model.added", "model.confirmed"]
    with pytest.raises(ModelError, match="already confirmed"):
        confirm_model(workflow, people.admin2, "vendor")

    listed = model_views(workflow, people.auditor)
    assert [view.name for view in listed] == ["dlib", "vendor"]
    dlib, vendor = listed
    assert dlib.built_in and dlib.active and dlib.calibrated and dlib.dimension == 128
    assert not vendor.active and not vendor.calibrated
    assert vendor.file_check == "unchanged"
    shown = model_view(workflow, people.admin2, "vendor")
    assert shown.licence == LICENCE and shown.calibration is None and shown.activations == ()
    assert {"dimension", "layout", "input_size"} <= set(shown.recognised)
    assert shown.declared == ()
    with pytest.raises(NotAnAdminError, match="admins and auditors"):
        model_views(workflow, people.analyst)
    with pytest.raises(ModelNotFoundError, match="no model named 'other'"):
        model_view(workflow, people.auditor, "other")


def test_declared_values_are_recorded_as_declared(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    added = _add(workflow, people.admin1, model_file, colour="BGR", input_mean=0.0, input_std=255.0)
    assert (added.colour, added.input_mean, added.input_std) == ("BGR", 0.0, 255.0)
    shown = model_view(workflow, people.auditor, "vendor")
    assert set(shown.declared) == {"colour", "input_mean", "input_std"}
    with workflow.workspace.session() as session:
        confirm_model(workflow, people.admin2, "vendor")
        spec = model_settings(session, "vendor", EngineSettings()).embedder_model
    assert spec is not None and (spec.colour, spec.input_mean, spec.input_std) == (
        "BGR",
        0.0,
        255.0,
    )


def test_a_rejected_model_is_never_usable(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    _add(workflow, people.admin1, model_file)
    with pytest.raises(ModelError, match="needs a reason"):
        reject_model(workflow, people.admin2, "vendor", "  ")
    rejected = reject_model(workflow, people.admin2, "vendor", "licence not on file")
    assert (rejected.state, rejected.reason) == ("rejected", "licence not on file")
    assert _entries(workflow)[-1]["details"]["reason"] == "licence not on file"
    with workflow.workspace.session() as session, pytest.raises(ModelError, match="rejected"):
        model_settings(session, "vendor", EngineSettings())


def _jpeg(folder: Path) -> Path:
    path = folder / "photo.onnx"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200))
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.onnx"
    path.write_text("this is a model, honest\n")
    return path


def _small_input(folder: Path) -> Path:
    path = folder / "small.onnx"
    arcface_file(path, 64, size=96)
    return path


REFUSED: dict[str, tuple[Any, dict[str, Any], type[Exception], str]] = {
    "a JPEG": (_jpeg, {}, ModelError, "not an ONNX model"),
    "a text file": (_text, {}, ModelError, "not an ONNX model"),
    "the wrong input size": (_small_input, {}, ModelError, "96"),
    "a missing file": (lambda folder: folder / "gone.onnx", {}, ModelError, "does not exist"),
    "the built-in name": (None, {"name": "dlib"}, ModelError, "built-in"),
    "a malformed name": (None, {"name": "Vendor Model"}, ModelError, "lower-case"),
    "a one-letter name": (None, {"name": "v"}, ModelError, "2 to 64"),
    "a blank licence": (None, {"licence": "   "}, ModelError, "licence is blank"),
    "a blank source": (None, {"source": ""}, ModelError, "source is blank"),
    "a NUL in the licence": (None, {"licence": "GPL\x00"}, TextRefusedError, r"\(licence\)"),
    "an escape in the source": (None, {"source": "a\x1b[31m"}, TextRefusedError, "U\\+001B"),
    "an unknown layout": (None, {"layout": "NWCH"}, ModelError, "NCHW or NHWC"),
    "an unknown colour": (None, {"colour": "YUV"}, ModelError, "RGB or BGR"),
    "a zero std": (None, {"input_std": 0.0}, ModelError, "must not be 0"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_each_refusal_is_one_line_and_changes_nothing(
    workflow: Workflow, people: People, model_file: Path, case: str
) -> None:
    make, extra, error, message = REFUSED[case]
    path = model_file if make is None else make(model_file.parent)
    with pytest.raises(error, match=message) as caught:
        _add(workflow, people.admin1, path, **extra)
    assert "\n" not in str(caught.value)
    assert _rows(workflow) == [] and _entries(workflow) == []


def test_a_taken_name_the_same_bytes_and_a_non_admin_are_refused(
    workflow: Workflow, people: People, model_file: Path, tmp_path: Path
) -> None:
    _add(workflow, people.admin1, model_file)
    other = tmp_path / "other.onnx"
    arcface_file(other, 32)
    with pytest.raises(ModelError, match="already exists"):
        _add(workflow, people.admin1, other)
    with pytest.raises(ModelError, match="already added as model 'vendor'"):
        _add(workflow, people.admin2, model_file, name="vendor-again")
    with pytest.raises(NotAnAdminError):
        _add(workflow, people.analyst, other, name="other")
    assert [row.name for row in _rows(workflow)] == ["vendor"]
    assert len(_entries(workflow)) == 1


def test_bytes_changed_between_add_and_confirm_are_refused(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    added = _add(workflow, people.admin1, model_file)
    _alter(model_file)
    with pytest.raises(ModelError) as caught:
        confirm_model(workflow, people.admin2, "vendor")
    message = str(caught.value)
    assert str(model_file.resolve()) in message and added.sha256 in message
    assert "changed bytes" in message
    assert [row.state for row in _rows(workflow)] == ["pending"]
    assert [e["action"] for e in _entries(workflow)] == ["model.added"]
    model_file.unlink()
    with pytest.raises(ModelError, match="is missing"):
        confirm_model(workflow, people.admin2, "vendor")


def test_a_model_altered_after_confirmation_is_refused_at_load(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    added = _add(workflow, people.admin1, model_file)
    confirm_model(workflow, people.admin2, "vendor")
    with workflow.workspace.session() as session:
        settings = model_settings(session, "vendor", EngineSettings())
    assert settings.embedder_model is not None
    assert settings.embedder_model.sha256 == added.sha256
    _alter(model_file)
    with workflow.workspace.session() as session, pytest.raises(ModelError) as caught:
        model_settings(session, "vendor", EngineSettings())
    message = str(caught.value)
    assert str(model_file.resolve()) in message
    assert added.sha256 in message
    assert [view.file_check for view in model_views(workflow, people.admin1)][1].startswith(
        "changed (now "
    )


def test_activation_needs_a_confirmed_calibrated_unchanged_model(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    added = _add(workflow, people.admin1, model_file)

    def activate() -> None:
        with workflow.workspace.session() as session, session.begin():
            activate_model(session, workflow, people.admin1, "vendor", 0, None)

    with pytest.raises(ModelError, match="pending"):
        activate()
    confirm_model(workflow, people.admin2, "vendor")
    with pytest.raises(ModelError, match="no calibration"):
        activate()
    calibrate_model(workflow, added.model_key)
    with (
        pytest.raises(ModelError, match="already the active model"),
        workflow.workspace.session() as session,
        session.begin(),
    ):
        activate_model(session, workflow, people.admin1, "dlib", 0, None)
    assert _entries(workflow, "model.activated") == []
    activate()
    (entry,) = _entries(workflow, "model.activated")
    assert entry["details"]["previous"] == "dlib" and entry["details"]["name"] == "vendor"
    with workflow.workspace.session() as session:
        assert active_model(session).model_key == added.model_key
        # The quality gate's sharpness limit is the model's own.
        settings = model_settings(session, "vendor", EngineSettings())
    assert settings.quality.min_sharpness == 7.5
    shown = model_view(workflow, people.auditor, "vendor")
    assert shown.active and shown.calibrated and len(shown.activations) == 1
    assert shown.calibration is not None and shown.calibration["verify_threshold"] == 0.5


def test_a_second_workflow_follows_a_switch_made_elsewhere(
    workflow: Workflow, people: People, model_file: Path
) -> None:
    added = _add(workflow, people.admin1, model_file)
    confirm_model(workflow, people.admin2, "vendor")
    calibrate_model(workflow, added.model_key)
    with Workflow(Workspace.open(workflow.workspace.home)) as other:
        assert other.settings.embedder_model is None  # dlib, nothing switched yet
        dlib_key = other.engine.model.key
        assert other.index.model.key == dlib_key
        assert other.model_in_step() is False
        with workflow.workspace.session() as session, session.begin():
            activate_model(session, workflow, people.admin1, "vendor", 0, None)
        assert other.engine.model.key == dlib_key  # until its next search
        assert other.model_in_step() is True
        assert other.engine.model.key == added.model_key
        assert other.index.model.key == added.model_key
        assert other.settings.quality.min_sharpness == 7.5
        assert other.model_in_step() is False
    # A Workflow opened after the switch starts with the active model; one whose settings
    # were given keeps them.
    with Workflow(Workspace.open(workflow.workspace.home)) as later:
        assert later.engine.model.key == added.model_key
    with Workflow(Workspace.open(workflow.workspace.home), EngineSettings()) as pinned:
        assert pinned.model_in_step() is False
        assert pinned.settings.embedder_model is None
    # The active model's file altered: a Workflow refuses to load it, naming both hashes.
    _alter(model_file)
    with (
        Workflow(Workspace.open(workflow.workspace.home)) as refused,
        pytest.raises(ModelError, match=added.sha256),
    ):
        refused.engine  # noqa: B018 - the property loads the model


def test_the_shared_model_needs_no_declared_values(
    workflow: Workflow, people: People, mobilefacenet_onnx: Path
) -> None:
    added = _add(workflow, people.admin1, mobilefacenet_onnx, name="mobilefacenet")
    assert (added.dimension, added.layout, added.input_size) == (192, "NCHW", 112)
    details = _entries(workflow)[0]["details"]
    assert details["declared"] == []
    assert {"dimension", "layout", "input_size"} <= set(details["recognised"])
    confirm_model(workflow, people.admin2, "mobilefacenet")
    with workflow.workspace.session() as session:
        spec = model_settings(session, "mobilefacenet", EngineSettings()).embedder_model
    assert spec is not None and spec.path == mobilefacenet_onnx.resolve()
    with workflow.workspace.session() as session:
        assert face_model_by_name(session, "mobilefacenet") is not None


def test_a_governed_search_uses_a_model_another_process_switched_to(tmp_path: Path) -> None:
    """The searching process made its engine with dlib; after another process's switch,
    its next search makes the probe with the new model (not refused as a stale request)."""
    agency = make_agency(tmp_path, purpose="demo")
    searcher = agency.workflow
    photo = demo_photos(tmp_path / "photos")["hopper.jpg"]
    path = tmp_path / "vendor.onnx"
    arcface_file(path, 64)
    assert searcher.engine.model.key.startswith("dlib-resnet")  # made before the switch
    with Workflow(Workspace.open(searcher.workspace.home)) as elsewhere:
        added = _add(elsewhere, agency["admin1"], path)
        confirm_model(elsewhere, agency["admin2"], "vendor")
        calibrate_model(elsewhere, added.model_key)
        with elsewhere.workspace.session() as session, session.begin():
            activate_model(session, elsewhere, agency["admin1"], "vendor", 0, None)
    outcome = request_search(searcher, agency["ana"], photo, FORM)
    assert outcome.status == "completed", outcome
    assert searcher.engine.model.key == added.model_key
    (run,) = [entry for entry in _entries(searcher, "search.run")]
    assert run["details"]["model"] == added.model_key


def test_an_enrolment_uses_a_model_another_process_switched_to(tmp_path: Path) -> None:
    """A process whose engine was dlib enrols with the new model after a switch elsewhere:
    else the photo would have no template of the model searches use."""
    agency = make_agency(tmp_path, purpose="demo")
    enroller = agency.workflow
    photo = demo_photos(tmp_path / "photos")["hopper.jpg"]
    path = tmp_path / "vendor.onnx"
    arcface_file(path, 64)
    assert enroller.engine.model.key.startswith("dlib-resnet")
    with Workflow(Workspace.open(enroller.workspace.home)) as elsewhere:
        added = _add(elsewhere, agency["admin1"], path)
        confirm_model(elsewhere, agency["admin2"], "vendor")
        calibrate_model(elsewhere, added.model_key)
        with elsewhere.workspace.session() as session, session.begin():
            activate_model(session, elsewhere, agency["admin1"], "vendor", 0, None)
    summary = enrol_files(
        enroller, agency["admin1"], [EnrolmentRequest(photo, "S-1")], DEMO_PROVENANCE, workers=1
    )
    assert summary.count(EnrolmentStatus.ENROLLED) == 1
    with enroller.workspace.session() as session:
        keys = session.scalars(select(FaceTemplate.model_key)).all()
    assert keys == [added.model_key]
