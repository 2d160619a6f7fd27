"""One sealed blob: a fixed header, a random 96-bit nonce, then AES-256-GCM ciphertext and tag.

    b"CNS1" | nonce (12 bytes) | ciphertext | tag (16 bytes)

The context (what the bytes are and whose: "image:<sha256>", "template:<image sha256>:<model
key>") is authenticated as associated data, never stored: a blob moved to another name, or
another subject's blob put in its place, fails to open, as a changed byte does. A random
nonce per seal is safe far past any gallery's size under one key (NIST SP 800-38D allows
2^32 seals per key with random nonces; a subject's key seals a handful of blobs).
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SEAL_OVERHEAD", "SealError", "UndecryptableError", "is_sealed", "open_sealed", "seal"]

MAGIC: Final = b"CNS1"
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
SEAL_OVERHEAD: Final = len(MAGIC) + NONCE_BYTES + TAG_BYTES


class SealError(Exception):
    """Sealing or opening failed; the message says what and where, never the data."""


class UndecryptableError(SealError):
    """A blob that does not open under the key given: damaged, moved, or another key's."""


def _aead(key: bytes) -> AESGCM:
    if len(key) != 32:
        raise SealError(f"a data key is 32 bytes, not {len(key)}")
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, context: str) -> bytes:
    """`plaintext` sealed under `key`, bound to `context`."""
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + _aead(key).encrypt(nonce, plaintext, context.encode("utf-8"))


def is_sealed(blob: bytes) -> bool:
    """Whether `blob` has the sealed header (a plaintext photo or template does not)."""
    return len(blob) >= SEAL_OVERHEAD and blob[: len(MAGIC)] == MAGIC


def open_sealed(key: bytes, blob: bytes, context: str) -> bytes:
    """The plaintext sealed in `blob` under `key` for `context`; UndecryptableError if not."""
    if not is_sealed(blob):
        raise UndecryptableError(f"{context} is not sealed (expected the {MAGIC!r} header)")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return _aead(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], context.encode("utf-8"))
    except InvalidTag:
        raise UndecryptableError(
            f"{context} does not open under its key: the bytes are damaged or altered, "
            "or were sealed under another key"
        ) from None
