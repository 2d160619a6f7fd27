"""The identification protocol on real photos: exact counting and sane figures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from candor.evaluation import default_cache_dir, run_identification_protocol
from candor.faces import EngineSettings, QualityThresholds
from candor.faces.extraction import extract_faces
from candor.faces.recipe import RECIPES
from candor.images import encode_png

pytestmark = pytest.mark.faces


def link(target: Path, link_path: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    link_path.symlink_to(target)


@pytest.fixture()
def handcrafted(faces_dir: Path, tmp_path: Path) -> Path:
    """Seven people covering each counting rule; photos are symlinks, never copies."""
    lfw = faces_dir / "lfw-dev"
    root = tmp_path / "dataset"

    def real(name: str, number: int) -> Path:
        return lfw / name / f"{name}_{number:04d}.jpg"

    def corrupt(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff\xe0 truncated nonsense")

    # 1st with two photos: mated, both photos fine.
    link(real("Abdullah_Gul", 1), root / "A_Mated" / "1.jpg")
    link(real("Abdullah_Gul", 2), root / "A_Mated" / "2.jpg")
    # 2nd: non-mated, searched with its first photo.
    link(real("Adam_Sandler", 1), root / "B_NonMated" / "1.jpg")
    link(real("Adam_Sandler", 2), root / "B_NonMated" / "2.jpg")
    # 3rd: mated, but the probe is corrupt: a miss.
    link(real("Abel_Pacheco", 1), root / "C_MatedBadProbe" / "1.jpg")
    corrupt(root / "C_MatedBadProbe" / "2.jpg")
    # 4th: non-mated, probe has no face: no candidate.
    (root / "D_NonMatedBlank").mkdir(parents=True)
    (root / "D_NonMatedBlank" / "1.png").write_bytes(
        encode_png(np.full((100, 100, 3), 120, dtype=np.uint8))
    )
    link(real("Abdoulaye_Wade", 1), root / "D_NonMatedBlank" / "2.jpg")
    # 5th: mated, but its gallery photo is corrupt: fails to enrol, so its search misses.
    corrupt(root / "E_MatedBadGallery" / "1.jpg")
    link(real("Aaron_Sorkin", 2), root / "E_MatedBadGallery" / "2.jpg")
    # One-photo people: a distractor, and a corrupt distractor that fails to enrol.
    link(real("Aaron_Peirsol", 1), root / "F_Distractor" / "1.jpg")
    corrupt(root / "G_BadDistractor" / "1.jpg")
    return root


def test_counting_rules_on_a_handcrafted_folder(handcrafted: Path, tmp_path: Path) -> None:
    report = run_identification_protocol(handcrafted, cache_dir=tmp_path / "cache")
    assert report.people == 7
    assert report.gallery_photos == 5  # A, C, E, F, G
    assert report.gallery_size == 3  # A, C, F
    assert report.failed_to_enrol == 2
    assert report.mated_searches == 3
    assert report.non_mated_searches == 2
    assert report.mated_probes_without_template == 1
    assert report.non_mated_probes_without_template == 1
    assert report.mated_searches_without_enrolled_mate == 1
    by_person = {search.person: search for search in report.mated}
    assert by_person["A_Mated"].mate_rank == 1
    assert by_person["C_MatedBadProbe"].mate_rank is None
    assert not by_person["E_MatedBadGallery"].mate_enrolled
    assert report.rank_1 == pytest.approx(1 / 3)
    assert report.rank_10 == pytest.approx(1 / 3)
    blank = next(s for s in report.non_mated if s.person == "D_NonMatedBlank")
    assert blank.top_score is None
    # Two non-mated searches: FPIR 0.01 allows no false positive, so T sits above B's score.
    point = report.fnir_at_fpir(0.01)
    top_b = next(s.top_score for s in report.non_mated if s.person == "B_NonMated")
    assert top_b is not None and point.threshold > top_b
    assert point.fpir == 0.0
    a_score = by_person["A_Mated"].mate_score
    assert a_score is not None
    assert point.fnir == pytest.approx(1 - (a_score >= point.threshold) / 3)


def test_harness_applies_the_same_gate_as_extract_faces(handcrafted: Path, tmp_path: Path) -> None:
    strict = EngineSettings(quality=QualityThresholds(min_eye_distance_px=40))
    # The baseline recipe: one plain view, as extract_faces makes by default.
    report = run_identification_protocol(
        handcrafted, strict, tmp_path / "cache", recipe=RECIPES["baseline"]
    )
    paths = [photo.path for photo in report.photos]
    direct = list(extract_faces(paths, strict))
    assert any(e.template is None and e.faces for e in direct)  # the limit bites
    for outcome, extraction in zip(report.photos, direct, strict=True):
        assert outcome.refusal == extraction.refusal
        assert (outcome.vector is None) == (extraction.template is None)
        if outcome.vector is not None and extraction.template is not None:
            np.testing.assert_array_equal(outcome.vector, extraction.template.vector)
    assert report.quality_thresholds == strict.quality.key


def test_cache_is_used_on_a_second_run(handcrafted: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_identification_protocol(handcrafted, cache_dir=cache)
    assert not any(photo.cached for photo in first.photos)
    second = run_identification_protocol(handcrafted, cache_dir=cache)
    decoded = [photo for photo in second.photos if photo.sha256 is not None]
    assert decoded and all(photo.cached for photo in decoded)
    assert second.to_dict() == first.to_dict()


def test_default_cache_is_candor_cache(isolated_cache: Path) -> None:
    assert os.environ["CANDOR_CACHE"] == str(isolated_cache)
    assert default_cache_dir() == isolated_cache


# The first 120 people of lfw-dev in sorted order: about 170 photos, ~35 s on one core.
SUBSET_SIZE = 120


@pytest.mark.slow
def test_protocol_on_a_subset_of_lfw_dev(faces_dir: Path) -> None:
    dataset = faces_dir / "lfw-dev"
    people = sorted(entry.name for entry in dataset.iterdir() if entry.is_dir())[:SUBSET_SIZE]
    report = run_identification_protocol(dataset, people=people)
    assert report.people == SUBSET_SIZE
    assert report.mated_searches >= 15
    assert report.non_mated_searches >= 15
    assert report.gallery_size >= 0.95 * report.gallery_photos
    # Chance would be 1 / ~100 at rank 1; the bare pipeline does 0.9 on all of lfw-dev.
    assert report.rank_1 >= 0.8
    assert report.rank_10 >= report.rank_1
    low, high = report.operating_points
    assert (low.target_fpir, high.target_fpir) == (0.01, 0.05)
    assert low.threshold >= high.threshold
    assert low.fnir >= high.fnir
    assert 0.85 < high.threshold < 1.0
    assert report.fpir_at_distance_0_6 >= low.fpir
    # The report's JSON form carries no templates.
    assert "vector" not in str(report.to_dict())
