"""Data keys, their wrapping under a key-encryption key (KEK), and key files on disk.

A data key is 32 random bytes that seals one subject's (or one probe's, or one index's)
data. It is stored only wrapped under the KEK (AES key wrap, RFC 3394: the wrapped key
carries its own integrity check, so a wrong KEK is refused, not mistaken for a key).
Destroying a wrapped key shreds what it sealed, wherever copies of the ciphertext are.

A key file holds one 256-bit key as 64 hex digits and a newline, mode 0600. It is never
made implicitly where one was expected: a missing or wrong KEK is a refusal, because a
new key would make every sealed byte unreadable.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

__all__ = [
    "KEY_BYTES",
    "KeyFileError",
    "WrongKeyError",
    "create_key_file",
    "key_fingerprint",
    "new_data_key",
    "read_key_file",
    "unwrap_key",
    "wrap_key",
]

KEY_BYTES: Final = 32
WRAPPED_BYTES: Final = KEY_BYTES + 8
_FINGERPRINT_LABEL: Final = b"candor key fingerprint v1"


class KeyFileError(Exception):
    """A key file is missing, unreadable, too open, or does not hold a key; says which file."""


class WrongKeyError(KeyFileError):
    """A wrapped key does not unwrap under the KEK given: it is another workspace's KEK."""


def new_data_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_BYTES)


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """`key` wrapped under `kek` (40 bytes)."""
    _check_length(kek, "a key-encryption key")
    _check_length(key, "a data key")
    return aes_key_wrap(kek, key)


def unwrap_key(kek: bytes, wrapped: bytes, what: str) -> bytes:
    """The data key in `wrapped`; WrongKeyError (naming `what`) if `kek` did not wrap it."""
    _check_length(kek, "a key-encryption key")
    if len(wrapped) != WRAPPED_BYTES:
        raise WrongKeyError(
            f"the wrapped key of {what} is {len(wrapped)} bytes, not {WRAPPED_BYTES}"
        )
    try:
        return _unwrapped(kek, wrapped)
    except InvalidUnwrap:
        raise WrongKeyError(
            f"the wrapped key of {what} does not unwrap under this key-encryption key: "
            "it is another workspace's KEK, or the wrapped key was altered"
        ) from None


# A search's repeat check opens the probe keys of every earlier request in the policy's
# window, each time: unwrapping costs ~50 us (a new AES context and a Python loop), a
# cache hit ~1 us. Keyed by the wrapped bytes themselves, so only whoever reads a key's
# row (or holds a copy of it) can hit it; a destroyed key's row is read no more. Bounded:
# 65,536 keys are a few MB. Failures are not cached.
@functools.lru_cache(maxsize=1 << 16)
def _unwrapped(kek: bytes, wrapped: bytes) -> bytes:
    return aes_key_unwrap(kek, wrapped)


def key_fingerprint(key: bytes) -> str:
    """A public name for a key (HMAC-SHA256 of a fixed label, 16 hex digits): tells two keys
    apart without revealing either."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def create_key_file(path: Path) -> bytes:
    """Write a new random key to `path` (0600, its folder made 0700); refuses an existing file."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"{path} already exists; a new key never replaces a key file")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = new_data_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as error:
        raise KeyFileError(f"cannot write the key file {path}: {error.strerror}") from None
    return key


def read_key_file(path: Path, what: str = "key file") -> bytes:
    """The key in `path`; refuses a missing, unreadable, group- or world-readable file, or
    one that does not hold exactly 64 hex digits."""
    path = Path(path)
    try:
        info = path.stat()
        text = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"the {what} {path} does not exist") from None
    except OSError as error:
        raise KeyFileError(f"cannot read the {what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"the {what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyFileError(
            f"the {what} {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"make it owner-only: chmod 600 {path}"
        )
    digits = text.strip()
    try:
        key = bytes.fromhex(digits.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES or len(digits) != 2 * KEY_BYTES:
        raise KeyFileError(f"the {what} {path} does not hold a 256-bit key as 64 hex digits")
    return key


def _check_length(key: bytes, what: str) -> None:
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{what} is {KEY_BYTES} bytes, not {len(key)}")
