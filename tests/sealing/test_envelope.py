"""Sealing: what opens, what is refused, and that a refusal never shows the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from candor.sealing import (
    SEAL_OVERHEAD,
    KeyFileError,
    UndecryptableError,
    WrongKeyError,
    create_key_file,
    is_sealed,
    key_fingerprint,
    new_data_key,
    open_sealed,
    read_key_file,
    seal,
    unwrap_key,
    wrap_key,
)

SECRET = b"\xff\xd8\xff\xe0 a photo's bytes"


def test_sealed_bytes_open_under_their_key_and_context_only() -> None:
    key = new_data_key()
    blob = seal(key, SECRET, "image:ab")
    assert len(blob) == len(SECRET) + SEAL_OVERHEAD
    assert is_sealed(blob) and SECRET not in blob
    assert open_sealed(key, blob, "image:ab") == SECRET
    with pytest.raises(UndecryptableError, match="image:cd"):
        open_sealed(key, blob, "image:cd")  # moved to another name
    with pytest.raises(UndecryptableError):
        open_sealed(new_data_key(), blob, "image:ab")  # another subject's key


def test_one_changed_byte_is_refused_without_showing_the_data() -> None:
    key = new_data_key()
    blob = bytearray(seal(key, SECRET, "crop:1"))
    blob[-1] ^= 1
    with pytest.raises(UndecryptableError) as refused:
        open_sealed(key, bytes(blob), "crop:1")
    assert "photo" not in str(refused.value)


def test_plaintext_is_not_taken_for_a_sealed_blob() -> None:
    assert not is_sealed(SECRET)
    with pytest.raises(UndecryptableError, match="not sealed"):
        open_sealed(new_data_key(), SECRET, "image:ab")


def test_a_wrapped_key_unwraps_only_under_its_kek() -> None:
    kek, key = new_data_key(), new_data_key()
    wrapped = wrap_key(kek, key)
    assert key not in wrapped and unwrap_key(kek, wrapped, "subject 1") == key
    with pytest.raises(WrongKeyError, match="subject 1"):
        unwrap_key(new_data_key(), wrapped, "subject 1")


def test_key_files_are_owner_only_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "kek"
    key = create_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == key
    assert key_fingerprint(key) != key_fingerprint(new_data_key())
    with pytest.raises(KeyFileError, match="already exists"):
        create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(path)


@pytest.mark.parametrize("content", [b"", b"zz" * 32 + b"\n", b"ab" * 31 + b"\n", b"ab" * 33])
def test_a_key_file_without_a_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "kek"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="64 hex digits"):
        read_key_file(path, "key-encryption key")


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        read_key_file(tmp_path / "nowhere.kek", "key-encryption key")
