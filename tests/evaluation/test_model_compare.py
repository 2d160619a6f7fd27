"""Face models side by side (`run_model_comparison`, `compare_arms` with a model on each
arm) and the report card naming its model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from candor.evaluation.compare import Arm, compare_arms
from candor.evaluation.report_card import EvaluationOptions, ModelLabel, evaluate_folder
from candor.faces import EngineSettings, FaceEngine
from candor.faces.recipe import RECIPES
from candor.store import AuditEntry, ReportCard
from candor.store.face_models import FaceModelRecord, add_face_model
from candor.workflow import PermissionDeniedError
from candor.workflow.evaluation_ops import EvaluationError, run_model_comparison
from candor.workflow.models import ModelError
from tests.agency import make_agency

SIX = ("Aaron_Peirsol", "Abdoulaye_Wade", "Abdullah_Gul", "Abel_Pacheco", "Adam_Sandler",
       "Adrien_Brody")  # fmt: skip


@pytest.fixture(scope="module")
def six_people(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six lfw-dev people, two photos each (symlinks, never copies)."""
    root = tmp_path_factory.mktemp("six") / "dataset"
    for name in SIX:
        (root / name).mkdir(parents=True)
        for photo in sorted((faces_dir / "lfw-dev" / name).iterdir())[:2]:
            (root / name / photo.name).symlink_to(photo)
    return root


@pytest.mark.faces
def test_one_model_on_two_arms_differs_by_nothing_and_each_arm_names_its_model(
    six_people: Path, tmp_path: Path
) -> None:
    settings = EngineSettings()
    model = FaceEngine(settings).model
    label = ModelLabel("dlib", model.key, model.dimension, "CC0-1.0")
    arms = [
        Arm("first", RECIPES["baseline"], settings, label),
        Arm("second", RECIPES["baseline"], settings, label),
    ]
    comparison = compare_arms(
        six_people, arms, axis="model", replicates=100, cache_dir=tmp_path, timing_sample=1
    )
    first, second = comparison.results
    assert first.figures == second.figures
    for key, difference in second.differences.items():
        if difference.value is not None:
            # The same searches on the same resamples: a paired difference of exactly 0.
            assert difference.value == 0.0 and difference.interval == (0.0, 0.0), key
            assert difference.verdict == "within noise"
    document = comparison.to_dict()
    assert document["compared"] == "models" and "recipes" not in document
    assert [entry["name"] for entry in document["models"]] == ["first", "second"]
    assert document["models"][0]["face_model"] == label.to_dict()
    json.dumps(document)
    with pytest.raises(ValueError, match="a model is named twice"):
        compare_arms(six_people, [arms[0], arms[0]], axis="model", cache_dir=tmp_path)


@pytest.mark.faces
def test_the_report_card_names_its_model_and_refuses_a_label_for_other_bytes(
    six_people: Path, tmp_path: Path
) -> None:
    options = EvaluationOptions(replicates=100)
    card = evaluate_folder(six_people, options=options, cache_dir=tmp_path)
    model = FaceEngine(EngineSettings()).model
    assert card.result["face_model"] == {
        "name": model.name, "key": model.key, "dimension": 128, "licence": "not stated",
    }  # fmt: skip
    other = ModelLabel("elsewhere", "elsewhere/1/0123456789abcdef", 512, "MIT")
    with pytest.raises(ValueError, match="the model named elsewhere is elsewhere/1/"):
        evaluate_folder(six_people, options=options, cache_dir=tmp_path, model=other)


def test_models_that_cannot_be_used_are_refused_before_any_work(
    tmp_path: Path, isolated_cache: Path
) -> None:
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    dataset = tmp_path / "dataset"
    for person in ("a", "b"):
        (dataset / person).mkdir(parents=True)
        (dataset / person / "1.jpg").write_bytes(b"")
    file = tmp_path / "pending.onnx"
    file.write_bytes(b"stand-in")
    with workflow.workspace.session() as session, session.begin():
        add_face_model(
            session,
            FaceModelRecord(
                name="pending-model", model_key="pending-model/1/0123456789abcdef",
                path=str(file), sha256="ab" * 32, dimension=192, layout="NCHW",
                input_size=112, input_mean=127.5, input_std=128.0, colour="RGB",
                alignment="arcface-112", licence="unknown", source="a test",
                added_by=agency["admin1"].user_id, added_at=datetime.now(UTC),
            ),
        )  # fmt: skip
        before = session.scalar(select(func.count()).select_from(AuditEntry))

    admin = agency["admin1"]
    with pytest.raises(PermissionDeniedError, match=r"may not evaluation\.run"):
        run_model_comparison(workflow, agency["ana"], dataset, ["dlib"])
    with pytest.raises(ModelError, match="no model named 'nobody'"):
        run_model_comparison(workflow, admin, dataset, ["dlib", "nobody"])
    with pytest.raises(ModelError, match="'pending-model' is pending"):
        run_model_comparison(workflow, admin, dataset, ["dlib", "pending-model"])
    with pytest.raises(EvaluationError, match="a model is named twice"):
        run_model_comparison(workflow, admin, dataset, ["dlib", "dlib"])
    with workflow.workspace.session() as session:
        assert session.scalar(select(func.count()).select_from(ReportCard)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before
    assert not any(path.is_file() for path in isolated_cache.rglob("*"))
    workflow.close()
