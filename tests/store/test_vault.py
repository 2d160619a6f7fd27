"""The biometric vault: content-addressed files, integrity, template encoding, erasure."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import numpy as np
import pytest

from candor.sealing import SEAL_OVERHEAD, new_data_key
from candor.store import (
    BiometricIntegrityError,
    BiometricNotFoundError,
    TemplateFormatError,
    VaultError,
    Workspace,
)
from candor.store.vault import template_context

KEY = new_data_key()
CONTEXT = template_context("0" * 64, "test-model/1/abababababababab")
DATA = b"\xff\xd8\xff pretend jpeg bytes \x00\x01\x02" * 10
SHA = hashlib.sha256(DATA).hexdigest()


def test_put_image_is_content_addressed_private_and_idempotent(workspace: Workspace) -> None:
    vault = workspace.vault
    vault.put_image(SHA, DATA, KEY)
    path = workspace.home / "images" / SHA[:2] / SHA[2:4] / SHA
    assert path.read_bytes()[:4] == b"CNS1"
    assert DATA not in path.read_bytes()
    assert len(path.read_bytes()) == len(DATA) + SEAL_OVERHEAD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    vault.put_image(SHA, DATA, KEY)
    assert path.stat().st_ino == inode
    assert vault.get_image(SHA, KEY) == DATA
    assert vault.has_image(SHA)
    assert list((workspace.home / "tmp").iterdir()) == []


def test_put_image_refuses_bytes_that_do_not_match(workspace: Workspace) -> None:
    with pytest.raises(BiometricIntegrityError):
        workspace.vault.put_image(SHA, DATA + b"!", KEY)
    assert not workspace.vault.has_image(SHA)


@pytest.mark.parametrize("address", ["", "abc", SHA.upper(), "../" + SHA[3:], "z" * 64])
def test_malformed_addresses_refused(workspace: Workspace, address: str) -> None:
    with pytest.raises(VaultError, match="64 lower-case hex"):
        workspace.vault.get_image(address, KEY)


def test_get_image_detects_altered_file(workspace: Workspace) -> None:
    workspace.vault.put_image(SHA, DATA, KEY)
    path = workspace.vault.image_path(SHA)
    sealed = path.read_bytes()
    path.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(BiometricIntegrityError, match="damaged or altered"):
        workspace.vault.get_image(SHA, KEY)
    workspace.vault.put_image(SHA, DATA, KEY)
    assert workspace.vault.get_image(SHA, KEY) == DATA


def test_get_missing_image(workspace: Workspace) -> None:
    with pytest.raises(BiometricNotFoundError):
        workspace.vault.get_image(SHA, KEY)


def test_crop_round_trip_and_replace(workspace: Workspace) -> None:
    workspace.vault.put_crop(SHA, b"png-1", KEY)
    workspace.vault.put_crop(SHA, b"png-2", KEY)
    assert workspace.vault.get_crop(SHA, KEY) == b"png-2"
    path = workspace.home / "crops" / SHA[:2] / SHA[2:4] / SHA
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.dtype(">f4")])
def test_template_round_trip(workspace: Workspace, dtype: np.dtype[np.floating]) -> None:
    original = np.random.default_rng(0).standard_normal(128).astype(dtype)
    blob = workspace.vault.encode_template(original, KEY, CONTEXT)
    assert len(blob) == 128 * 4 + SEAL_OVERHEAD
    assert original.astype("<f4").tobytes() not in blob
    decoded = workspace.vault.decode_template(blob, 128, KEY, CONTEXT)
    assert decoded.dtype == np.float32
    assert decoded.shape == (128,)
    np.testing.assert_array_equal(decoded, original.astype(np.float32))
    decoded[0] = 1.0  # a decoded vector is the caller's to modify


@pytest.mark.parametrize(
    "vector",
    [
        np.zeros((2, 4), dtype=np.float32),
        np.zeros(0, dtype=np.float32),
        np.array([1.0, np.nan], dtype=np.float32),
        np.array([1.0, np.inf]),
        np.array([1, 2, 3]),
        np.array([1e39]),
    ],
)
def test_encode_refuses_bad_vectors(workspace: Workspace, vector: np.ndarray) -> None:
    with pytest.raises(TemplateFormatError):
        workspace.vault.encode_template(vector, KEY, CONTEXT)


@pytest.mark.parametrize(
    ("length", "dimension"), [(543, 128), (548, 128), (512, 128), (0, 128), (36, 0)]
)
def test_decode_refuses_wrong_length(workspace: Workspace, length: int, dimension: int) -> None:
    # 512 bytes: a plain template of dimension 128, never taken for a sealed one.
    with pytest.raises(TemplateFormatError):
        workspace.vault.decode_template(b"\0" * length, dimension, KEY, CONTEXT)


def test_decode_refuses_another_key_or_context(workspace: Workspace) -> None:
    blob = workspace.vault.encode_template(np.ones(8, dtype=np.float32), KEY, CONTEXT)
    with pytest.raises(BiometricIntegrityError, match="does not open"):
        workspace.vault.decode_template(blob, 8, new_data_key(), CONTEXT)
    with pytest.raises(BiometricIntegrityError, match="does not open"):
        workspace.vault.decode_template(blob, 8, KEY, template_context("1" * 64, "m/1/0"))


def test_erase_image_overwrites_before_unlinking(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = workspace.vault
    vault.put_image(SHA, DATA, KEY)
    vault.put_crop(SHA, b"crop bytes", KEY)
    image_path, crop_path = vault.image_path(SHA), vault.crop_path(SHA)
    seen: dict[Path, bytes] = {}
    original_unlink = Path.unlink

    def spying_unlink(self: Path, missing_ok: bool = False) -> None:
        seen[self] = self.read_bytes()
        original_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", spying_unlink)
    vault.erase_image(SHA)
    assert seen[image_path] == bytes(len(DATA) + SEAL_OVERHEAD)
    assert seen[crop_path] == bytes(len(b"crop bytes") + SEAL_OVERHEAD)
    assert not image_path.exists()
    assert not crop_path.exists()
    vault.erase_image(SHA)


def test_open_erases_stray_temporaries(workspace: Workspace) -> None:
    stray = workspace.home / "tmp" / "put-interrupted"
    stray.write_bytes(DATA)
    workspace.close()
    with Workspace.open(workspace.home):
        assert not stray.exists()
