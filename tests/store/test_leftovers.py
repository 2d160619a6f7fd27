"""What a crash, a killed server or a busy reader leaves behind is finished at the next start.

Issue 12, faults 7 and 8: a reader holding the write-ahead log kept an expunged template
in candor.db; a kill -9 during enrolment left image and crop files that no row names;
a killed server left its uploads behind; expunged images left their folders.
"""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from candor.sealing import new_data_key
from candor.store import ScrubError, Workspace, add_template, delete_subject_cascade, find_subject
from candor.store.vault import BiometricVault
from tests.store.support import FakeModel, enrol_image, image_bytes, make_subject

MODEL = FakeModel(dimension=128)
DATA = b"\xff\xd8\xff an interrupted enrolment's photo " * 20
SHA = hashlib.sha256(DATA).hexdigest()
KEY = new_data_key()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _needles(blob: bytes) -> list[bytes]:
    return [blob[start : start + 16] for start in range(0, len(blob) - 15, 16)]


def _database_files_containing(home: Path, blob: bytes) -> list[str]:
    needles = _needles(blob)
    return [
        path.name
        for path in sorted(home.glob("candor.db*"))
        if any(needle in path.read_bytes() for needle in needles)
    ]


def _crashed_enrolment(home: Path) -> None:
    """What a process killed between its file writes and its commit leaves."""
    vault = BiometricVault(home)
    vault.put_image(SHA, DATA, KEY)
    vault.put_crop(SHA, b"the crop of the chosen face", KEY)


def test_files_of_an_enrolment_that_never_committed_are_erased_at_the_next_start(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ws"
    Workspace.create(home).close()
    _crashed_enrolment(home)
    assert BiometricVault(home).has_image(SHA)

    with Workspace.open(home) as workspace:
        assert not workspace.vault.has_image(SHA)
        assert not workspace.vault.crop_path(SHA).exists()
        assert workspace.upkeep.at_start is not None
        assert workspace.upkeep.at_start.erased == 1
    assert _files(home / "images") == [] and _files(home / "crops") == []
    assert list((home / "images").iterdir()) == []


def test_files_another_process_may_still_commit_are_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    writer = Workspace.create(home)
    # Written by the open workspace, its row not committed yet: a second process
    # opening the folder now must not take the files for orphans.
    writer.vault.put_image(SHA, DATA, KEY)
    with Workspace.open(home) as other:
        assert other.vault.has_image(SHA)
        assert other.upkeep.at_start is not None
        assert not other.upkeep.at_start.exclusive
    assert writer.vault.has_image(SHA)
    # The writer dies without committing; the next start, alone, erases the files.
    writer.close()
    with Workspace.open(home) as workspace:
        assert not workspace.vault.has_image(SHA)


def test_files_named_by_a_committed_row_stay(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        subject = make_subject(session, "B-1")
        image = enrol_image(workspace, session, subject, DATA)
    sha = image.sha256
    home = workspace.home
    workspace.close()
    with Workspace.open(home) as reopened:
        with reopened.session() as session:
            key = reopened.keys.subject_key(session, image.subject_id)
        assert reopened.vault.get_image(sha, key) == DATA
        assert reopened.vault.pending("images") == []


def test_a_killed_servers_uploads_are_erased_at_the_next_start(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with Workspace.create(home) as workspace:
        with workspace.vault.upload_folder() as folder:
            assert folder.parent == home / "tmp" / "uploads"
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            (folder / "probe.jpg").write_bytes(DATA)
        assert list((home / "tmp" / "uploads").iterdir()) == []

    # As a server killed mid-request leaves it.
    left = home / "tmp" / "uploads" / "0123abcd"
    left.mkdir(parents=True)
    (left / "probe.jpg").write_bytes(DATA)
    with Workspace.open(home):
        assert not left.exists()


def test_an_erased_image_leaves_no_folder_behind(workspace: Workspace) -> None:
    vault = workspace.vault
    vault.put_image(SHA, DATA, KEY)
    vault.put_crop(SHA, b"crop", KEY)
    vault.put_probe(SHA, DATA, KEY)
    vault.erase_image(SHA)
    vault.erase_probe(SHA)
    for root in ("images", "crops", "probes"):
        # The first digits of an expunged photo's hash must not stay behind as names.
        assert list((workspace.home / root).iterdir()) == [], root
        assert (workspace.home / root).is_dir()
    # A folder shared with another photo stays.
    other = SHA[:4] + "0" * 60
    vault.put_image(SHA, DATA, KEY)
    (vault.image_path(other).parent / other).write_bytes(b"x")
    vault.erase_image(SHA)
    assert vault.image_path(other).exists()


@pytest.mark.parametrize("kind", ["image", "probe"])
def test_a_write_into_a_folder_removed_meanwhile_makes_it_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import tempfile

    from candor.store import vault as vault_module

    vault = workspace.vault
    path = vault.image_path(SHA) if kind == "image" else vault.probe_path(SHA)
    real_mkstemp = tempfile.mkstemp
    removed: list[Path] = []

    def racing_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        # Another process erases the last photo of the folder and removes it as empty.
        if not removed and path.parent.is_dir():
            path.parent.rmdir()
            removed.append(path.parent)
        return real_mkstemp(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(vault_module.tempfile, "mkstemp", racing_mkstemp)
    if kind == "image":
        vault.put_image(SHA, DATA, KEY)
        assert vault.get_image(SHA, KEY) == DATA
    else:
        vault.put_probe(SHA, DATA, KEY)
        assert vault.get_probe(SHA, KEY) == DATA
    assert removed


@pytest.mark.sqlite_only(reason="a sqlite3 reader holding the write-ahead log")
def test_a_scrub_a_reader_blocked_is_recorded_and_finished_at_the_next_start(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ws"
    secret = np.random.default_rng(7).standard_normal(128).astype(np.float32)
    with Workspace.create(home) as workspace:
        with workspace.session() as session, session.begin():
            keeper = make_subject(session, "KEEP-1")
            enrol_image(workspace, session, keeper, image_bytes(1))
            subject = make_subject(session, "GONE-1")
            image = enrol_image(workspace, session, subject, image_bytes(2))
            # The row's bytes (sealed) are what a scrub must leave nowhere in the files.
            blob = add_template(
                session,
                image,
                model=MODEL,
                detector_key="d",
                recipe="r",
                vector=secret,
                vault=workspace.vault,
                keys=workspace.keys,
            ).vector
        workspace.vault.scrub_database(workspace.engine)
        assert _database_files_containing(home, blob) == ["candor.db"]

        # Another program reads the database, and keeps its transaction open.
        reader = sqlite3.connect(home / "candor.db")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM subjects").fetchone()
        with workspace.session() as session, session.begin():
            found = find_subject(session, "GONE-1")
            assert found is not None
            delete_subject_cascade(session, found)
        with pytest.raises(ScrubError, match="candor scrub"):
            workspace.vault.scrub_database(workspace.engine, wait_ms=50)
        assert workspace.vault.scrub_reasons()
        assert "candor.db" in _database_files_containing(home, blob)

        reader.rollback()
        # The reader's connection stays open: SQLite checkpoints by itself when the
        # last connection closes, and the next start must not depend on that.
        with Workspace.open(home) as reopened:
            assert reopened.upkeep.at_start is not None
            assert reopened.upkeep.at_start.scrub_owed == ()
            assert _database_files_containing(home, blob) == []
            assert reopened.vault.scrub_reasons() == []
            with reopened.session() as session:
                assert session.execute(text("SELECT count(*) FROM subjects")).scalar() == 1
        reader.close()


def test_a_start_with_nothing_to_do_touches_nothing(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Workspace.create(home).close()
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.name != "candor.db-shm"}
    with Workspace.open(home) as workspace:
        assert workspace.upkeep.at_start is not None
        assert (workspace.upkeep.at_start.erased, workspace.upkeep.at_start.temporaries) == (0, 0)
        assert workspace.upkeep.at_start.scrub_owed == ()
    assert list((home / "pending").iterdir()) != []  # its two lock files
    assert sorted(p.name for p in (home / "pending").iterdir()) == ["gate.lock", "open.lock"]
    assert all(p.exists() for p in before)
