"""`candor evaluate`: governed in a workspace (report card plus audit entry), or scratch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from candor.cli.app import app
from candor.evaluation import run_identification_protocol
from candor.evaluation.report_card import EvaluationOptions, evaluate_folder
from candor.store import AuditEntry, ReportCard, latest_report_card
from candor.workflow import PermissionDeniedError
from candor.workflow.evaluation_ops import EvaluationError, run_evaluation
from tests.agency import make_agency, new_user
from tests.support import people_with_photos, photos_of

REQUIRED_KEYS = {
    "rank1",
    "rank10",
    "fnir_at_fpir_0.01",
    "fnir_at_fpir_0.05",
    "fnir_at_fpir_0.003",
    "threshold_at_fpir_0.01",
    "fnmr_at_fmr_0.001",
    "gallery_size",
    "mated_searches",
    "nonmated_searches",
    "failed_to_enrol",
    "model",
    "ci",
}
FAST = EvaluationOptions(replicates=200)


def labelled_folder(faces_dir: Path, target: Path, people: int = 10) -> Path:
    """`people` lfw-dev people with two photos each, as symlinks."""
    for person in people_with_photos(faces_dir, people):
        (target / person.name).mkdir(parents=True)
        for photo in photos_of(person)[:2]:
            (target / person.name / photo.name).symlink_to(photo)
    return target


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.mark.faces
@pytest.mark.xdist_group("workflow")
def test_governed_evaluation_stores_the_report_card_with_its_audit_entry(
    tmp_path: Path, faces_dir: Path, isolated_cache: Path
) -> None:
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    dataset = labelled_folder(faces_dir, tmp_path / "labelled")

    with pytest.raises(PermissionDeniedError, match=r"may not evaluation\.run"):
        run_evaluation(workflow, agency["ana"], dataset, options=FAST)
    # Refused before any work: not one photo was read into the evaluation cache.
    assert not any(isolated_cache.rglob("*.json"))

    recorded = run_evaluation(workflow, agency["admin1"], dataset, options=FAST)
    result = recorded.evaluation.result
    assert set(result) >= REQUIRED_KEYS
    assert set(result["ci"]) >= REQUIRED_KEYS - {
        "gallery_size",
        "mated_searches",
        "nonmated_searches",
        "failed_to_enrol",
        "model",
        "ci",
    }
    with workflow.workspace.session() as session:
        card = session.get(ReportCard, recorded.report_card_id)
        assert card is not None
        assert card.result == json.loads(json.dumps(result))
        assert card.created_by == agency["admin1"].user_id
        assert card.dataset == str(dataset.absolute())
        assert card.dataset_sha256 == result["dataset_sha256"]
        assert "were not stated" in card.dataset_limits
        body = session.scalar(select(AuditEntry.body).where(AuditEntry.seq == recorded.audit_seq))
    assert body is not None
    entry = json.loads(body)
    assert entry["action"] == "evaluation.run"
    assert entry["actor"] == "admin1"
    assert entry["objects"] == {"report_card": recorded.report_card_id}
    details = entry["details"]
    assert details["dataset"] == str(dataset.absolute())
    assert details["dataset_sha256"] == card.dataset_sha256
    assert details["model"] == result["model"]
    assert details["settings"] == result["settings_key"]
    assert details["figures"]["rank1"] == f"{result['rank1']:.6g}"
    assert details["figures"]["fnir_at_fpir_0.01"] is None  # 5 non-mated searches

    # An auditor may evaluate too, and a changed photo changes the content hash.
    auditor = agency.add_user(new_user("aud", "auditor"))
    first = sorted(dataset.iterdir())[0]
    photo = sorted(first.iterdir())[0]
    replacement = photos_of(people_with_photos(faces_dir, 12)[11])[0]
    photo.unlink()
    photo.symlink_to(replacement)
    again = run_evaluation(workflow, auditor, dataset, options=FAST)
    assert again.evaluation.dataset_sha256 != card.dataset_sha256
    with workflow.workspace.session() as session:
        latest = latest_report_card(session)
        assert latest is not None and latest.id == again.report_card_id
        assert latest.created_by == auditor.user_id


@pytest.mark.faces
def test_groups_file_errors_refuse_before_any_work(
    tmp_path: Path, faces_dir: Path, isolated_cache: Path
) -> None:
    agency = make_agency(tmp_path)
    dataset = labelled_folder(faces_dir, tmp_path / "labelled", people=3)
    groups = tmp_path / "groups.tsv"
    groups.write_text("person\tgroup\nsomeone without a tab\n")
    with pytest.raises(EvaluationError, match=r"groups\.tsv:2: expected person<TAB>group"):
        run_evaluation(agency.workflow, agency["admin1"], dataset, groups_file=groups)
    assert not any(isolated_cache.rglob("*.json"))


@pytest.mark.faces
def test_scratch_needs_no_workspace_and_records_nothing(
    tmp_path: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = labelled_folder(faces_dir, tmp_path / "labelled")
    people = sorted(entry.name for entry in dataset.iterdir())
    groups = tmp_path / "groups.tsv"
    groups.write_text("".join(f"{name}\tG{i % 2}\n" for i, name in enumerate(people)))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    home = tmp_path / "no-workspace-here"
    before = tree(tmp_path)

    result = CliRunner().invoke(
        app,
        [
            "evaluate", str(dataset), "--scratch", "--json", "--groups", str(groups),
            "--bootstrap", "200", "--workers", "1", "--threshold", "0.95",
        ],
        env={"CANDOR_HOME": str(home)},
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # one JSON object and nothing else
    assert result.stdout.count("\n") == 1
    assert set(payload) >= REQUIRED_KEYS
    assert payload["gallery_size"] == 5 and payload["nonmated_searches"] == 5
    assert payload["fnir_at_fpir_0.01"] is None
    assert "0.01 x 5 non-mated searches" in payload["null_reasons"]["fnir_at_fpir_0.01"]
    assert payload["ci"]["fnir_at_fpir_0.01"] is None
    assert payload["rank1"] is not None and len(payload["ci"]["rank1"]) == 2
    assert payload["groups"]["threshold"] == 0.95
    assert payload["groups"]["groups"] == []  # 30 searches of each kind needed
    assert [g["group"] for g in payload["groups"]["excluded"]] == ["G0", "G1"]
    assert "nothing is recorded" in result.stderr
    assert not home.exists()
    assert tree(tmp_path) == before  # the labelled folder and cwd are untouched
    assert not list(work.iterdir())


@pytest.mark.faces
def test_the_protocols_figures_are_the_report_cards(tmp_path: Path, faces_dir: Path) -> None:
    dataset = labelled_folder(faces_dir, tmp_path / "labelled", people=8)
    evaluation = evaluate_folder(dataset, options=FAST)
    report = run_identification_protocol(dataset)
    assert evaluation.result["rank1"] == pytest.approx(report.rank_1)
    assert evaluation.result["rank10"] == pytest.approx(report.rank_10)
    assert evaluation.result["gallery_size"] == report.gallery_size
    assert evaluation.result["mated_searches"] == report.mated_searches
