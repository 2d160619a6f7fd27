"""A demo agency behind a test client: people, a policy, two enrolled portraits, photos.

The photos are the demo's two public-domain portraits (astronaut Eileen Collins from
scikit-image, Grace Hopper from matplotlib) and variants of them, never LFW faces, so
screenshots taken from these workspaces may be committed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance, ImageFilter

from candor.server.app import create_app
from candor.store import Provenance
from candor.workflow import EnrolmentRequest, enrol_files
from tests.agency import PASSWORD, Agency, make_agency, new_user

SETUP_TOKEN = "test-setup-token-0123456789"
DEMO_PROVENANCE = Provenance(
    source_type="demo",
    source_ref="public-domain portraits shipped in scikit-image and matplotlib",
    legal_basis="public domain (US government works); demonstration only",
    collected_on=date(2024, 1, 1),
    retain_until=date(2030, 12, 31),
)
CASE = {
    "case_number": "2026-000042",
    "offence_category": "robbery",
    "purpose": "investigative_lead",
    "requesting_agency": "Example City Police Department",
    "requesting_unit": "Robbery",
    "probe_kind": "still_photo",
}


def _portrait(package: str, resource: str) -> Image.Image:
    data = files(package).joinpath(resource).read_bytes()
    return Image.open(io.BytesIO(data)).convert("RGB")


def demo_photos(folder: Path) -> dict[str, Path]:
    """The demo portraits and the variants the tests search with."""
    folder.mkdir(parents=True, exist_ok=True)
    collins = _portrait("skimage", "data/astronaut.png")
    hopper = _portrait("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
    variants = {
        "collins.png": collins,
        "hopper.jpg": hopper,
        "collins-probe.jpg": ImageEnhance.Brightness(
            collins.crop((100, 0, 400, 300)).resize((240, 240))
        ).enhance(1.3),
        "hopper-blurred.png": hopper.filter(ImageFilter.GaussianBlur(6)),
    }
    paths = {}
    for name, image in variants.items():
        path = folder / name
        image.save(path, quality=92) if name.endswith(".jpg") else image.save(path)
        paths[name] = path
    return paths


@dataclass
class DemoServer:
    """An agency in a demo workspace, its photos, and the app serving it."""

    agency: Agency
    photos: dict[str, Path]
    app: FastAPI
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        """A bearer token for `username`, logged in through the API once."""
        if username not in self.tokens:
            answer = self.client.post(
                "/api/login", json={"username": username, "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            self.tokens[username] = answer.json()["token"]
        return self.tokens[username]

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


def demo_agency(home: Path) -> tuple[Agency, dict[str, Path]]:
    """The usual staff plus an auditor, the two-reviewer policy, both portraits enrolled."""
    agency = make_agency(home, purpose="demo", example="two-reviewers")
    agency.add_user(new_user("ada", "auditor", unit="Oversight"))
    photos = demo_photos(home / "photos")
    enrol_files(
        agency.workflow,
        agency["admin1"],
        [
            EnrolmentRequest(photos["collins.png"], "DEMO-0001"),
            EnrolmentRequest(photos["hopper.jpg"], "DEMO-0002"),
        ],
        DEMO_PROVENANCE,
        workers=1,
    )
    return agency, photos


def serve(agency: Agency, photos: dict[str, Path], **options: object) -> DemoServer:
    app = create_app(agency.workflow, **options)  # type: ignore[arg-type]
    return DemoServer(agency, photos, app, TestClient(app))
