"""Helpers for the store tests: a stand-in face model and sample records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
from sqlalchemy.orm import Session

from candor.store import (
    GalleryImage,
    Provenance,
    Subject,
    Workspace,
    add_gallery_image,
    get_or_create_subject,
)


@dataclass(frozen=True)
class FakeModel:
    """Shaped like candor.faces.ModelId, which the store may not import."""

    name: str = "test-model"
    version: str = "1"
    weights_sha256: str = "ab" * 32
    dimension: int = 8

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}/{self.weights_sha256[:16]}"


def booking_provenance(**changes: object) -> Provenance:
    fields: dict[str, object] = {
        "source_type": "booking_photo",
        "source_ref": "booking system export 2024-03",
        "legal_basis": "Penal Code s. 81b (identification of arrested persons)",
        "collected_on": date(2024, 3, 1),
        "retain_until": date(2034, 3, 1),
    }
    fields.update(changes)
    return Provenance(**fields)  # type: ignore[arg-type]


def image_bytes(seed: int) -> bytes:
    return b"not really a JPEG " + seed.to_bytes(8, "big") * 16


def enrol_image(
    ws: Workspace, session: Session, subject: Subject, data: bytes, **changes: object
) -> GalleryImage:
    sha = hashlib.sha256(data).hexdigest()
    ws.vault.put_image(sha, data, ws.keys.subject_key(session, subject.id, create=True))
    arguments: dict[str, object] = {
        "sha256": sha,
        "image_format": "JPEG",
        "width": 640,
        "height": 480,
        "byte_size": len(data),
        "provenance": booking_provenance(),
        "allowed_source_types": ws.allowed_source_types(),
        "today": date(2025, 1, 1),
        "enrolled_by": "officer.lee",
        "face_choice": "largest-central",
        "face_box": (100, 80, 300, 320),
        "quality": {"sharpness": 123.5, "reasons": []},
    }
    arguments.update(changes)
    return add_gallery_image(session, subject, **arguments)  # type: ignore[arg-type]


def make_subject(session: Session, reference: str) -> Subject:
    subject, _ = get_or_create_subject(session, reference, "officer.lee")
    return subject


def vector(seed: int, dimension: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
