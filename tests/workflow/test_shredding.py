"""Biometric data at rest: nothing in the clear, nothing readable without the KEK, and a
subject's expungement (a probe's purge) shreds every copy, old backups included."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text

from candor.sealing import (
    SealError,
    WrongKeyError,
    create_key_file,
    open_sealed,
    read_key_file,
    unwrap_key,
)
from candor.store import FaceTemplate, GalleryImage, Workspace, find_subject, sha256_hex
from candor.store.changes import template_vectors
from candor.store.data_keys import KEK_FILE_VARIABLE, DataKey, KeyEncryptionKeyError
from candor.store.vault import template_context
from candor.workflow import (
    EnrolmentRequest,
    expunge_subject,
    record_verdict,
    request_search,
    run_retention,
    view_candidates,
)
from candor.workflow import enrol_files as governed_enrol
from candor.workflow.keys import rotate_kek
from candor.workflow.probe_check import review_material
from candor.workflow.server_state import drop_staged_probes, stage_probe, take_staged_probe
from tests.agency import Agency, make_agency
from tests.support import copy_workspace, evaluation_provenance, people_with_photos, photos_of
from tests.workflow.test_governed import FORM

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]

# A photo's signature where it starts (JPEG: SOI then a JFIF or Exif APP segment; PNG: its
# 8-byte signature): three bytes alone turn up by chance in a few MB of ciphertext.
PHOTO_MAGIC = re.compile(rb"\xff\xd8\xff[\xe0-\xef]..(?:JFIF|Exif)|\x89PNG\r\n\x1a\n", re.DOTALL)


def _enrol(agency: Agency, people: list[Path]) -> None:
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    summary = governed_enrol(agency.workflow, agency["admin1"], requests, evaluation_provenance())
    assert all(outcome.image_id is not None for outcome in summary.outcomes), summary.outcomes


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Agency]:
    """An agency after enrolment, a search, its review (photos and crops shown) and a
    staged probe photo: every kind of biometric data Candor writes is on disk."""
    made = make_agency(tmp_path_factory.mktemp("shredding"))
    people = people_with_photos(faces_dir, 3)
    _enrol(made, people)
    probe = photos_of(people[1])[1]
    searched = request_search(made.workflow, made["ana"], probe, FORM)
    view_candidates(made.workflow, made["eve"], searched.search_id)
    material = review_material(made.workflow, made["eve"], searched.search_id)
    assert material.probe_png and material.candidates[0].crop_png
    record_verdict(made.workflow, made["eve"], searched.search_id, 1, "possible_match", "ears")
    stage_probe(
        made.workflow, "a-session-token", "staged.jpg", photos_of(people[2])[1].read_bytes()
    )
    made.people = people  # type: ignore[attr-defined]
    yield made
    made.workflow.close()


def files_holding(root: Path, needles: list[bytes]) -> dict[str, int]:
    """Each file under `root` holding a photo's signature or one of `needles`, with how many."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits = (data[:3] == b"\xff\xd8\xff") + len(PHOTO_MAGIC.findall(data))
        hits += sum(needle in data for needle in needles)
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def stored_templates(workspace: Workspace) -> list[np.ndarray]:
    with workspace.session() as session:
        rows = session.execute(select(FaceTemplate.id, FaceTemplate.model_key)).all()
        by_model: dict[str, list[int]] = {}
        for template_id, model_key in rows:
            by_model.setdefault(model_key, []).append(template_id)
        vectors = []
        for model_key, ids in by_model.items():
            found = template_vectors(session, ids, model_key, workspace.vault, workspace.keys)
            vectors.extend(found.values())
    return vectors


@pytest.mark.sqlite_only(reason="scans candor.db and its write-ahead log")
def test_no_file_of_the_workspace_holds_a_photo_or_a_template_in_the_clear(
    reviewed: Agency, isolated_cache: Path
) -> None:
    workspace = reviewed.workflow.workspace
    vectors = stored_templates(workspace)
    assert vectors
    needles = [vector.astype("<f4").tobytes() for vector in vectors]
    # The scan can fail: a photo and a template in the clear are what it looks for.
    plain = workspace.home / "tmp" / "plain-canary"
    plain.write_bytes(photos_of(reviewed.people[0])[0].read_bytes() + needles[0])  # type: ignore[attr-defined]
    try:
        assert list(files_holding(workspace.home, needles)) == ["tmp/plain-canary"]
    finally:
        plain.unlink()
    wal = workspace.home / "candor.db-wal"
    assert wal.exists()  # the write-ahead log is scanned too, not only the database file
    assert files_holding(workspace.home, needles) == {}
    assert files_holding(isolated_cache, needles) == {}


def _wrapped_keys(home: Path) -> list[bytes]:
    connection = sqlite3.connect(home / "candor.db")
    try:
        return [row[0] for row in connection.execute("SELECT wrapped FROM data_keys")]
    finally:
        connection.close()


@pytest.mark.sqlite_only(reason="reads the copy's SQLite file directly")
def test_a_copy_of_the_workspace_without_its_kek_cannot_be_read(
    reviewed: Agency, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = reviewed.workflow.workspace
    copy = copy_workspace(workspace.home, tmp_path / "copy")
    # Without the KEK file (its recorded path gone on the thief's machine): refused.
    monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "no-such.kek"))
    with pytest.raises(KeyEncryptionKeyError, match="key-encryption key"):
        Workspace.open(copy)
    # With another KEK file: refused too, and never replaced by a new key.
    other = tmp_path / "other.kek"
    other_kek = create_key_file(other)
    monkeypatch.setenv(KEK_FILE_VARIABLE, str(other))
    with pytest.raises(KeyEncryptionKeyError, match="is not the workspace's"):
        Workspace.open(copy)
    assert read_key_file(other, "other") == other_kek
    # What the copy holds opens nothing: its data keys do not unwrap under that KEK, and
    # neither that KEK nor any wrapped key opens a sealed file.
    wrapped = _wrapped_keys(copy)
    assert wrapped
    for blob in wrapped:
        with pytest.raises(WrongKeyError):
            unwrap_key(other_kek, blob, "a copied key")
    files = [
        (path, f"{kind[:-1]}:{path.name}")
        for kind in ("images", "crops", "probes")
        for path in (copy / kind).rglob("*")
        if path.is_file()
    ]
    assert len(files) >= 5
    for path, context in files:
        sealed = path.read_bytes()
        for candidate in [
            other_kek,
            *(blob[:32] for blob in wrapped),
            *(blob[8:] for blob in wrapped),
        ]:
            with pytest.raises(SealError):
                open_sealed(candidate, sealed, context)


def _live_keys(workspace: Workspace) -> list[bytes]:
    """Every data key the live workspace holds, unwrapped under its KEK."""
    kek = read_key_file(workspace.keys.kek_path, "the workspace's KEK")
    with workspace.session() as session:
        rows = session.execute(select(DataKey.wrapped)).scalars().all()
    return [unwrap_key(kek, blob, "a live key") for blob in rows]


@pytest.mark.sqlite_only(reason="the backup is a copy of the SQLite file and its WAL")
def test_a_backup_taken_before_an_expunge_no_longer_yields_the_subject(
    tmp_path: Path, faces_dir: Path
) -> None:
    agency = make_agency(tmp_path / "agency")
    try:
        people = people_with_photos(faces_dir, 2)
        _enrol(agency, people)
        workspace = agency.workflow.workspace
        victim = people[0].name
        with workspace.session() as session:
            subject = find_subject(session, victim)
            assert subject is not None
            subject_id = subject.id
            image = session.scalars(
                select(GalleryImage).where(GalleryImage.subject_id == subject_id)
            ).one()
            sha256 = image.sha256
            template = session.scalars(
                select(FaceTemplate).where(FaceTemplate.subject_id == subject_id)
            ).one()
            context = template_context(sha256, template.model_key)
        backup = tmp_path / "backup"
        shutil.copytree(workspace.home, backup)
        sealed = {
            "image": (backup / "images" / sha256[:2] / sha256[2:4] / sha256, f"image:{sha256}"),
            "crop": (backup / "crops" / sha256[:2] / sha256[2:4] / sha256, f"crop:{sha256}"),
        }
        connection = sqlite3.connect(backup / "candor.db")
        try:
            (blob,) = connection.execute(
                "SELECT vector FROM face_templates WHERE id = ?", (template.id,)
            ).fetchone()
            (backup_wrapped,) = connection.execute(
                "SELECT wrapped FROM data_keys WHERE subject_id = ?", (subject_id,)
            ).fetchone()
        finally:
            connection.close()
        # The test can fail: before the expungement the live keys open the backup's copy.
        before = _live_keys(workspace)
        opened = [k for k in before if _opens(k, sealed["image"][1], sealed["image"][0])]
        assert len(opened) == 1
        assert (
            sha256_hex(open_sealed(opened[0], sealed["image"][0].read_bytes(), sealed["image"][1]))
            == sha256
        )

        expunge_subject(agency.workflow, agency["admin1"], victim)

        with workspace.session() as session:
            with pytest.raises(KeyEncryptionKeyError, match="no data key"):
                workspace.keys.subject_key(session, subject_id)
            assert (
                session.scalar(select(DataKey.id).where(DataKey.subject_id == subject_id)) is None
            )
        live = _live_keys(workspace)
        assert live
        for name, (path, what) in sealed.items():
            assert not any(_opens(key, what, path) for key in live), name
        for key in live:
            with pytest.raises(SealError):
                open_sealed(key, blob, context)

        # The backup still holds the subject's key wrapped under the KEK of its day: a new
        # KEK, the old file destroyed, and that wrapped key opens under nothing there is.
        old_kek_path = workspace.keys.kek_path
        old_kek = read_key_file(old_kek_path, "old KEK")
        assert unwrap_key(old_kek, backup_wrapped, "backup's key")  # the test can fail
        rotate_kek(agency.workflow, agency["admin1"], tmp_path / "new.kek")
        old_kek_path.unlink()
        new_kek = read_key_file(tmp_path / "new.kek", "new KEK")
        with pytest.raises(WrongKeyError):
            unwrap_key(new_kek, backup_wrapped, "backup's key")
        # The live workspace reads on under the new KEK.
        assert len(_live_keys(workspace)) == len(live)
    finally:
        agency.workflow.close()


def _opens(key: bytes, context: str, path: Path) -> bool:
    try:
        open_sealed(key, path.read_bytes(), context)
    except SealError:
        return False
    return True


def test_retention_destroys_a_purged_probes_key(tmp_path: Path, faces_dir: Path) -> None:
    agency = make_agency(tmp_path / "agency")
    try:
        people = people_with_photos(faces_dir, 2)
        _enrol(agency, people)
        workflow = agency.workflow
        probe = photos_of(people[1])[1]
        sha256 = sha256_hex(probe.read_bytes())
        request_search(workflow, agency["ana"], probe, FORM)
        with workflow.workspace.session() as session:
            assert workflow.workspace.keys.probe_key(session, sha256)
        assert workflow.workspace.vault.has_probe(sha256)

        run_retention(workflow, agency["admin1"], now=workflow.now() + timedelta(days=4000))

        assert not workflow.workspace.vault.has_probe(sha256)
        with (
            workflow.workspace.session() as session,
            pytest.raises(KeyEncryptionKeyError, match="no data key"),
        ):
            workflow.workspace.keys.probe_key(session, sha256)
    finally:
        agency.workflow.close()


def test_a_staged_photo_is_sealed_and_its_key_goes_when_it_is_dropped(
    tmp_path: Path, faces_dir: Path
) -> None:
    agency = make_agency(tmp_path / "agency")
    try:
        workflow = agency.workflow
        photo = photos_of(people_with_photos(faces_dir, 1)[0])[0].read_bytes()
        sha256 = sha256_hex(photo)
        key = stage_probe(workflow, "token-1", "probe.jpg", photo)
        with workflow.workspace.session() as session:
            (stored,) = session.execute(text("SELECT data FROM staged_probes")).scalars()
            assert photo not in stored and photo[:64] not in stored
            assert workflow.workspace.keys.probe_key(session, sha256)
        held = take_staged_probe(workflow, "token-1", key)
        assert held is not None and held.data == photo
        # Taken (for an enrolment, say): its probe key seals nothing any more.
        with workflow.workspace.session() as session:
            assert sha256 not in workflow.workspace.keys.probe_owners(session)

        stage_probe(workflow, "token-1", "probe.jpg", photo)
        assert drop_staged_probes(workflow, "token-1") == 1
        with (
            workflow.workspace.session() as session,
            pytest.raises(KeyEncryptionKeyError, match="no data key"),
        ):
            workflow.workspace.keys.probe_key(session, sha256)
    finally:
        agency.workflow.close()
