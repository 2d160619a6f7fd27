"""The vault seals every photo, crop and probe under the key its caller names, and an
older workspace's plaintext files are sealed in place without a moment of neither."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.sealing import SEAL_OVERHEAD, new_data_key, open_sealed
from candor.store import BiometricIntegrityError, Workspace, delete_subject_cascade, find_subject
from candor.store.data_keys import DataKey
from candor.store.vault import BiometricVault
from tests.store.support import enrol_image, make_subject

DATA = b"\xff\xd8\xff\xe0\x00\x10JFIF a photo's bytes " * 30
SHA = hashlib.sha256(DATA).hexdigest()
OTHER = b"\xff\xd8\xff\xe0\x00\x10JFIF another photo " * 30
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()
CROP = b"\x89PNG\r\n\x1a\n a crop"
KEY = new_data_key()


@pytest.mark.parametrize("kind", ["images", "crops", "probes"])
def test_each_file_is_sealed_under_its_key_for_its_name(workspace: Workspace, kind: str) -> None:
    vault = workspace.vault
    plain = CROP if kind == "crops" else DATA
    put, get, path = {
        "images": (vault.put_image, vault.get_image, vault.image_path),
        "crops": (vault.put_crop, vault.get_crop, vault.crop_path),
        "probes": (vault.put_probe, vault.get_probe, vault.probe_path),
    }[kind]
    put(SHA, plain, KEY)
    stored = path(SHA).read_bytes()
    assert stored[:4] == b"CNS1" and len(stored) == len(plain) + SEAL_OVERHEAD
    assert plain not in stored and plain[:16] not in stored
    assert open_sealed(KEY, stored, f"{kind[:-1]}:{SHA}") == plain
    assert get(SHA, KEY) == plain
    with pytest.raises(BiometricIntegrityError, match="does not open under its key"):
        get(SHA, new_data_key())


def test_a_sealed_file_moved_to_another_name_does_not_open(workspace: Workspace) -> None:
    vault = workspace.vault
    vault.put_image(SHA, DATA, KEY)
    vault.put_image(OTHER_SHA, OTHER, KEY)
    # Swapped: both under the same key, but each bound to its own name.
    vault.image_path(OTHER_SHA).write_bytes(vault.image_path(SHA).read_bytes())
    with pytest.raises(BiometricIntegrityError, match="does not open"):
        vault.get_image(OTHER_SHA, KEY)


def test_a_plaintext_file_is_refused_and_named_for_the_upgrade(workspace: Workspace) -> None:
    vault = workspace.vault
    path = vault.image_path(SHA)
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    with pytest.raises(BiometricIntegrityError, match="candor upgrade"):
        vault.get_image(SHA, KEY)
    # A put over it replaces it with a sealed copy.
    vault.put_image(SHA, DATA, KEY)
    assert vault.is_sealed_file("images", SHA) is True


def test_a_put_over_a_file_another_key_sealed_replaces_it(workspace: Workspace) -> None:
    # A probe's request rolled back with its new key; the next request has another key.
    vault = workspace.vault
    vault.put_probe(SHA, DATA, new_data_key())
    vault.put_probe(SHA, DATA, KEY)
    assert vault.get_probe(SHA, KEY) == DATA


def _plaintext(vault: BiometricVault, path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_seal_in_place_seals_once_and_zeroes_the_plaintext(workspace: Workspace) -> None:
    vault = workspace.vault
    path = vault.image_path(SHA)
    _plaintext(vault, path, DATA)
    # Holding the old file open keeps its blocks: what they hold after the seal shows.
    held = os.open(path, os.O_RDONLY)
    try:
        assert vault.seal_in_place("images", SHA, KEY) is True
        assert os.pread(held, len(DATA), 0) == bytes(len(DATA))
    finally:
        os.close(held)
    assert vault.get_image(SHA, KEY) == DATA
    assert vault.seal_in_place("images", SHA, KEY) is False
    assert vault.seal_in_place("probes", SHA, KEY) is False  # no such file
    assert [p for p in (workspace.home / "tmp").iterdir()] == []
    assert vault.pending("images") == []


def test_seal_in_place_refuses_a_file_that_is_not_its_name(workspace: Workspace) -> None:
    vault = workspace.vault
    _plaintext(vault, vault.probe_path(SHA), OTHER)
    with pytest.raises(BiometricIntegrityError, match="left as it is"):
        vault.seal_in_place("probes", SHA, KEY)
    assert vault.probe_path(SHA).read_bytes() == OTHER


def test_a_crash_before_the_sealed_copy_took_the_name_keeps_the_plaintext(
    workspace: Workspace,
) -> None:
    vault = workspace.vault
    path = vault.image_path(SHA)
    _plaintext(vault, path, DATA)
    # The upgrade's link to the plaintext, as a kill before the rename leaves it.
    link = workspace.home / "tmp" / f"unsealed-images-{SHA}"
    os.link(path, link)
    assert vault.erase_stray_temporaries() == 1
    assert not link.exists()
    assert path.read_bytes() == DATA  # unlinked, not zeroed: it is still the stored file
    assert vault.seal_in_place("images", SHA, KEY) is True


def test_a_crash_after_the_sealed_copy_took_the_name_zeroes_the_old_plaintext(
    workspace: Workspace,
) -> None:
    vault = workspace.vault
    link = workspace.home / "tmp" / f"unsealed-images-{SHA}"
    link.write_bytes(DATA)  # the only name left of the replaced plaintext
    held = os.open(link, os.O_RDONLY)
    try:
        assert vault.erase_stray_temporaries() == 1
        assert os.pread(held, len(DATA), 0) == bytes(len(DATA))
    finally:
        os.close(held)
    assert not link.exists()


def test_a_staged_photo_is_sealed_for_its_row(workspace: Workspace) -> None:
    vault = workspace.vault
    blob = vault.seal_staged("a" * 64, DATA, KEY)
    assert DATA[:16] not in blob
    assert vault.open_staged("a" * 64, blob, KEY) == DATA
    with pytest.raises(BiometricIntegrityError, match="staged photo"):
        vault.open_staged("b" * 64, blob, KEY)


def test_a_subjects_key_goes_with_the_subjects_row(workspace: Workspace) -> None:
    # ON DELETE CASCADE, in the deletion's own transaction, on SQLite and PostgreSQL alike.
    with workspace.session() as session, session.begin():
        subject = make_subject(session, "SHRED-1")
        image = enrol_image(workspace, session, subject, DATA)
        subject_id, sha256 = subject.id, image.sha256
    with workspace.session() as session, session.begin():
        key = workspace.keys.subject_key(session, subject_id)
        assert workspace.vault.get_image(sha256, key) == DATA
        found = find_subject(session, "SHRED-1")
        assert found is not None
        delete_subject_cascade(session, found)
    with workspace.session() as session:
        assert session.scalar(select(DataKey.id).where(DataKey.subject_id == subject_id)) is None
