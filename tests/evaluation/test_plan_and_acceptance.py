from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from candor.evaluation import PhotoOutcome, plan_identification_protocol, quality_acceptance
from candor.faces import QualityReport, QualityThresholds


def make_folder(root: Path, layout: dict[str, list[str]]) -> Path:
    for person, files in layout.items():
        (root / person).mkdir(parents=True)
        for name in files:
            (root / person / name).write_bytes(b"")
    return root


def test_plan_follows_sorted_order_and_alternates(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path,
        {
            "Zed": ["z_2.jpg", "z_1.jpg"],
            "Amy": ["a_0002.jpg", "a_0001.jpg", "a_0003.jpg"],
            "Bob": ["b_1.jpg", "b_2.jpg"],
            "Cat": ["c_1.jpg"],
            "Dan": ["d_1.png", "d_2.JPG", "notes.txt"],
            "Empty": [],
            "Eve": ["e_1.jpg"],
        },
    )
    plan = plan_identification_protocol(root)
    names = lambda entries: [(p, f.name) for p, f in entries]  # noqa: E731
    # people with >= 2 photos, sorted: Amy (1st), Bob (2nd), Dan (3rd), Zed (4th)
    assert names(plan.mated) == [("Amy", "a_0002.jpg"), ("Dan", "d_2.JPG")]
    assert names(plan.non_mated) == [("Bob", "b_1.jpg"), ("Zed", "z_1.jpg")]
    assert names(plan.gallery) == [
        ("Amy", "a_0001.jpg"),
        ("Cat", "c_1.jpg"),
        ("Dan", "d_1.png"),
        ("Eve", "e_1.jpg"),
    ]
    assert plan.people == 6  # the empty folder is no one


def test_plan_can_be_limited_to_named_people(tmp_path: Path) -> None:
    root = make_folder(tmp_path, {"A": ["1.jpg", "2.jpg"], "B": ["1.jpg"], "C": ["1.jpg"]})
    plan = plan_identification_protocol(root, people=["C", "A"])
    assert [p for p, _ in plan.gallery] == ["A", "C"]
    with pytest.raises(ValueError, match="no folder"):
        plan_identification_protocol(root, people=["Nobody"])


def outcome(quality: QualityReport | None, decoded: bool = True) -> PhotoOutcome:
    return PhotoOutcome(
        Path("x.jpg"),
        "0" * 64 if decoded else None,
        0 if quality is None else 1,
        None if quality is None else 0,
        quality,
        np.zeros(128, np.float32) if quality is not None and quality.passed else None,
        None,
    )


def test_acceptance_counts_each_check() -> None:
    good = QualityReport(40, 30, 0, 0, 1, ())
    small = QualityReport(20, 30, 0, 0, 1, ("small",))
    small_blurred = QualityReport(20, 1, 75, 0, 1, ("small", "blurred", "turned"))
    outcomes = [outcome(good), outcome(good), outcome(small), outcome(small_blurred)]
    outcomes += [outcome(None), outcome(None, decoded=False)]
    acceptance = quality_acceptance(outcomes, QualityThresholds())
    assert (acceptance.photos, acceptance.decoded, acceptance.with_face) == (6, 5, 4)
    assert acceptance.accepted == 2
    assert acceptance.acceptance_of_faces == pytest.approx(0.5)
    assert acceptance.acceptance_of_photos == pytest.approx(2 / 6)
    assert acceptance.refused_by == {
        "eye_distance": 2,
        "sharpness": 1,
        "yaw": 1,
        "roll": 0,
        "detector_confidence": 0,
    }
