"""A workspace made by an earlier release keeps working after `candor upgrade`.

tests/fixtures/workspace-95e4ed1.tar.gz is the demo's workspace as the release at commit
95e4ed1 left it (schema 0005): seven users, four searches, a released lead, and the
second portrait expunged while two candidate rows still point at its ids. Every migration
since is run on a copy of it here.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from candor.cli.app import app
from candor.store import GalleryImage, Workspace, sha256_hex
from candor.store.database import head_revision
from candor.store.upkeep import held_probes
from candor.store.vault import BiometricVault, StoredKind
from candor.workflow import upgrade_workspace
from candor.workflow.demo_photos import demo_variants, save_photos

pytestmark = pytest.mark.sqlite_only(reason="the release fixture is a SQLite workspace")


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workspace-95e4ed1.tar.gz"
PROVENANCE = [
    "--source", "demo",
    "--source-ref", "public-domain portraits shipped in scikit-image and matplotlib",
    "--legal-basis", "public domain (US government works); demonstration only",
    "--collected", "2024-01-01",
    "--retain-until", "2030-12-31",
]  # fmt: skip

REQUEST = [
    "--case", "2026-000043",
    "--offence", "robbery",
    "--purpose", "investigative_lead",
    "--agency", "Example City Police Department",
    "--unit", "Robbery",
]  # fmt: skip

runner = CliRunner()


def candor(home: Path, *args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"], env={"CANDOR_HOME": str(home)})
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    return answer


def login(root: Path, name: str) -> None:
    password = root / "secrets" / f"{name}.password"
    candor(root / "workspace", "login", "--user", name, "--password-file", str(password))


def ids(database: Path, table: str) -> set[int]:
    connection = sqlite3.connect(database)
    try:
        return {row[0] for row in connection.execute(f"SELECT id FROM {table}")}
    finally:
        connection.close()


@pytest.fixture
def release_workspace(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path


def test_the_release_workspace_is_at_the_old_schema(release_workspace: Path) -> None:
    connection = sqlite3.connect(release_workspace / "workspace" / "candor.db")
    try:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        connection.close()
    assert revision == "0005_repeat_search_index"
    assert revision != head_revision()


def test_commands_refuse_the_old_schema_until_upgrade(release_workspace: Path) -> None:
    home = release_workspace / "workspace"
    password = release_workspace / "secrets" / "ada.password"
    result = runner.invoke(
        app,
        ["login", "--user", "ada", "--password-file", str(password)],
        env={"CANDOR_HOME": str(home)},
    )
    assert result.exit_code == 1
    assert "candor upgrade" in result.stderr


def test_upgraded_release_workspace_verifies_and_never_reuses_an_expunged_id(
    release_workspace: Path, tmp_path: Path
) -> None:
    home = release_workspace / "workspace"
    database = home / "candor.db"
    subjects_before, images_before = ids(database, "subjects"), ids(database, "gallery_images")
    templates_before = ids(database, "face_templates")
    assert subjects_before == images_before == templates_before == {1}  # 2 was expunged

    assert candor(home, "upgrade", "--home", str(home))["ok"] is True

    login(release_workspace, "ada")
    assert candor(home, "audit", "verify")["ok"] is True

    login(release_workspace, "avery")
    photo = save_photos(demo_variants(), tmp_path / "photos")["hopper.jpg"]
    candor(home, "enrol", str(photo), "--subject", "DEMO-0003", *PROVENANCE)
    for table, before in (
        ("subjects", subjects_before),
        ("gallery_images", images_before),
        ("face_templates", templates_before),
    ):
        new = ids(database, table) - before
        assert len(new) == 1, table
        assert min(new) > 2, f"{table} gave id {new} again: the release's expunged person had 2"

    # The release's index folder (no change seq) catches up: the newcomer is found.
    login(release_workspace, "ana")
    probe = photo.with_name("hopper-probe.jpg")
    search = candor(home, "search", str(probe), *REQUEST)
    assert search["status"] == "completed", search
    # The release made index/ readable by everyone; the first use of the index closes it.
    assert (home / "index").stat().st_mode & 0o777 == 0o700

    # The release's candidate lists still point at the expunged person's ids: they say so.
    login(release_workspace, "eve")
    listing = candor(home, "candidates", "2")
    rows = listing["candidates"]
    assert isinstance(rows, list)
    second = next(row for row in rows if row["rank"] == 2)
    assert second["expunged"] is True
    assert second["subject_ref"] is None

    login(release_workspace, "ada")
    assert candor(home, "audit", "verify")["ok"] is True


# A photo's signature where it starts (JPEG: SOI then a JFIF or Exif APP segment; PNG: its
# 8-byte signature): three bytes alone would turn up by chance in a few MB of ciphertext.
PHOTO_MAGIC = re.compile(rb"\xff\xd8\xff[\xe0-\xef]..(?:JFIF|Exif)|\x89PNG\r\n\x1a\n", re.DOTALL)


def files_with_photo_magic(root: Path) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and (path.read_bytes()[:3] == b"\xff\xd8\xff" or PHOTO_MAGIC.search(path.read_bytes()))
    ]


def every_photo_reads(home: Path) -> int:
    """Open every stored photo, crop and probe under its key; how many were read."""
    read = 0
    with Workspace.open(home) as workspace:
        vault, keys = workspace.vault, workspace.keys
        with workspace.session() as session:
            for image in session.scalars(select(GalleryImage)):
                key = keys.subject_key(session, image.subject_id)
                assert sha256_hex(vault.get_image(image.sha256, key)) == image.sha256
                assert vault.get_crop(image.sha256, key)[:8] == b"\x89PNG\r\n\x1a\n"
                read += 2
            for sha256 in held_probes(session):
                if vault.has_probe(sha256):
                    key = keys.probe_key(session, sha256)
                    assert sha256_hex(vault.get_probe(sha256, key)) == sha256
                    read += 1
    return read


def test_upgrade_seals_every_photo_and_erases_the_plaintext(release_workspace: Path) -> None:
    home = release_workspace / "workspace"
    # The test can fail: the release kept its photos, crops and probes in the clear.
    before = files_with_photo_magic(home)
    assert any(name.startswith("images/") for name in before), before
    assert any(name.startswith("crops/") for name in before), before
    assert any(name.startswith("probes/") for name in before), before

    answer = candor(home, "upgrade", "--home", str(home))
    sealed = answer["sealed"]
    assert isinstance(sealed, dict)
    assert sealed["images"] == 1 and sealed["crops"] == 1 and sealed["probes"] >= 1
    assert sealed["templates"] >= 1

    assert files_with_photo_magic(home) == []
    assert every_photo_reads(home) >= 3
    assert [path for path in (home / "tmp").rglob("*") if path.is_file()] == []
    # Again: nothing left to seal, nothing changed.
    again = candor(home, "upgrade", "--home", str(home))["sealed"]
    assert isinstance(again, dict)
    assert sum(value for value in again.values() if isinstance(value, int)) == 0


def test_an_interrupted_upgrade_leaves_each_file_plain_or_sealed_and_finishes_next_time(
    release_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = release_workspace / "workspace"
    real = BiometricVault.seal_in_place
    calls: list[str] = []

    def dying(self: BiometricVault, kind: StoredKind, sha256: str, key: bytes) -> bool:
        calls.append(sha256)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill between two files
        return real(self, kind, sha256, key)

    monkeypatch.setattr(BiometricVault, "seal_in_place", dying)
    with pytest.raises(KeyboardInterrupt):
        upgrade_workspace(home)
    monkeypatch.undo()
    vault = BiometricVault(home)
    states = {
        (kind, sha256): vault.is_sealed_file(kind, sha256)
        for kind in ("images", "crops", "probes")
        for prefix in vault.prefixes(kind)
        for sha256 in vault.stored(kind, prefix)
    }
    assert True in states.values() and False in states.values()

    assert candor(home, "upgrade", "--home", str(home))["ok"] is True
    assert files_with_photo_magic(home) == []
    assert every_photo_reads(home) >= 3
