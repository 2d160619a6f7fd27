"""The public report: the scenario's aggregates, "<5" for 1 to 4, no names, no case numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from candor.reports import public, transparency_from_json, transparency_html, transparency_json
from tests.reports.scenario import CASES, USERNAMES, Scenario

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("reports")]

HEADLINE = (
    "In 2027, 9 searches were requested; fewer than 5 were denied by the agency's policy "
    "and fewer than 5 led to an investigative lead being released."
)


def test_small_counts_are_suppressed() -> None:
    assert [public(n) for n in range(7)] == [0, "<5", "<5", "<5", "<5", 5, 6]


def test_figures_equal_the_script(scenario: Scenario) -> None:
    report = scenario.transparency
    assert report is not None
    document = transparency_json(report)
    assert document["headline"] == HEADLINE
    assert document["searches"] == 9
    assert document["verifications"] == "<5"  # 1
    assert document["denials"] == "<5"  # 2
    assert document["outside_agency_requests"] == "<5"  # 1
    assert document["outcomes"] == {
        "denied": "<5", "rejected": "<5", "undecided": 0, "awaiting_approval": 0,
        "not_run": 0, "run_no_candidates": "<5", "run_not_reviewed": "<5",
        "run_reviewed": "<5", "run_lead_released": "<5",
    }  # fmt: skip
    offences = {row["offence_category"]: row["total"] for row in document["by_offence"]}
    assert offences == {"robbery": 8, "shoplifting": "<5"}
    assert document["denial_reasons"] == {
        "offence_not_allowed": "<5", "purpose_not_allowed": "<5", "quota_per_day": "<5"
    }  # fmt: skip
    # 4 enrolled, 1 person expunged: 3 held.
    assert document["gallery_by_source"] == {"evaluation": "<5"}
    assert document["enrolments"] == "<5"
    assert document["expungements"] == "<5"
    assert document["purges"] == {
        "retention.probes_purged": 9,
        "retention.search_records_purged": 9,
        "retention.gallery_purged": 0,
    }
    assert document["accuracy"] is None
    assert document["accuracy_note"] == "No accuracy report card recorded."


def counts_in(value: Any, path: str = "") -> list[tuple[str, int]]:
    """Every integer in the document outside the report's own metadata."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if key in {"as_of", "year", "generated_at"}:
                continue
            found += counts_in(item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in counts_in(item, f"{path}[{i}]")]
    if isinstance(value, int) and not isinstance(value, bool):
        return [(path, value)]
    return []


def test_no_count_from_1_to_4_is_published(scenario: Scenario) -> None:
    assert scenario.transparency is not None
    document = transparency_json(scenario.transparency)
    small = [(path, n) for path, n in counts_in(document) if 1 <= n <= 4]
    assert not small
    html = transparency_html(scenario.transparency)
    cells = re.findall(r"<td>\s*(\d+)\s*</td>", html)
    assert cells and not [c for c in cells if 1 <= int(c) <= 4]


def test_no_names_case_numbers_or_subjects(scenario: Scenario) -> None:
    assert scenario.transparency is not None
    texts = {
        "json": json.dumps(transparency_json(scenario.transparency)),
        "html": transparency_html(scenario.transparency),
    }
    for form, text in texts.items():
        for name in USERNAMES:
            assert not re.search(rf"\b{re.escape(name)}\b", text), f"{name} in the {form}"
        for case in CASES:
            assert case not in text, f"{case} in the {form}"
        for subject in scenario.subject_refs:
            assert subject not in text, f"{subject} in the {form}"


def test_the_latest_report_card_is_shown_with_its_dataset_and_limits(
    scenario: Scenario, copy: Path
) -> None:
    from datetime import UTC, datetime

    from candor.reports import transparency_report
    from candor.store import ReportCard, Workspace

    with Workspace.open(copy) as workspace:
        with workspace.session() as session, session.begin():
            for day, rank1 in ((1, 0.5), (20, 0.9731)):
                session.add(
                    ReportCard(
                        created_at=datetime(2027, 1, day, tzinfo=UTC),
                        dataset="/data/faces/lfw-dev",
                        dataset_sha256="ab" * 32,
                        settings={},
                        model_key="dlib-resnet-v1/1/0123456789abcdef",
                        result={"rank1": rank1, "people": 1680, "det": [],
                                "ci": {"rank1": [0.9602, 0.9843]}},
                        dataset_limits="Mostly adult public figures photographed by the press.",
                    )
                )  # fmt: skip
        report = transparency_report(workspace, scenario.key, 2027)
    assert report.accuracy is not None
    assert report.accuracy.dataset == "lfw-dev"
    assert dict(report.accuracy.results) == {
        "people": "1680",
        "rank1": "0.9731 (0.9602 to 0.9843)",
    }
    page = transparency_html(report)
    assert "Mostly adult public figures photographed by the press." in page
    assert "/data/faces" not in page


def test_a_published_copy_keeps_each_figure_in_its_column(scenario: Scenario) -> None:
    # The published copy is kept in the signed log as canonical JSON, whose keys are
    # sorted; read back, the "all" row once put each outcome under another's heading.
    report = scenario.transparency
    assert report is not None
    document = json.loads(json.dumps(transparency_json(report), sort_keys=True))
    copy = transparency_from_json(document, "2026-12-03T00:00:00Z")
    assert copy.outcomes == report.outcomes
    assert copy.purges == report.purges
    assert [row.outcomes for row in copy.by_offence] == [row.outcomes for row in report.by_offence]


def test_the_model_in_use_is_named_with_its_own_latest_figures(
    scenario: Scenario, copy: Path
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from candor.reports import transparency_report
    from candor.store import ReportCard, User, Workspace
    from candor.store.face_models import FaceModelRecord, ModelActivation

    other_key = "mobilefacenet/1/dc4bbe5b0cf21dec"

    def card(day: int, key: str, rank1: float, fnir: float) -> ReportCard:
        return ReportCard(
            created_at=datetime(2027, 1, day, tzinfo=UTC), dataset="/data/faces/lfw-dev",
            dataset_sha256="ab" * 32, settings={}, model_key=key,
            result={"rank1": rank1, "fnir_at_fpir_0.01": fnir, "people": 1680, "det": [],
                    "ci": {"rank1": [0.95, 0.97], "fnir_at_fpir_0.01": [0.10, 0.15]},
                    "bootstrap": {"level": 0.95},
                    "face_model": {"name": "mobilefacenet", "key": key, "dimension": 192,
                                   "licence": "unknown: evaluation only"}},
            dataset_limits="Mostly adult public figures photographed by the press.",
        )  # fmt: skip

    with Workspace.open(copy) as workspace:
        with workspace.session() as session, session.begin():
            admins = list(session.scalars(select(User.id).order_by(User.id)))[:2]
            session.add(
                FaceModelRecord(
                    name="mobilefacenet", model_key=other_key, path="/models/m.onnx",
                    sha256="dc" * 32, dimension=192, layout="NCHW", input_size=112,
                    input_mean=127.5, input_std=128.0, colour="RGB", alignment="arcface-112",
                    licence="unknown: evaluation only", source="a test",
                    added_by=admins[0], added_at=datetime(2027, 1, 2, tzinfo=UTC),
                    state="confirmed", decided_by=admins[1],
                    decided_at=datetime(2027, 1, 2, tzinfo=UTC),
                )
            )  # fmt: skip
            session.add(card(3, other_key, 0.961, 0.126))
            # A newer card of the built-in model: not the model in use once it is switched.
            session.add(card(20, "dlib-resnet-v1/1/0123456789abcdef", 0.906, 0.429))
        before = transparency_report(workspace, scenario.key, 2027)
        with workspace.session() as session, session.begin():
            session.add(
                ModelActivation(
                    model_name="mobilefacenet", model_key=other_key, templates=4,
                    activated_at=datetime(2027, 1, 5, 12, tzinfo=UTC),
                )
            )  # fmt: skip
        report = transparency_report(workspace, scenario.key, 2027)

    assert before.model_in_use is not None and before.model_in_use.model_key is None
    assert "Searches use the built-in face model dlib, in use since" in before.model_note
    assert before.accuracy is not None and before.accuracy.model_key.startswith("dlib-resnet")
    assert report.model_in_use is not None and report.model_in_use.name == "mobilefacenet"
    assert report.accuracy is not None and report.accuracy.model_key == other_key
    note = report.model_note
    assert f"face model mobilefacenet (model key {other_key}), in use since 2027-01-05" in note
    assert "96.1 % of searches" in note and "(rank-1; 95 % interval 95.0 % to 97.0 %)" in note
    assert "12.6 % of searches" in note and "95 % interval 10.0 % to 15.0 %" in note
    assert "FNIR at FPIR 0.01" in note and "unknown: evaluation only" in note
    page = transparency_html(report)
    assert "in use since 2027-01-05" in page
    document = json.loads(json.dumps(transparency_json(report), sort_keys=True))
    published = transparency_from_json(document, "2027-02-01T00:00:00Z")
    assert published.model_in_use == report.model_in_use
    assert published.model_note == note
