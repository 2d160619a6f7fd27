"""`candor evaluate --model` and `--scratch --model-file`: face models side by side, one file
alone, and the refusals of the options that do not go together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.evaluation import compare as compare_module
from candor.evaluation import report_card as report_card_module
from candor.store import AuditEntry, ReportCard
from candor.workflow.accounts import login
from candor.workflow.models import add_model, confirm_model
from tests.agency import PASSWORD, make_agency

# 20 people with two photos and 10 with one: both kinds of search, in seconds.
PEOPLE_WITH_TWO = 20
PEOPLE_WITH_ONE = 10


@pytest.fixture(scope="module")
def thirty_people(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 lfw-dev people as symlinks (never copies), the same ones on every run."""
    lfw = faces_dir / "lfw-dev"
    people = sorted(path for path in lfw.iterdir() if path.is_dir())
    counts = {person: len(list(person.iterdir())) for person in people}
    chosen = [p for p in people if counts[p] >= 2][:PEOPLE_WITH_TWO]
    chosen += [p for p in people if counts[p] == 1][:PEOPLE_WITH_ONE]
    root = tmp_path_factory.mktemp("thirty") / "lfw-dev-30"
    for person in chosen:
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.iterdir())[:2]:
            (root / person.name / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One evaluation cache for the module's runs (its own: no other test's templates)."""
    return tmp_path_factory.mktemp("candor-cache")


def invoke(arguments: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["evaluate", *arguments], env={"COLUMNS": "200", **env})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.faces
def test_a_model_file_alone_prints_its_report_card_with_the_headline_figures(
    thirty_people: Path, mobilefacenet_onnx: Path, cache: Path, tmp_path: Path
) -> None:
    home = tmp_path / "no-workspace-here"
    code, out, err = invoke(
        [
            str(thirty_people), "--scratch", "--model-file", str(mobilefacenet_onnx), "--json",
            "--bootstrap", "200", "--workers", "1",
        ],
        {"CANDOR_CACHE": str(cache), "CANDOR_HOME": str(home)},
    )  # fmt: skip
    assert code == 0, err
    card = json.loads(out)  # one JSON object and nothing else
    assert out.count("\n") == 1
    assert 0.0 <= card["rank1"] <= 1.0 and len(card["ci"]["rank1"]) == 2
    assert "fnir_at_fpir_0.01" in card  # null here: 0.01 x 10 non-mated searches < 2
    assert card["face_model"]["name"] == "mobilefacenet.onnx"
    assert card["face_model"]["dimension"] == 192
    assert "never added" in card["face_model"]["licence"]
    assert card["model"] == card["face_model"]["key"]
    assert "nothing is recorded" in err
    assert not home.exists()


@pytest.mark.faces
def test_models_side_by_side_store_a_card_each_and_a_paired_comparison(
    thirty_people: Path,
    mobilefacenet_onnx: Path,
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each model's searches run once: its report card's serve the comparison too.
    identifications: list[str] = []
    for module in (compare_module, report_card_module):
        run = module.run_identification_protocol

        def counted(*args: Any, _run: Any = run, **kwargs: Any) -> Any:
            report = _run(*args, **kwargs)
            identifications.append(report.model)
            return report

        monkeypatch.setattr(module, "run_identification_protocol", counted)
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    add_model(
        workflow, agency["admin1"], mobilefacenet_onnx, name="mobilefacenet",
        licence="unknown: evaluation only", source="../shared/models (tests)",
    )  # fmt: skip
    confirm_model(workflow, agency["admin2"], "mobilefacenet")
    home = workflow.workspace.home
    save_token(home, login(workflow, "admin1", PASSWORD).token)
    env = {"CANDOR_CACHE": str(cache), "CANDOR_HOME": str(home)}

    code, out, err = invoke(
        [
            str(thirty_people), "--model", "dlib", "--model", "mobilefacenet", "--json",
            "--bootstrap", "200", "--workers", "1",
        ],
        env,
    )  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert len(identifications) == 2 and len(set(identifications)) == 2, identifications
    assert document["compared"] == "models" and document["reference"] == "dlib"
    dlib, other = document["models"]
    assert [dlib["name"], other["name"]] == ["dlib", "mobilefacenet"]
    assert dlib["face_model"]["dimension"] == 128 and other["face_model"]["dimension"] == 192
    assert other["face_model"]["licence"] == "unknown: evaluation only"
    assert dlib["differences"] == {}
    difference = other["differences"]["rank1"]  # paired: on the same resamples of people
    assert difference["value"] == pytest.approx(
        other["figures"]["rank1"] - dlib["figures"]["rank1"]
    )
    assert difference["verdict"] in ("better", "worse", "within noise")
    assert len(difference["ci"]) == 2
    assert "resamples for every model" in document["bootstrap"]["resampled"]

    with workflow.workspace.session() as session:
        cards = {
            card.id: card for card in session.scalars(select(ReportCard).order_by(ReportCard.id))
        }
        entries = [json.loads(body) for body in session.scalars(select(AuditEntry.body))]
    assert sorted(cards) == sorted([dlib["report_card"], other["report_card"]])
    named = {card.result["face_model"]["name"]: card for card in cards.values()}
    assert set(named) == {"dlib", "mobilefacenet"}
    assert named["mobilefacenet"].model_key == other["model"] != dlib["model"]
    assert named["mobilefacenet"].result["face_model"]["licence"] == "unknown: evaluation only"
    runs = [entry for entry in entries if entry["action"] == "evaluation.run"]
    assert sorted(entry["objects"]["report_card"] for entry in runs) == sorted(cards)
    assert {entry["details"]["model_name"] for entry in runs} == {"dlib", "mobilefacenet"}
    (compared,) = [entry for entry in entries if entry["action"] == "evaluation.compared"]
    assert compared["details"]["report_cards"] == [dlib["report_card"], other["report_card"]]
    assert set(compared["details"]["models"]) == {"dlib", "mobilefacenet"}

    # The table, in plain text, names each model with its key and declared licence.
    code, out, err = invoke(
        [str(thirty_people), "--model", "dlib", "--model", "mobilefacenet", "--bootstrap", "200",
         "--workers", "1"],
        env,
    )  # fmt: skip
    workflow.close()
    assert code == 0, err
    assert "Face models on" in out
    assert "licence as declared: unknown: evaluation only" in out


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--model-file", "m.onnx", "--json"], "--model-file needs --scratch"),
        (["--scratch", "--model-file", "m.onnx", "--model", "dlib"], "not with --model"),
        (["--scratch", "--model", "dlib"], "not with --scratch"),
        (["--model", "dlib", "--compare", "flip"], "one at a time"),
        (["--model", "dlib", "--background"], "not a --model comparison"),
        (["--scratch", "--model-file", "m.onnx", "--compare", "flip"], "not with --compare"),
    ],
)
def test_options_that_do_not_go_together_are_refused_in_one_line(
    arguments: list[str], words: str, tmp_path: Path
) -> None:
    code, out, err = invoke([str(tmp_path), *arguments], {"CANDOR_HOME": str(tmp_path / "h")})
    assert code != 0
    output = out + err
    assert words in output
    assert "Traceback" not in output
    assert not (tmp_path / "h").exists()


def test_a_file_that_is_not_a_face_model_is_refused_in_one_line(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    for person in ("a", "b"):
        (dataset / person).mkdir(parents=True)
        (dataset / person / "1.jpg").write_bytes(b"\xff\xd8\xff")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    code, out, err = invoke(
        [str(dataset), "--scratch", "--model-file", str(text), "--json"],
        {"CANDOR_HOME": str(tmp_path / "h")},
    )
    assert code != 0
    refusal = json.loads(out)["error"] if out.strip() else err
    assert "notes.onnx" in refusal and "ONNX" in refusal
    assert "Traceback" not in out + err
