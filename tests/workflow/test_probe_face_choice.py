"""A probe with several faces: the only one passing the quality gate is taken, and said so.

BlazeFace finds bystanders cut off at a photo's edge that HOG misses: on lfw-dev's
Abdel_Nasser_Assidi_0002 a second face whose eyes are 17 px apart. That face could not be
searched anyway, so asking the analyst to choose would be a question with one answer.
Two usable faces remain the analyst's to choose.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from candor.cli.render import request_outcome_lines
from candor.faces import EngineSettings, FaceEngine
from candor.store import AuditEntry
from candor.workflow import (
    MultipleFacesError,
    RequestForm,
    RequestOutcome,
    request_search,
    request_verify,
)
from candor.workflow.probes import read_probe
from tests.agency import make_agency

pytestmark = [pytest.mark.faces]

FORM = RequestForm(
    case_number="2026-000321",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
BYSTANDER_NOTE = (
    "1 usable face of 2 found; the other fails the gate: eyes 17 px apart, below the "
    "minimum of 24 px"
)


@pytest.fixture(scope="module")
def blazeface() -> FaceEngine:
    return FaceEngine(EngineSettings(detector="blazeface"))


def lfw_photo(faces_dir: Path, name: str, number: int) -> Path:
    return faces_dir / "lfw-dev" / name / f"{name}_{number:04d}.jpg"


def test_the_only_face_passing_the_gate_is_taken_and_the_other_named(
    blazeface: FaceEngine, faces_dir: Path
) -> None:
    probe = read_probe(blazeface, lfw_photo(faces_dir, "Abdel_Nasser_Assidi", 2), None)
    assert probe.face.faces_found == 2
    assert probe.face.face_index == 0
    assert probe.face.face_choice == "index 0 of 2"
    assert probe.face.note == BYSTANDER_NOTE
    named = read_probe(blazeface, lfw_photo(faces_dir, "Abdel_Nasser_Assidi", 2), 0)
    assert named.face.note is None  # the analyst chose: nothing to explain


def test_two_usable_faces_still_ask_the_analyst(
    blazeface: FaceEngine, faces_dir: Path, tmp_path: Path
) -> None:
    halves = [
        np.asarray(Image.open(lfw_photo(faces_dir, name, 1)))[:, 40:210]
        for name in ("Abdel_Nasser_Assidi", "Manfred_Stolpe")
    ]
    path = tmp_path / "two.png"
    Image.fromarray(np.concatenate(halves, axis=1)).save(path)
    with pytest.raises(MultipleFacesError) as refused:
        read_probe(blazeface, path, None)
    assert [face["usable"] for face in refused.value.faces] == [True, True]
    assert read_probe(blazeface, path, 1).face.face_choice == "index 1 of 2"


def test_the_search_tells_the_analyst_and_audits_the_choice(
    tmp_path: Path, faces_dir: Path
) -> None:
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    workflow.settings = replace(workflow.base_settings, detector="blazeface")
    try:
        probe = lfw_photo(faces_dir, "Abdel_Nasser_Assidi", 2)
        outcome = request_search(workflow, agency["ana"], probe, FORM)
        # A 1:1 comparison takes its photos through the same rule.
        other = lfw_photo(faces_dir, "Abdel_Nasser_Assidi", 1)
        verified = request_verify(workflow, agency["ana"], other, probe, FORM)
        with workflow.workspace.session() as session:
            bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    finally:
        workflow.close()
    # The analyst is told which of her files; the audit log never holds a file's name,
    # which may be a person's (as it is here).
    assert outcome.probe_notes == (f"Abdel_Nasser_Assidi_0002.jpg: {BYSTANDER_NOTE}",)
    requested = [json.loads(body) for body in bodies]
    details = next(e["details"] for e in requested if e["action"] == "search.requested")
    assert details["faces_found"] == [2]
    assert details["face_choice"] == ["index 0 of 2"]
    assert details["face_choice_note"] == [BYSTANDER_NOTE]
    assert b"Abdel_Nasser_Assidi" not in b"\n".join(bodies)
    # Abdel_Nasser_Assidi_0001 shows two small blurred faces behind him: each is named.
    first, second = verified.probe_notes
    assert first.startswith(
        "Abdel_Nasser_Assidi_0001.jpg: 1 usable face of 3 found; the others fail the gate: "
        "face 1: eyes 19 px apart, below the minimum of 24 px, too blurred: sharpness "
    )
    assert "; face 2: eyes 16 px apart" in first
    assert second == f"Abdel_Nasser_Assidi_0002.jpg: {BYSTANDER_NOTE}"
    three = first.removeprefix("Abdel_Nasser_Assidi_0001.jpg: ")
    details = next(e["details"] for e in requested if e["action"] == "verify.requested")
    assert details["faces_found"] == [3, 2]
    assert details["face_choice"] == ["index 0 of 3", "index 0 of 2"]
    assert details["face_choice_note"] == [three, BYSTANDER_NOTE]


def test_the_requester_reads_the_note_first() -> None:
    outcome = RequestOutcome(
        search_id=7,
        kind="search",
        status="pending_approval",
        decision={"policy_sha256": "ab" * 32},
        probe_notes=("p.jpg: 1 usable face of 2 found; the other fails the gate: [x]",),
    )
    lines = request_outcome_lines(outcome)
    assert lines[1] == "p.jpg: 1 usable face of 2 found; the other fails the gate: \\[x]"


def test_a_refused_probe_is_recorded_without_its_file_name(tmp_path: Path) -> None:
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    probe = tmp_path / "Jane_Roe_0001.png"  # a file named after the person, as is common
    Image.new("RGB", (300, 300), "grey").save(probe)
    try:
        outcome = request_search(workflow, agency["ana"], probe, FORM)
        with workflow.workspace.session() as session:
            bodies = session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    finally:
        workflow.close()
    assert outcome.status == "denied"
    details = next(
        json.loads(body)["details"]
        for body in bodies
        if json.loads(body)["action"] == "search.requested"
    )
    assert details["probe_refused"] == "the probe: no face found"
    assert b"Jane_Roe" not in b"\n".join(bodies)
    assert "Jane_Roe" not in json.dumps(outcome.decision)
