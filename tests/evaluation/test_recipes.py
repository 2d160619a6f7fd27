"""Recipes in the harness: halves, the multi-photo protocol, 1:N calibration, --compare."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from candor.cli.app import app
from candor.evaluation.calibration import normalised_impostor_points
from candor.evaluation.compare import compare_recipes
from candor.evaluation.identification import (
    half_of,
    people_of_half,
    plan_multi_photo_protocol,
    run_identification_protocol,
)
from candor.faces.recipe import RECIPES
from candor.workflow.evaluation_ops import EvaluationError, recipes_named


def folder_of(root: Path, counts: dict[str, int]) -> Path:
    """A labelled folder of empty photo files: enough for plans, which never decode."""
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for number in range(count):
            (root / name / f"{number}.jpg").write_bytes(b"")
    return root


def test_halves_follow_the_sha256_rule_and_split_everyone(tmp_path: Path) -> None:
    names = [f"Person_{number}" for number in range(40)]
    root = folder_of(tmp_path / "d", dict.fromkeys(names, 1))
    for name in names:
        value = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        assert half_of(name) == ("report" if value % 2 == 1 else "tune")
    tune, report = people_of_half(root, "tune"), people_of_half(root, "report")
    assert sorted(tune + report) == sorted(names)
    assert not set(tune) & set(report)
    assert tune and report
    with pytest.raises(ValueError, match="unknown half"):
        people_of_half(root, "middle")  # type: ignore[arg-type]


def test_the_multi_photo_protocol_enrols_two_and_searches_with_the_third(tmp_path: Path) -> None:
    root = folder_of(tmp_path / "d", {"A": 3, "B": 4, "C": 2, "D": 1, "E": 5})
    plan = plan_multi_photo_protocol(root)
    gallery = [(name, path.name) for name, path in plan.gallery]
    assert gallery == [("A", "0.jpg"), ("A", "1.jpg"), ("C", "0.jpg"), ("D", "0.jpg"),
                       ("E", "0.jpg"), ("E", "1.jpg")]  # fmt: skip
    assert [(name, path.name) for name, path in plan.mated] == [("A", "2.jpg"), ("E", "2.jpg")]
    assert [(name, path.name) for name, path in plan.non_mated] == [("B", "0.jpg")]


def test_one_to_n_impostor_pairs_leave_out_same_person_pairs_and_apply_offsets() -> None:
    rng = np.random.default_rng(5)
    probes, gallery = rng.normal(size=(30, 8)), rng.normal(size=(20, 8))
    probe_labels = np.array([f"p{i % 10}" for i in range(30)])
    gallery_labels = np.array([f"p{i}" for i in range(20)])
    count, points = normalised_impostor_points(
        probes, probe_labels, gallery, gallery_labels, np.zeros(30)
    )
    assert count == 30 * 20 - 30  # each probe's own person is in the gallery once
    shifted_count, shifted = normalised_impostor_points(
        probes, probe_labels, gallery, gallery_labels, np.full(30, 0.25)
    )
    assert shifted_count == count
    for (rate, threshold), (shifted_rate, shifted_threshold) in zip(points, shifted, strict=True):
        assert rate == shifted_rate
        assert shifted_threshold == pytest.approx(threshold - 0.25, abs=1e-6)


def test_unknown_recipes_are_named_in_the_error() -> None:
    assert [r.name for r in recipes_named(["flip", "baseline"])] == ["flip", "baseline"]
    with pytest.raises(EvaluationError, match="no recipe named 'magic'"):
        recipes_named(["baseline", "magic"])


def test_the_cli_lists_the_recipes() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--list-recipes", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [entry["name"] for entry in listed] == list(RECIPES)
    missing = CliRunner().invoke(app, ["evaluate"])
    assert missing.exit_code != 0
    assert "no folder given" in missing.output


@pytest.fixture()
def small_folder(faces_dir: Path, tmp_path: Path) -> Path:
    """Six real people, three photos each where they have them (symlinks, never copies)."""
    lfw = faces_dir / "lfw-dev"
    root = tmp_path / "dataset"
    for name in ("Aaron_Peirsol", "Abdoulaye_Wade", "Abdullah_Gul", "Abel_Pacheco",
                 "Adam_Sandler", "Adrien_Brody"):  # fmt: skip
        (root / name).mkdir(parents=True)
        for photo in sorted((lfw / name).iterdir())[:3]:
            (root / name / photo.name).symlink_to(photo)
    return root


@pytest.mark.faces
def test_compare_runs_every_recipe_on_the_same_people(small_folder: Path, tmp_path: Path) -> None:
    recipes = recipes_named(["baseline", "fusion-mean", "flip"])
    comparison = compare_recipes(
        small_folder,
        recipes,
        protocol="multi-photo",
        replicates=100,
        cache_dir=tmp_path / "cache",
        timing_sample=1,
    )
    baseline, fusion, flip = comparison.results
    assert comparison.people == 6
    assert baseline.report.mated_searches == fusion.report.mated_searches == 3
    assert baseline.report.gallery_photos == 6  # two photos for each of the 3 mated people
    assert baseline.report.gallery_size == 3
    assert baseline.differences == {}
    for key, difference in fusion.differences.items():
        if difference.value is not None and difference.value == 0.0:
            assert difference.verdict == "within noise", key
    assert flip.report.recipe.startswith("enrol=flip/search=flip")
    assert flip.cost.enrol_ms is not None and flip.cost.timed_photos == 1
    document = comparison.to_dict()
    assert [entry["name"] for entry in document["recipes"]] == ["baseline", "fusion-mean", "flip"]
    json.dumps(document)  # plain JSON types only
    with pytest.raises(ValueError, match="named twice"):
        compare_recipes(small_folder, recipes_named(["flip", "flip"]), cache_dir=tmp_path)


@pytest.mark.faces
def test_a_gallery_too_small_for_a_cohort_scores_cosines(
    small_folder: Path, tmp_path: Path
) -> None:
    normalising = run_identification_protocol(
        small_folder, cache_dir=tmp_path / "cache", recipe=RECIPES["cohort-norm"]
    )
    plain = run_identification_protocol(
        small_folder, cache_dir=tmp_path / "cache", recipe=RECIPES["baseline"]
    )
    assert normalising.score.startswith("cosine (the recipe normalises")
    assert "1,500" in normalising.score
    assert normalising.cohort is None
    assert [m.mate_score for m in normalising.mated] == [m.mate_score for m in plain.mated]
