"""`make demo` stays stable for the people and tools that use it.

Its users, their password files in .candor-demo/secrets/ and its photos in
.candor-demo/photos/ are what a newcomer logs in with and what scripts read; they are
compared here with the demo of release 95e4ed1 (tests/fixtures), so a change to any of
them is a decision, not an accident.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from candor.cli import demo

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workspace-95e4ed1.tar.gz"
PHOTO_NAMES = {
    "collins.png",
    "collins-probe.jpg",
    "hopper.jpg",
    "hopper-probe.jpg",
    "hopper-blurred.png",
    "two-people.jpg",
}


def test_the_demo_keeps_its_folders() -> None:
    assert demo.SECRETS == demo.DEMO_ROOT / "secrets"
    assert demo.PHOTOS == demo.DEMO_ROOT / "photos"
    assert demo.WORKSPACE == demo.DEMO_ROOT / "workspace"


def test_the_demo_keeps_the_users_and_password_files_of_the_release() -> None:
    with tarfile.open(FIXTURE) as archive:
        released = {
            Path(name).name.removesuffix(".password")
            for name in archive.getnames()
            if name.startswith("secrets/") and name.endswith(".password")
        }
    assert set(demo.PEOPLE) == released
    assert demo.PEOPLE == {
        "avery": "admin",
        "blake": "admin",
        "ana": "analyst",
        "sam": "supervisor",
        "eve": "examiner",
        "eli": "examiner",
        "ada": "auditor",
    }


def test_the_demo_writes_its_password_files_where_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "SECRETS", tmp_path / "secrets")
    path = Path(demo.password_file("ana"))
    assert path == tmp_path / "secrets" / "ana.password"
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_demo_keeps_its_photo_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "PHOTOS", tmp_path / "photos")
    photos = demo.prepare_photos()
    assert set(photos) == PHOTO_NAMES
    assert {path.parent for path in photos.values()} == {tmp_path / "photos"}
