"""Provenance validation: one place, each refusal naming its field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from candor.store import (
    OPERATIONAL_SOURCES,
    Provenance,
    ProvenanceError,
    Workspace,
    validate_provenance,
)
from tests.store.support import booking_provenance, enrol_image, image_bytes, make_subject

TODAY = date(2025, 6, 15)


@pytest.mark.parametrize(
    ("changes", "allowed", "field", "problem"),
    [
        ({"source_type": "social_media"}, OPERATIONAL_SOURCES, "source_type", "unknown source"),
        ({"source_type": ""}, OPERATIONAL_SOURCES, "source_type", "unknown source"),
        ({"source_type": "demo"}, OPERATIONAL_SOURCES, "source_type", "not allowed"),
        ({"source_type": "evaluation"}, OPERATIONAL_SOURCES, "source_type", "not allowed"),
        ({"source_type": "booking_photo"}, ("evaluation",), "source_type", "not allowed"),
        ({"source_type": "benchmark"}, ("simulation",), "source_type", "not allowed"),
        ({"source_ref": ""}, OPERATIONAL_SOURCES, "source_ref", "required"),
        ({"legal_basis": ""}, OPERATIONAL_SOURCES, "legal_basis", "required"),
        ({"legal_basis": " \t\n"}, OPERATIONAL_SOURCES, "legal_basis", "required"),
        ({"collected_on": date(2025, 6, 16)}, OPERATIONAL_SOURCES, "collected_on", "future"),
        (
            {"collected_on": date(2024, 1, 2), "retain_until": date(2024, 1, 1)},
            OPERATIONAL_SOURCES,
            "retain_until",
            "before the collection date",
        ),
    ],
)
def test_refusals_name_field_and_problem(
    changes: dict[str, object], allowed: tuple[str, ...], field: str, problem: str
) -> None:
    with pytest.raises(ProvenanceError, match=problem) as caught:
        validate_provenance(
            booking_provenance(**changes), allowed_source_types=allowed, today=TODAY
        )
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "allowed"),
    [
        ({}, OPERATIONAL_SOURCES),
        ({"source_type": "consented_enrolment"}, OPERATIONAL_SOURCES),
        ({"source_type": "court_order"}, OPERATIONAL_SOURCES),
        ({"source_type": "evaluation"}, ("evaluation",)),
        ({"collected_on": TODAY, "retain_until": TODAY}, OPERATIONAL_SOURCES),
    ],
)
def test_accepted(changes: dict[str, object], allowed: tuple[str, ...]) -> None:
    provenance = booking_provenance(**changes)
    assert validate_provenance(provenance, allowed_source_types=allowed, today=TODAY) == provenance


def test_text_is_stripped() -> None:
    checked = validate_provenance(
        booking_provenance(source_ref="  ref 1 ", legal_basis=" consent form 7\n"),
        allowed_source_types=OPERATIONAL_SOURCES,
        today=TODAY,
    )
    assert (checked.source_ref, checked.legal_basis) == ("ref 1", "consent form 7")


def test_add_gallery_image_validates_and_writes_nothing_on_refusal(
    workspace: Workspace,
) -> None:
    with workspace.session() as session, session.begin():
        subject = make_subject(session, "B-1")
        with pytest.raises(ProvenanceError):
            enrol_image(
                workspace,
                session,
                subject,
                image_bytes(1),
                provenance=booking_provenance(source_type="demo"),
            )
        assert subject.images == []


def test_demo_workspace_takes_demo_images_only(tmp_path: Path) -> None:
    with Workspace.create(tmp_path, purpose="demo") as ws, ws.session() as session:
        with session.begin():
            subject = make_subject(session, "demo-1")
            demo = Provenance("demo", "scikit-image data", "public domain", date(2024, 1, 1), TODAY)
            enrol_image(ws, session, subject, image_bytes(1), provenance=demo)
        with pytest.raises(ProvenanceError, match="not allowed"), session.begin():
            enrol_image(ws, session, subject, image_bytes(2))
