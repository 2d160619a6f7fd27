"""Probe storage in the vault: kept apart from gallery images, erased without trace."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from candor.sealing import SEAL_OVERHEAD, new_data_key
from candor.store import BiometricIntegrityError, BiometricNotFoundError, VaultError, Workspace

PROBE = b"\xff\xd8\xff a probe photo \x00\x01" * 20
SHA = hashlib.sha256(PROBE).hexdigest()
KEY = new_data_key()


def test_new_workspace_has_a_private_probe_folder(workspace: Workspace) -> None:
    folder = workspace.home / "probes"
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_put_probe_is_content_addressed_private_and_idempotent(workspace: Workspace) -> None:
    vault = workspace.vault
    vault.put_probe(SHA, PROBE, KEY)
    path = workspace.home / "probes" / SHA[:2] / SHA[2:4] / SHA
    assert vault.probe_path(SHA) == path
    assert path.read_bytes()[:4] == b"CNS1"
    assert PROBE not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    vault.put_probe(SHA, PROBE, KEY)
    assert path.stat().st_ino == inode
    assert vault.get_probe(SHA, KEY) == PROBE
    assert vault.has_probe(SHA)
    assert not vault.has_image(SHA)
    assert list((workspace.home / "tmp").iterdir()) == []


def test_put_probe_refuses_bytes_that_do_not_match(workspace: Workspace) -> None:
    with pytest.raises(BiometricIntegrityError, match="probe"):
        workspace.vault.put_probe(SHA, PROBE + b"!", KEY)
    assert not workspace.vault.has_probe(SHA)


def test_get_probe_detects_damage_and_a_missing_file(workspace: Workspace) -> None:
    vault = workspace.vault
    with pytest.raises(BiometricNotFoundError, match="no probe"):
        vault.get_probe(SHA, KEY)
    vault.put_probe(SHA, PROBE, KEY)
    sealed = vault.probe_path(SHA).read_bytes()
    vault.probe_path(SHA).write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(BiometricIntegrityError, match="damaged or altered"):
        vault.get_probe(SHA, KEY)
    vault.put_probe(SHA, PROBE, KEY)
    assert vault.get_probe(SHA, KEY) == PROBE


@pytest.mark.parametrize("address", ["", SHA.upper(), "../" + SHA[3:]])
def test_malformed_probe_addresses_refused(workspace: Workspace, address: str) -> None:
    with pytest.raises(VaultError, match="64 lower-case hex"):
        workspace.vault.put_probe(address, PROBE, KEY)


def test_erase_probe_overwrites_before_unlinking(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = workspace.vault
    vault.put_probe(SHA, PROBE, KEY)
    path = vault.probe_path(SHA)
    seen: dict[Path, bytes] = {}
    original_unlink = Path.unlink

    def spying_unlink(self: Path, missing_ok: bool = False) -> None:
        seen[self] = self.read_bytes()
        original_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", spying_unlink)
    vault.erase_probe(SHA)
    assert seen[path] == bytes(len(PROBE) + SEAL_OVERHEAD)
    assert not path.exists()
    vault.erase_probe(SHA)


def test_the_same_photo_as_probe_and_gallery_image_are_erased_separately(
    workspace: Workspace,
) -> None:
    vault = workspace.vault
    vault.put_image(SHA, PROBE, KEY)
    vault.put_probe(SHA, PROBE, KEY)
    vault.erase_image(SHA)
    assert vault.get_probe(SHA, KEY) == PROBE
    vault.put_image(SHA, PROBE, KEY)
    vault.erase_probe(SHA)
    assert vault.get_image(SHA, KEY) == PROBE
    assert not vault.has_probe(SHA)


def test_a_workspace_made_before_probes_existed_stores_them(workspace: Workspace) -> None:
    (workspace.home / "probes").rmdir()
    workspace.vault.put_probe(SHA, PROBE, KEY)
    assert workspace.vault.get_probe(SHA, KEY) == PROBE
    assert stat.S_IMODE((workspace.home / "probes").stat().st_mode) == 0o700


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch os.fsync to note the inode of everything synced."""
    synced: list[int] = []
    real_fsync = os.fsync

    def noting_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_ino)

    monkeypatch.setattr(os, "fsync", noting_fsync)
    return synced


def _inodes_on_the_way(workspace: Workspace, path: Path) -> set[int]:
    folders = [path.parent, path.parent.parent, workspace.home / "probes"]
    return {path.stat().st_ino, *(folder.stat().st_ino for folder in folders)}


def test_put_probe_returns_with_the_file_and_each_new_folder_entry_synced(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = _record_fsyncs(monkeypatch)
    workspace.vault.put_probe(SHA, PROBE, KEY)
    path = workspace.vault.probe_path(SHA)
    assert _inodes_on_the_way(workspace, path) <= set(synced)


def test_put_probe_of_a_stored_photo_syncs_it_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another request may have put it an instant before and still wait on its fsyncs.
    workspace.vault.put_probe(SHA, PROBE, KEY)
    synced = _record_fsyncs(monkeypatch)
    workspace.vault.put_probe(SHA, PROBE, KEY)
    path = workspace.vault.probe_path(SHA)
    assert _inodes_on_the_way(workspace, path) <= set(synced)


def test_a_probe_whose_fsync_fails_is_not_left_under_its_name(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "disk gone")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk gone"):
        workspace.vault.put_probe(SHA, PROBE, KEY)
    monkeypatch.undo()
    # Found intact, a later put would skip its write and its caller commit on a file
    # that was never made durable.
    assert not workspace.vault.has_probe(SHA)
    assert list((workspace.home / "tmp").iterdir()) == []


def test_a_gallery_image_is_synced_before_it_takes_its_name(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = workspace.vault.image_path(SHA)
    synced: list[tuple[int, bool]] = []
    real_fsync = os.fsync

    def noting_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append((os.fstat(fd).st_ino, path.exists()))

    monkeypatch.setattr(os, "fsync", noting_fsync)
    workspace.vault.put_image(SHA, PROBE, KEY)
    named = dict(synced)
    assert named[path.stat().st_ino] is False  # its bytes were durable before its name
    assert path.parent.stat().st_ino in named
