"""Probe storage in the vault: kept apart from gallery images, erased without trace."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from candor.store import BiometricIntegrityError, BiometricNotFoundError, VaultError, Workspace

PROBE = b"\xff\xd8\xff a probe photo \x00\x01" * 20
SHA = hashlib.sha256(PROBE).hexdigest()


def test_new_workspace_has_a_private_probe_folder(workspace: Workspace) -> None:
    folder = workspace.home / "probes"
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_put_probe_is_content_addressed_private_and_idempotent(workspace: Workspace) -> None:
    vault = workspace.vault
    vault.put_probe(SHA, PROBE)
    path = workspace.home / "probes" / SHA[:2] / SHA[2:4] / SHA
    assert vault.probe_path(SHA) == path
    assert path.read_bytes() == PROBE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    vault.put_probe(SHA, PROBE)
    assert path.stat().st_ino == inode
    assert vault.get_probe(SHA) == PROBE
    assert vault.has_probe(SHA)
    assert not vault.has_image(SHA)
    assert list((workspace.home / "tmp").iterdir()) == []


def test_put_probe_refuses_bytes_that_do_not_match(workspace: Workspace) -> None:
    with pytest.raises(BiometricIntegrityError, match="probe"):
        workspace.vault.put_probe(SHA, PROBE + b"!")
    assert not workspace.vault.has_probe(SHA)


def test_get_probe_detects_damage_and_a_missing_file(workspace: Workspace) -> None:
    vault = workspace.vault
    with pytest.raises(BiometricNotFoundError, match="no probe"):
        vault.get_probe(SHA)
    vault.put_probe(SHA, PROBE)
    vault.probe_path(SHA).write_bytes(PROBE[:-1] + b"X")
    with pytest.raises(BiometricIntegrityError, match="damaged or altered"):
        vault.get_probe(SHA)
    vault.put_probe(SHA, PROBE)
    assert vault.get_probe(SHA) == PROBE


@pytest.mark.parametrize("address", ["", SHA.upper(), "../" + SHA[3:]])
def test_malformed_probe_addresses_refused(workspace: Workspace, address: str) -> None:
    with pytest.raises(VaultError, match="64 lower-case hex"):
        workspace.vault.put_probe(address, PROBE)


def test_erase_probe_overwrites_before_unlinking(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = workspace.vault
    vault.put_probe(SHA, PROBE)
    path = vault.probe_path(SHA)
    seen: dict[Path, bytes] = {}
    original_unlink = Path.unlink

    def spying_unlink(self: Path, missing_ok: bool = False) -> None:
        seen[self] = self.read_bytes()
        original_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", spying_unlink)
    vault.erase_probe(SHA)
    assert seen[path] == bytes(len(PROBE))
    assert not path.exists()
    vault.erase_probe(SHA)


def test_the_same_photo_as_probe_and_gallery_image_are_erased_separately(
    workspace: Workspace,
) -> None:
    vault = workspace.vault
    vault.put_image(SHA, PROBE)
    vault.put_probe(SHA, PROBE)
    vault.erase_image(SHA)
    assert vault.get_probe(SHA) == PROBE
    vault.put_image(SHA, PROBE)
    vault.erase_probe(SHA)
    assert vault.get_image(SHA) == PROBE
    assert not vault.has_probe(SHA)


def test_a_workspace_made_before_probes_existed_stores_them(workspace: Workspace) -> None:
    (workspace.home / "probes").rmdir()
    workspace.vault.put_probe(SHA, PROBE)
    assert workspace.vault.get_probe(SHA) == PROBE
    assert stat.S_IMODE((workspace.home / "probes").stat().st_mode) == 0o700
