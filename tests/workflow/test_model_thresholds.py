"""Every threshold per model: the 1:1 threshold, the repeat-search similarity, the sharpness
limit and the 1:N calibration come from the model's own calibration, and each meaning
sentence names the model."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select

from candor.cli.calibrate import _summary as calibrate_summary
from candor.faces import dlib_resnet_model_id
from candor.faces.recipe import RECIPES
from candor.store import AuditEntry, Provenance
from candor.store.calibrations import active_calibration_row, add_active_calibration
from candor.store.face_models import (
    ModelCalibration,
    active_model_calibration,
    add_model_calibration,
    face_model_by_name,
)
from candor.workflow import (
    EnrolmentRequest,
    RequestForm,
    Workflow,
    WorkflowError,
    enrol_files,
    request_search,
    request_verify,
)
from candor.workflow.accounts import active_policy
from candor.workflow.calibration import REPEAT_RULE, active_calibration, recalibrate
from candor.workflow.models import add_model, confirm_model
from candor.workflow.thresholds import is_calibrated, verify_threshold
from tests.agency import Agency, make_agency
from tests.support import people_with_photos, photos_of

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

FORM = RequestForm(
    case_number="2026-000123",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
PROVENANCE = Provenance(
    source_type="evaluation",
    source_ref="lfw-dev (tests)",
    legal_basis="research use under the LFW terms",
    collected_on=date(2024, 1, 1),
    retain_until=date(2030, 1, 1),
)
DLIB = dlib_resnet_model_id().key


@pytest.fixture
def agency(tmp_path: Path, faces_dir: Path) -> Any:
    made = make_agency(tmp_path)
    people = people_with_photos(faces_dir, 4)
    requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
    enrol_files(made.workflow, made["admin1"], requests, PROVENANCE)
    made.people = people  # type: ignore[attr-defined]
    yield made
    made.workflow.close()


def labelled(faces_dir: Path, folder: Path, people: int, photos: int) -> Path:
    """A labelled folder of the first `people` lfw-dev people with `photos` photos each."""
    for person in people_with_photos(faces_dir, people, minimum=photos):
        (folder / person.name).mkdir(parents=True)
        for photo in photos_of(person)[:photos]:
            (folder / person.name / photo.name).symlink_to(photo)
    return folder


def store_model_calibration(agency: Agency, model_key: str, **values: Any) -> None:
    fields: dict[str, Any] = {
        "model_key": model_key,
        "dataset": "a test folder",
        "dataset_sha256": "0" * 64,
        "verify_threshold": 0.5,
        "verify_false_match_rate": 0.001,
        "verify_false_non_match_rate": 0.02,
        "impostor_pairs": 10_000,
        "mated_pairs": 100,
        "repeat_similarity": 0.95,
        "min_sharpness": 4.0,
        "details": {},
        "created_at": agency.workflow.now(),
    }
    fields.update(values)
    with agency.workflow.workspace.session() as session, session.begin():
        add_model_calibration(session, ModelCalibration(**fields))


def entries(agency: Agency, action: str) -> list[dict[str, Any]]:
    with agency.workflow.workspace.session() as session:
        bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [entry for entry in map(json.loads, bodies) if entry["action"] == action]


def test_search_and_verify_meanings_name_the_model(agency: Agency) -> None:
    person = agency.people[1]  # type: ignore[attr-defined]
    search = request_search(
        agency.workflow, agency["ana"], photos_of(person)[1], FORM, face_index=0
    )
    assert f"model dlib ({DLIB})" in (search.threshold_meaning or "")
    verify = request_verify(
        agency.workflow, agency["ana"], photos_of(person)[0], photos_of(person)[1], FORM
    )
    assert verify.verification is not None
    assert f"model dlib ({DLIB})" in str(verify.verification["meaning"])
    # dlib without a calibration of its own: the shipped figures.
    assert verify.verification["threshold"] == pytest.approx(0.926)


def test_verify_uses_the_models_own_threshold(agency: Agency) -> None:
    store_model_calibration(agency, DLIB, verify_threshold=0.999, dataset="agency photos")
    person = agency.people[1]  # type: ignore[attr-defined]
    verify = request_verify(
        agency.workflow, agency["ana"], photos_of(person)[0], photos_of(person)[1], FORM
    )
    assert verify.verification is not None
    assert verify.verification["threshold"] == pytest.approx(0.999)
    assert verify.verification["passed"] is False
    assert "measured on agency photos" in str(verify.verification["meaning"])
    assert entries(agency, "verify.run")[-1]["details"]["threshold"] == "0.999"


def test_the_repeat_check_uses_the_models_similarity(agency: Agency) -> None:
    workflow = agency.workflow
    policy = active_policy(workflow)
    assert policy is not None
    first = request_search(
        workflow, agency["ana"], photos_of(agency.people[2])[1], FORM, face_index=0
    )  # type: ignore[attr-defined]
    # Another person's photo: no repeat at the policy's 0.95 (dlib's templates).
    other = request_search(
        workflow, agency["ana"], photos_of(agency.people[3])[1], FORM, face_index=0
    )  # type: ignore[attr-defined]
    assert other.status == "completed"
    # The model's own similarity, stated for the policy's value, replaces it: at 0 any
    # earlier probe of the model is near.
    rule = {"policy_similarity": f"{policy.repeat.similarity:g}", "impostor_rate": "1e-5",
            "extrapolated": False}  # fmt: skip
    store_model_calibration(agency, DLIB, repeat_similarity=0.0, details={REPEAT_RULE: rule})
    again = request_search(
        workflow, agency["ana"], photos_of(agency.people[0])[1], FORM, face_index=0
    )  # type: ignore[attr-defined]
    assert again.status == "pending_approval"
    assert again.decision["earlier_search_id"] == other.search_id
    assert first.search_id < other.search_id


def test_a_policy_changed_since_calibration_is_mapped_again(agency: Agency) -> None:
    workflow = agency.workflow
    request_search(workflow, agency["ana"], photos_of(agency.people[2])[1], FORM, face_index=0)  # type: ignore[attr-defined]
    # Stated for another policy value: the rule is applied again to the policy's 0.95
    # through dlib's (shipped) calibration, which gives 0.95 back: not a repeat.
    rule = {"policy_similarity": "0.5", "impostor_rate": "0.1", "extrapolated": False}
    store_model_calibration(agency, DLIB, repeat_similarity=0.0, details={REPEAT_RULE: rule})
    other = request_search(
        workflow, agency["ana"], photos_of(agency.people[3])[1], FORM, face_index=0
    )  # type: ignore[attr-defined]
    assert other.status == "completed"


def test_a_model_is_calibrated_only_with_both_calibrations(agency: Agency) -> None:
    other = "onnx/other/1/0123456789abcdef"
    workspace = agency.workflow.workspace
    with workspace.session() as session:
        assert is_calibrated(session, DLIB)  # the shipped calibrations
        assert not is_calibrated(session, other)
    with workspace.session() as session, session.begin():
        add_active_calibration(
            session, model_key=other, score="cosine", dataset="x", dataset_sha256="0" * 64,
            impostor_pairs=100, templates=20, points=[[0.1, 0.5]],
            created_at=agency.workflow.now(), created_by=None,
        )  # fmt: skip
    with workspace.session() as session:
        assert not is_calibrated(session, other)
    store_model_calibration(agency, other)
    with workspace.session() as session:
        assert is_calibrated(session, other)


def test_an_uncalibrated_model_has_no_verify_threshold(agency: Agency) -> None:
    key = "onnx/other/1/0123456789abcdef"
    stub = cast(Workflow, SimpleNamespace(engine=SimpleNamespace(model=SimpleNamespace(key=key))))
    with (
        agency.workflow.workspace.session() as session,
        pytest.raises(WorkflowError, match="calibrate DIR --model"),
    ):
        verify_threshold(stub, session)
    with (
        agency.workflow.workspace.session() as session,
        pytest.raises(WorkflowError, match=f"model {key} .*calibrate DIR --model {key}"),
    ):
        active_calibration(stub, "cosine", session)


def test_calibrate_records_every_threshold_of_dlib(
    agency: Agency, faces_dir: Path, tmp_path: Path
) -> None:
    folder = labelled(faces_dir, tmp_path / "labelled", 20, 4)
    # The baseline recipe: no cohort to calibrate, so only what this test is about runs.
    workflow = Workflow(agency.workflow.workspace, recipe=RECIPES["baseline"])
    seen: list[tuple[int, int]] = []
    try:
        done = recalibrate(
            workflow, agency["admin1"], folder, model="dlib",
            progress=lambda d, t: seen.append((d, t)),
        )  # fmt: skip
    finally:
        workflow.close()
    assert done.model_name == "dlib"
    assert done.model_calibration is not None, done.model_note
    assert seen[-1][0] == seen[-1][1]
    with agency.workflow.workspace.session() as session:
        row = active_model_calibration(session, DLIB)
        assert row is not None and row.id == done.model_calibration
        assert active_calibration_row(session, DLIB, "cosine") is not None
        # 20 people with 4 photos: 6 mated pairs each, and every other pair an impostor.
        assert row.mated_pairs == 120
        assert row.impostor_pairs + row.mated_pairs <= 80 * 79 // 2
        assert 0 < row.verify_false_match_rate <= 1e-3
        assert 0.8 < row.verify_threshold < 1.0
        # dlib is the reference of the sharpness rule: its own limit stays.
        assert row.min_sharpness == 4.0
        assert row.details[REPEAT_RULE]["policy_similarity"] == "0.95"
        threshold = verify_threshold(agency.workflow, session)
    assert threshold.cosine == row.verify_threshold
    # What `candor calibrate --json` prints of it.
    summary = json.loads(json.dumps(calibrate_summary(done)))
    assert summary["model_name"] == "dlib"
    assert summary["verify"]["threshold"] == pytest.approx(row.verify_threshold, abs=1e-6)
    assert summary["repeat"]["policy_similarity"] == "0.95"
    recorded = entries(agency, "calibration.recorded")
    assert {entry["details"]["model_name"] for entry in recorded} == {"dlib"}
    assert any("verify_threshold" in entry["details"] for entry in recorded)


def test_calibrating_an_unknown_model_is_refused(agency: Agency, tmp_path: Path) -> None:
    (tmp_path / "labelled" / "someone").mkdir(parents=True)
    before = len(entries(agency, "calibration.recorded"))
    with pytest.raises(WorkflowError, match="nobody"):
        recalibrate(agency.workflow, agency["admin1"], tmp_path / "labelled", model="nobody")
    assert len(entries(agency, "calibration.recorded")) == before


def test_calibrate_model_records_its_thresholds_and_not_dlibs(
    agency: Agency, faces_dir: Path, tmp_path: Path, mobilefacenet_onnx: Path
) -> None:
    workflow = agency.workflow
    add_model(
        workflow, agency["admin1"], mobilefacenet_onnx, name="mobilefacenet",
        licence="unknown: evaluation only", source="../shared/models (tests)",
    )  # fmt: skip
    confirm_model(workflow, agency["admin2"], "mobilefacenet")
    with workflow.workspace.session() as session:
        record = face_model_by_name(session, "mobilefacenet")
        assert record is not None
        key = record.model_key
        assert not is_calibrated(session, key)
    folder = labelled(faces_dir, tmp_path / "labelled", 20, 4)
    calibrating = Workflow(workflow.workspace, recipe=RECIPES["baseline"])
    try:
        done = recalibrate(calibrating, agency["admin1"], folder, model="mobilefacenet")
    finally:
        calibrating.close()
    assert done.model_calibration is not None, done.model_note
    assert done.cosine.model_key == key
    with workflow.workspace.session() as session:
        assert is_calibrated(session, key)
        row = active_model_calibration(session, key)
        assert row is not None
        # Nothing of dlib's was recorded.
        assert active_model_calibration(session, DLIB) is None
        assert active_calibration_row(session, DLIB, "cosine") is None
        # The model's own numbers: ArcFace-class cosines of strangers sit far below dlib's.
        assert row.verify_threshold < 0.8
        assert row.repeat_similarity < 0.8
        assert row.min_sharpness != 4.0
        assert row.details["sharpness"]["reference_refused_share"] is not None
    recorded = entries(agency, "calibration.recorded")
    assert {entry["details"]["model_name"] for entry in recorded} == {"mobilefacenet"}
    assert {entry["details"]["model"] for entry in recorded} == {key}
