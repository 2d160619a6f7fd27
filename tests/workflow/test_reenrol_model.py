"""Switching models by re-enrolment: every photo's template made with the new model, searches
on the old one meanwhile, the switch in one transaction, refusals, the job (cancel, resume)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from candor.faces.recipe import DEFAULT_RECIPE, RECIPES
from candor.faces.registry import dlib_resnet_model_id
from candor.index.cohort import score_name
from candor.store import AuditEntry, FaceTemplate, face_models
from candor.store.calibrations import add_active_calibration
from candor.store.face_models import ModelCalibration, add_model_calibration, model_activations
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    Workflow,
    enrol_files,
    request_search,
    view_candidates,
)
from candor.workflow import reenrol as reenrol_module
from candor.workflow.audit_ops import verify_log
from candor.workflow.calibration import is_calibrated
from candor.workflow.jobs import JobRunner, cancel_job, queue_reenrolment, resume_job
from candor.workflow.models import (
    ModelError,
    activate_model,
    active_model,
    add_model,
    confirm_model,
    reject_model,
)
from candor.workflow.reenrol import model_census, reenrol_model
from tests.agency import Agency, make_agency, new_user
from tests.support import evaluation_provenance, people_with_photos, photos_of
from tests.workflow.test_governed import FORM

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

NAME = "mobilefacenet"
# An ArcFace-class model's cosine thresholds by false match rate (the shape of the shared
# model's measured table; the figures do not matter here, only that one is stored).
POINTS = [[1e-2, 0.30], [1e-3, 0.38], [1e-4, 0.45], [1e-5, 0.52], [1e-6, 0.58]]


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    made.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    yield made
    made.workflow.close()


def enrol(agency: Agency, people: list[Path]) -> None:
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    summary = enrol_files(agency.workflow, agency["admin1"], requests, evaluation_provenance())
    assert summary.count(EnrolmentStatus.ENROLLED) == len(people), summary.outcomes


def added(agency: Agency, path: Path, name: str = NAME, *, confirm: bool = True) -> str:
    """Add the model as admin1, confirmed by admin2; its model key."""
    view = add_model(
        agency.workflow,
        agency["admin1"],
        path,
        name=name,
        licence="evaluation use only (tests)",
        source="../shared/models (tests)",
    )
    if confirm:
        confirm_model(agency.workflow, agency["admin2"], name)
    return str(view.model_key)


def calibrated(
    agency: Agency, model_key: str, *, min_sharpness: float = 0.0, normalised: bool = True
) -> None:
    """Store a 1:N cosine table and the model's own thresholds, as `candor calibrate
    --model` does (measuring them is the thresholds tests' business; this is lean), and the
    default recipe's normalised table unless `normalised` is False (a folder too small)."""
    workflow = agency.workflow
    if normalised:
        normalised_table(agency, model_key)
    with workflow.workspace.session() as session, session.begin():
        add_active_calibration(
            session,
            model_key=model_key,
            score="cosine",
            dataset="tests",
            dataset_sha256="0" * 64,
            impostor_pairs=1_000_000,
            templates=2_000,
            points=POINTS,
            created_at=workflow.now(),
            created_by=None,
        )
        add_model_calibration(
            session,
            ModelCalibration(
                model_key=model_key,
                dataset="tests",
                dataset_sha256="0" * 64,
                verify_threshold=0.4,
                verify_false_match_rate=1e-3,
                verify_false_non_match_rate=0.02,
                impostor_pairs=1_000_000,
                mated_pairs=1_000,
                repeat_similarity=0.8,
                min_sharpness=min_sharpness,
                recipe=None,
                details={},
                created_at=workflow.now(),
                created_by=None,
            ),
        )


def normalised_table(agency: Agency, model_key: str) -> None:
    """The 1:N table of the default recipe's normalised score, as `candor calibrate --model`
    stores it from a folder with COHORT_SIZE people in each half."""
    workflow = agency.workflow
    with workflow.workspace.session() as session, session.begin():
        add_active_calibration(
            session,
            model_key=model_key,
            score=score_name(DEFAULT_RECIPE.cohort_k),
            dataset="tests",
            dataset_sha256="0" * 64,
            impostor_pairs=1_000_000,
            templates=4_000,
            points=POINTS,
            created_at=workflow.now(),
            created_by=None,
        )


def actions(workflow: Workflow) -> list[dict[str, Any]]:
    with workflow.workspace.session() as session:
        return [json.loads(body) for body in session.scalars(select(AuditEntry.body))]


def templates_of(workflow: Workflow, model_key: str) -> int:
    with workflow.workspace.session() as session:
        return int(
            session.scalar(
                select(func.count(FaceTemplate.id)).where(FaceTemplate.model_key == model_key)
            )
            or 0
        )


def test_reenrol_model_makes_every_template_then_switches_and_back(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path
) -> None:
    people = people_with_photos(faces_dir, 4)
    enrol(agency, people)
    admin = agency["admin1"]
    dlib_key = dlib_resnet_model_id().key
    key = added(agency, mobilefacenet_onnx)
    calibrated(agency, key)
    census = model_census(agency.workflow, admin)
    assert census.active == "dlib" and census.photos == 4
    rows = {count.name: count for count in census.models}
    assert (rows["dlib"].templates, rows["dlib"].active) == (4, True)
    assert (rows[NAME].templates, rows[NAME].missing, rows[NAME].calibrated) == (0, 4, True)
    # Another process searching meanwhile: its Workflow follows the active model.
    other = Workflow(agency.workflow.workspace)
    seen: list[tuple[str, str]] = []

    def midway(done: int, total: int) -> None:
        if done == 3:  # after the first batch of two committed
            searched = request_search(other, agency["ana"], photos_of(people[0])[1], FORM)
            with other.workspace.session() as session:
                seen.append((active_model(session).name, other.engine.model.key))
            assert searched.candidates_found >= 1

    summary = reenrol_model(agency.workflow, admin, NAME, progress=midway, batch_size=2)

    assert seen == [("dlib", dlib_key)]  # the old model searched while templates were made
    assert (len(summary.made), summary.refused, summary.batches) == (4, [], 2)
    assert (summary.activated, summary.templates) == (True, 4)
    assert templates_of(agency.workflow, key) == 4
    assert templates_of(agency.workflow, dlib_key) == 4  # the old model's stay
    with agency.workflow.workspace.session() as session:
        assert active_model(session).name == NAME
        assert [row.model_name for row in model_activations(session)] == [NAME]
    # The other process switches at its next search, and finds the person with the new model.
    searched = request_search(other, agency["ana"], photos_of(people[1])[1], FORM)
    assert other.engine.model.key == key
    listing = view_candidates(other, agency["eve"], searched.search_id)
    assert listing.candidates[0].subject_ref == people[1].name
    assert listing.threshold_meaning is not None and NAME in listing.threshold_meaning
    other.close()

    bodies = actions(agency.workflow)
    names = [body["action"] for body in bodies]
    started = names.index("model.reenrolment_started")
    assert names[started:].count("gallery.reenrolled") == 2
    assert names.index("model.activated") < names.index("model.reenrolment_finished")
    activated = next(body for body in bodies if body["action"] == "model.activated")
    assert (activated["details"]["name"], activated["details"]["previous"]) == (NAME, "dlib")
    for person in people:
        assert person.name not in json.dumps(bodies[started:])
    report = verify_log(agency.workflow, agency["ada"])
    assert report.ok, report.problem

    # Already active, every template made: refused, nothing written.
    before = len(bodies)
    with pytest.raises(ModelError, match="already the active model"):
        reenrol_model(agency.workflow, admin, NAME)
    assert len(actions(agency.workflow)) == before
    # Switching back is cheap: dlib's templates are all there.
    back = reenrol_model(agency.workflow, admin, "dlib")
    assert (back.made, back.refused, back.activated, back.templates) == ([], [], True, 4)
    with agency.workflow.workspace.session() as session:
        assert active_model(session).name == "dlib"


def test_refusals_change_nothing(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path, tmp_path: Path
) -> None:
    enrol(agency, people_with_photos(faces_dir, 1))
    admin = agency["admin1"]
    copy = tmp_path / "copy.onnx"
    shutil.copyfile(mobilefacenet_onnx, copy)
    pending_key = added(agency, mobilefacenet_onnx, "pending-one", confirm=False)
    calibrated(agency, pending_key)
    before = len(actions(agency.workflow))

    def refused(name: str, expected: str) -> None:
        with pytest.raises(ModelError, match=expected) as raised:
            reenrol_model(agency.workflow, admin, name)
        assert "\n" not in str(raised.value)
        with pytest.raises(ModelError, match=expected):
            queue_reenrolment(agency.workflow, admin, model=name)

    refused("nosuch", "nosuch")
    refused("pending-one", "pending")
    refused("dlib", "already the active model")
    assert len(actions(agency.workflow)) == before
    reject_model(agency.workflow, agency["admin2"], "pending-one", "not licensed")
    refused("pending-one", "rejected")
    # The same bytes again (the rejected record does not hold them), confirmed, uncalibrated.
    uncalibrated_key = added(agency, copy, "uncalibrated")
    before = len(actions(agency.workflow))
    refused("uncalibrated", "not calibrated")
    assert len(actions(agency.workflow)) == before
    # Calibrated on a folder too small for the normalised score: the default recipe would
    # refuse every search once the gallery holds COHORT_SIZE templates (issue 16's note 3).
    calibrated(agency, uncalibrated_key, normalised=False)
    refused("uncalibrated", r"not calibrated \(recipe combined .* normalised score")
    assert len(actions(agency.workflow)) == before
    with agency.workflow.workspace.session() as session:
        assert is_calibrated(session, uncalibrated_key, RECIPES["baseline"])
        assert not is_calibrated(session, uncalibrated_key, DEFAULT_RECIPE)
    normalised_table(agency, uncalibrated_key)
    before = len(actions(agency.workflow))
    with copy.open("ab") as file:  # its bytes are no longer those confirmed
        file.write(b"\0")
    with pytest.raises(ModelError, match=r"copy\.onnx") as changed:
        reenrol_model(agency.workflow, admin, "uncalibrated")
    assert "\n" not in str(changed.value)
    assert len(actions(agency.workflow)) == before
    assert templates_of(agency.workflow, uncalibrated_key) == 0
    with agency.workflow.workspace.session() as session:
        assert model_activations(session) == []


def test_photos_the_new_quality_gate_refuses_are_counted_and_no_empty_model_is_switched_to(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path
) -> None:
    enrol(agency, people_with_photos(faces_dir, 2))
    key = added(agency, mobilefacenet_onnx)
    calibrated(agency, key, min_sharpness=1e12)  # no chip is that sharp
    with pytest.raises(ModelError, match="no gallery photo got a template"):
        reenrol_model(agency.workflow, agency["admin1"], NAME)
    finished = [b for b in actions(agency.workflow) if b["action"] == "model.reenrolment_finished"]
    assert [(b["details"]["refused"], b["details"]["activated"]) for b in finished] == [(2, False)]
    reenrolled = [b for b in actions(agency.workflow) if b["action"] == "gallery.reenrolled"]
    assert all("quality gate" in r for b in reenrolled for r in b["details"]["refused_reasons"])
    with agency.workflow.workspace.session() as session:
        assert active_model(session).name == "dlib"


def test_the_job_is_cancelled_between_batches_resumed_and_switches(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path
) -> None:
    enrol(agency, people_with_photos(faces_dir, 4))
    admin = agency["admin1"]
    key = added(agency, mobilefacenet_onnx)
    calibrated(agency, key)
    job = queue_reenrolment(agency.workflow, admin, model=NAME)
    assert (job.total, job.description) == (
        4,
        f"re-enrol the gallery with model {NAME}, then switch to it",
    )

    def cancel_after_first(job_id: int, done: int) -> None:
        if done == 1:
            cancel_job(agency.workflow, admin, job_id)

    runner = JobRunner(agency.workflow, batch_size=2, on_item=cancel_after_first)
    [cancelled] = runner.run_until_empty()
    assert cancelled.state == "cancelled"
    assert templates_of(agency.workflow, key) == 2  # the first batch committed
    with agency.workflow.workspace.session() as session:
        assert active_model(session).name == "dlib"
    resume_job(agency.workflow, admin, job.id)
    [done] = JobRunner(agency.workflow, batch_size=2).run_until_empty()
    assert done.state == "done", done.error
    assert done.result is not None
    assert (done.result["activated"], done.result["templates"]) == (True, 4)
    assert templates_of(agency.workflow, key) == 4
    with agency.workflow.workspace.session() as session:
        [activation] = model_activations(session)
        assert (activation.model_name, activation.job_id) == (NAME, job.id)


def test_a_resumed_job_does_not_try_again_the_photos_it_refused_and_still_reports_them(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrol(agency, people_with_photos(faces_dir, 4))
    admin = agency["admin1"]
    key = added(agency, mobilefacenet_onnx)
    calibrated(agency, key)
    tried: list[int] = []
    make = reenrol_module._make_for_model

    def first_refused(
        workflow: Workflow, engine: Any, photo: Any
    ) -> np.ndarray | reenrol_module.Refused:
        tried.append(photo.image_id)
        if len(tried) == 1:
            return reenrol_module.Refused(photo.image_id, photo.sha256, "refused for the test")
        return make(workflow, engine, photo)

    monkeypatch.setattr(reenrol_module, "_make_for_model", first_refused)
    job = queue_reenrolment(agency.workflow, admin, model=NAME)

    def cancel_after_first(job_id: int, done: int) -> None:
        if done == 1:
            cancel_job(agency.workflow, admin, job_id)

    [cancelled] = JobRunner(
        agency.workflow, batch_size=2, on_item=cancel_after_first
    ).run_until_empty()
    assert cancelled.state == "cancelled"
    refused_image = tried[0]
    assert templates_of(agency.workflow, key) == 1  # the first batch: one made, one refused
    resume_job(agency.workflow, admin, job.id)
    [done] = JobRunner(agency.workflow, batch_size=2).run_until_empty()
    assert done.state == "done", done.error
    assert tried.count(refused_image) == 1  # not tried again on resume
    assert done.result is not None
    assert (done.result["refused"], done.result["refused_images"]) == (1, [refused_image])
    assert (done.result["activated"], done.result["templates"]) == (True, 3)


def test_an_enrolment_racing_the_switch_stores_no_template_of_the_old_model(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 16's note 4: a process that chose its model (dlib) before another switched
    # the workspace, and writes after the switch, would leave its photo without the new
    # model's template. The enrolment reads the active model after its insert, which waits
    # for a switch in progress, and is refused instead. (On PostgreSQL too:
    # CANDOR_TEST_DATABASE=postgres.)
    [person] = people_with_photos(faces_dir, 1)
    admin = agency["admin1"]
    calibrated(agency, added(agency, mobilefacenet_onnx))
    workflow = agency.workflow
    follow = workflow.model_in_step
    other = Workflow(workflow.workspace)

    def switched_meanwhile(session: Any = None) -> bool:
        moved = follow(session)  # this process reads dlib, then another one switches
        with other.workspace.session() as own, own.begin():
            if active_model(own).name != NAME:
                activate_model(own, other, admin, NAME, 0, None)
        return moved

    monkeypatch.setattr(workflow, "model_in_step", switched_meanwhile)
    request = EnrolmentRequest(photos_of(person)[0], person.name)
    summary = enrol_files(workflow, admin, [request], evaluation_provenance())
    other.close()
    [outcome] = summary.outcomes
    assert outcome.status is EnrolmentStatus.REFUSED
    assert f"switched to face model {NAME}" in str(outcome.reason)
    assert templates_of(workflow, dlib_resnet_model_id().key) == 0
    with workflow.workspace.session() as session:
        assert active_model(session).name == NAME
        assert face_models.gallery_photo_count(session) == 0


def test_switching_back_uses_the_target_models_quality_gate_not_the_active_ones(
    agency: Agency, faces_dir: Path, mobilefacenet_onnx: Path
) -> None:
    people = people_with_photos(faces_dir, 3)
    enrol(agency, people[:2])
    admin = agency["admin1"]
    key = added(agency, mobilefacenet_onnx)
    calibrated(agency, key)
    reenrol_model(agency.workflow, admin, NAME)
    # Enrolled while the new model is active: this photo has its template only.
    enrol(agency, people[2:])
    assert templates_of(agency.workflow, dlib_resnet_model_id().key) == 2
    # The active model's sharpness limit now refuses every chip of its own...
    calibrated(agency, key, min_sharpness=1e12)
    later = Workflow(agency.workflow.workspace)
    try:
        back = reenrol_model(later, admin, "dlib")
    finally:
        later.close()
    # ... and dlib's template of the photo is made under dlib's own limit, not that one.
    assert (len(back.made), back.refused, back.activated) == (1, [], True)
