"""Sealing: AES-256-GCM for biometric data at rest, and the keys that do it.

A leaf part, like images: it knows nothing of workspaces, subjects or SQL. The store, the
index and the evaluation cache seal what they write with it; each says whose key and
which context. `envelope` seals bytes under a data key; `keys` makes data keys, wraps
them under a key-encryption key (KEK) and reads and writes the key files.
"""

from __future__ import annotations

from candor.sealing.envelope import (
    SEAL_OVERHEAD,
    SealError,
    UndecryptableError,
    is_sealed,
    open_sealed,
    seal,
)
from candor.sealing.keys import (
    KEY_BYTES,
    KeyFileError,
    WrongKeyError,
    create_key_file,
    key_fingerprint,
    new_data_key,
    read_key_file,
    unwrap_key,
    wrap_key,
)

__all__ = [
    "KEY_BYTES",
    "SEAL_OVERHEAD",
    "KeyFileError",
    "SealError",
    "UndecryptableError",
    "WrongKeyError",
    "create_key_file",
    "is_sealed",
    "key_fingerprint",
    "new_data_key",
    "open_sealed",
    "read_key_file",
    "seal",
    "unwrap_key",
    "wrap_key",
]
