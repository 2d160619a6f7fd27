"""Checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint).

A checkpoint note's text is four lines: the origin (the signing key's name), the tree
size in decimal, the base64 root hash, and the extension line `time <RFC 3339 UTC>`.
After a blank line come signature lines `— <key name> <base64(key id || signature)>`.
The key id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key), and
keys are written as Go's golang.org/x/mod/sumdb/note writes them:

    verifier key: <name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>
    signer key:   PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>

This module is imported by the verifier: it needs the standard library and
`cryptography` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from candor.audit.canonical import format_time, parse_time
from candor.audit.errors import EntryError, KeyFileError, SignatureError
from candor.audit.merkle import HASH_SIZE

__all__ = [
    "ALGORITHM_ED25519",
    "Checkpoint",
    "SigningKey",
    "VerifierKey",
    "checkpoint_text",
    "cosign",
    "key_id",
    "open_checkpoint",
    "open_note",
    "peek_checkpoint_size",
]

ALGORITHM_ED25519: Final = 0x01
MAX_SIGNATURES: Final = 100
MAX_NOTE_BYTES: Final = 1 << 16

_SIGNATURE_PREFIX: Final = "— "
_PRIVATE_PREFIX: Final = "PRIVATE+KEY+"
_SIZE_SHAPE: Final = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX8: Final = re.compile(r"[0-9a-f]{8}")
_BASE64_SHAPE: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_FORBIDDEN_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")
_UNICODE_SPACE: Final = re.compile(r"\s")


def _check_name(name: str) -> str:
    """A note key name: non-empty, no Unicode space, no '+' (signed-note)."""
    if not isinstance(name, str) or not name:
        raise SignatureError(f"key name must be a non-empty string, got {name!r}")
    if _UNICODE_SPACE.search(name) or "+" in name or _FORBIDDEN_CONTROL.search(name):
        raise SignatureError(f"key name must hold no spaces, '+' or controls, got {name!r}")
    return name


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: only the alphabet, correct padding, canonical encoding."""
    if len(text) % 4 or _BASE64_SHAPE.fullmatch(text) is None:
        raise SignatureError(f"{what} is not standard padded base64: {text!r}")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SignatureError(f"{what} is not standard padded base64: {text!r}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise SignatureError(f"{what} is not in canonical base64 form: {text!r}")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([ALGORITHM_ED25519]) + public_key
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size, the root over that many entries, and when."""

    origin: str
    size: int
    root: bytes
    time: datetime

    def __post_init__(self) -> None:
        _check_name(self.origin)
        if type(self.size) is not int or not 0 <= self.size < 2**63:
            raise ValueError(
                f"checkpoint size must be an integer from 0 to 2**63 - 1, got {self.size!r}"
            )
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise ValueError(f"checkpoint root must be {HASH_SIZE} bytes")
        try:
            format_time(self.time)
        except EntryError as error:
            raise ValueError(f"checkpoint {error}") from None


def checkpoint_text(checkpoint: Checkpoint) -> str:
    """The note text that is signed: origin, size, base64 root, time extension line."""
    root = base64.b64encode(checkpoint.root).decode("ascii")
    return f"{checkpoint.origin}\n{checkpoint.size}\n{root}\ntime {format_time(checkpoint.time)}\n"


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key: who signs, their key id, and the Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse `<name>+<8 hex key id>+<base64(0x01 || public key)>`; SignatureError if bad."""
        if not isinstance(text, str):
            raise SignatureError(f"verifier key must be a string, got {type(text).__name__}")
        # Split at the first two '+' only: base64 key data may itself hold '+'.
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise SignatureError(
                f"verifier key must be <name>+<8 hex key id>+<base64 key>, got {len(parts)} "
                f"'+'-separated parts in {text!r}"
            )
        name, id_hex, key_text = parts
        _check_name(name)
        if _HEX8.fullmatch(id_hex) is None:
            raise SignatureError(f"verifier key id must be 8 lower-case hex digits, got {id_hex!r}")
        key_data = _b64decode(key_text, "verifier key data")
        if len(key_data) != 33 or key_data[0] != ALGORITHM_ED25519:
            raise SignatureError(
                "verifier key data must be 0x01 followed by a 32-byte Ed25519 public key, "
                f"got {len(key_data)} bytes starting {key_data[:1].hex() or 'with nothing'}"
            )
        public_key = key_data[1:]
        computed = key_id(name, public_key)
        if computed.hex() != id_hex:
            raise SignatureError(
                f"verifier key id does not match its key: expected {computed.hex()}, got {id_hex}"
            )
        return cls(name=name, key_id=computed, public_key=public_key)

    def __str__(self) -> str:
        data = base64.b64encode(bytes([ALGORITHM_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{data}"


def _split_note(note: str) -> tuple[str, list[str]]:
    """Note text (with its final newline) and the signature lines (without newlines)."""
    if not isinstance(note, str):
        raise SignatureError(f"a note must be a string, got {type(note).__name__}")
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise SignatureError(f"note is longer than {MAX_NOTE_BYTES} bytes")
    if _FORBIDDEN_CONTROL.search(note):
        raise SignatureError("note holds a control character other than newline")
    if not note.endswith("\n"):
        raise SignatureError("note must end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise SignatureError("note has no blank line between its text and its signatures")
    text, signatures = note[: cut + 1], note[cut + 2 :]
    lines = signatures[:-1].split("\n")
    if not signatures or not lines[0]:
        raise SignatureError("note has no signature lines after the blank line")
    if len(lines) > MAX_SIGNATURES:
        raise SignatureError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return text, lines


def _parse_checkpoint_text(text: str) -> Checkpoint:
    lines = text[:-1].split("\n")
    if len(lines) != 4:
        raise SignatureError(
            f"checkpoint text must be 4 lines (origin, size, root, time), got {len(lines)}"
        )
    origin, size_text, root_text, time_line = lines
    _check_name(origin)
    if _SIZE_SHAPE.fullmatch(size_text) is None:
        raise SignatureError(
            f"checkpoint size must be decimal without leading zeros, got {size_text!r}"
        )
    root = _b64decode(root_text, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise SignatureError(f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(root)}")
    if not time_line.startswith("time "):
        raise SignatureError(
            f"checkpoint 4th line must be 'time <RFC 3339 UTC>', got {time_line!r}"
        )
    try:
        moment = parse_time(time_line[5:])
    except EntryError as error:
        raise SignatureError(f"checkpoint {error}") from None
    return Checkpoint(origin=origin, size=int(size_text), root=root, time=moment)


def open_note(note: str, verifier_key: str | VerifierKey) -> str:
    """Verify a signed note and return its text (with the final newline).

    Signatures by other keys are ignored (signed-note); the note must carry exactly one
    signature by this key, and it must verify.
    """
    key = verifier_key if isinstance(verifier_key, VerifierKey) else VerifierKey.parse(verifier_key)
    text, lines = _split_note(note)
    mine: list[bytes] = []
    others: list[str] = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise SignatureError(f"signature line must start with '— ', got {line[:20]!r}")
        fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise SignatureError(f"signature line must be '— <name> <base64>', got {line!r}")
        name, blob_text = fields
        _check_name(name)
        blob = _b64decode(blob_text, f"signature by {name}")
        if len(blob) < 5:
            raise SignatureError(f"signature by {name} is {len(blob)} bytes, too short")
        if name == key.name and blob[:4] == key.key_id:
            mine.append(blob[4:])
        else:
            others.append(f"{name}+{blob[:4].hex()}")
    if not mine:
        raise SignatureError(
            f"note has no signature by {key.name}+{key.key_id.hex()}; "
            f"found {', '.join(others) or 'none'}"
        )
    if len(mine) > 1:
        raise SignatureError(f"note has {len(mine)} signatures by {key.name}, expected one")
    signature = mine[0]
    if len(signature) != 64:
        raise SignatureError(
            f"Ed25519 signature by {key.name} must be 64 bytes, got {len(signature)}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, text.encode("utf-8"))
    except InvalidSignature:
        raise SignatureError(
            f"signature by {key.name} does not verify over the note text"
        ) from None
    return text


def open_checkpoint(note: str, verifier_key: str | VerifierKey) -> Checkpoint:
    """Verify a checkpoint note signed by `verifier_key` and return what it says; the
    origin must be the key's name. Raises SignatureError on anything wrong."""
    key = verifier_key if isinstance(verifier_key, VerifierKey) else VerifierKey.parse(verifier_key)
    checkpoint = _parse_checkpoint_text(open_note(note, key))
    if checkpoint.origin != key.name:
        raise SignatureError(
            f"checkpoint origin must be the key name: expected {key.name!r}, "
            f"got {checkpoint.origin!r}"
        )
    return checkpoint


def peek_checkpoint_size(note: str) -> int:
    """The tree size a checkpoint note states, read without checking any signature (to
    choose the key that must have signed it); SignatureError if the note is malformed."""
    text, _ = _split_note(note)
    return _parse_checkpoint_text(text).size


def cosign(note: str, key: SigningKey) -> str:
    """`note` with one more signature line, by `key`, over the same text (signed-note
    allows several); SignatureError if the note already carries a signature by `key`."""
    text, lines = _split_note(note)
    for line in lines:
        fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
        if len(fields) == 2 and fields[0] == key.name:
            blob = _b64decode(fields[1], f"signature by {key.name}")
            if blob[:4] == key.key_id:
                raise SignatureError(f"the note already carries a signature by {key.name}")
    return note + key.sign_text(text)[len(text) + 1 :]


class SigningKey:
    """An Ed25519 signing key with its note name, kept in a file only its owner can read."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = _check_name(name)
        self._private = private_key
        self.public_key = private_key.public_key().public_bytes_raw()
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def generate(cls, path: Path, name: str) -> SigningKey:
        """Make a new key named `name` and write it to `path` (created, mode 0600)."""
        key = cls(name, Ed25519PrivateKey.generate())
        seed = key._private.private_bytes_raw()
        data = base64.b64encode(bytes([ALGORITHM_ED25519]) + seed).decode("ascii")
        line = f"{_PRIVATE_PREFIX}{key.name}+{key.key_id.hex()}+{data}\n"
        try:
            # O_EXCL: never overwrite a key (losing it makes old checkpoints unverifiable
            # by a successor) and never follow a planted symlink.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(
                f"key file {path} already exists; refusing to overwrite it"
            ) from None
        except OSError as error:
            raise KeyFileError(f"cannot create key file {path}: {error.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return key

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a key written by `generate`; refuse it if group or others may access it."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} does not exist") from None
        except OSError as error:
            raise KeyFileError(f"cannot open key file {path}: {error.strerror}") from None
        try:
            # fstat the open file, not the path, so the file checked is the file read.
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise KeyFileError(f"key file {path} is not a regular file")
            if info.st_mode & 0o077:
                raise KeyFileError(
                    f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o} and may be read "
                    f"by group or others; run: chmod 600 {path}"
                )
            raw = os.read(fd, 4097)
        finally:
            os.close(fd)
        return cls._from_file_text(path, raw)

    @classmethod
    def _from_file_text(cls, path: Path, raw: bytes) -> SigningKey:
        garbled = f"key file {path} is not a Candor signing key (PRIVATE+KEY+<name>+<id>+<key>)"
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise KeyFileError(garbled) from None
        if len(raw) > 4096 or not text.endswith("\n") or not text.startswith(_PRIVATE_PREFIX):
            raise KeyFileError(garbled)
        parts = text[len(_PRIVATE_PREFIX) : -1].split("+", 2)
        if len(parts) != 3:
            raise KeyFileError(garbled)
        name, id_hex, data_text = parts
        try:
            data = _b64decode(data_text, "key data")
            _check_name(name)
        except SignatureError:
            raise KeyFileError(garbled) from None
        if len(data) != 33 or data[0] != ALGORITHM_ED25519:
            raise KeyFileError(f"{garbled}: key data must be 0x01 and a 32-byte Ed25519 seed")
        key = cls(name, Ed25519PrivateKey.from_private_bytes(data[1:]))
        if key.key_id.hex() != id_hex:
            raise KeyFileError(
                f"key file {path} is damaged: key id expected {key.key_id.hex()}, got {id_hex!r}"
            )
        return key

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note for `checkpoint`, whose origin must be this key's name."""
        if checkpoint.origin != self.name:
            raise SignatureError(
                f"checkpoint origin must be the key name: expected {self.name!r}, "
                f"got {checkpoint.origin!r}"
            )
        return self.sign_text(checkpoint_text(checkpoint))

    def sign_text(self, text: str) -> str:
        """A signed note of any `text` (non-empty, ending in a newline, no control
        characters but newlines)."""
        if not text.endswith("\n") or _FORBIDDEN_CONTROL.search(text) or "\n\n" in text[-2:]:
            raise SignatureError("note text must end with one newline and hold no controls")
        signature = self._private.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.key_id + signature).decode("ascii")
        return f"{text}\n{_SIGNATURE_PREFIX}{self.name} {blob}\n"

    def verifier_key(self) -> str:
        """The public verifier key line: `<name>+<8 hex key id>+<base64(0x01 || key)>`."""
        return str(VerifierKey(name=self.name, key_id=self.key_id, public_key=self.public_key))

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.key_id.hex()!r})"
