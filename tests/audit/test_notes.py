"""Checkpoints as C2SP signed notes: the exact format, Go interoperability, key files, and
one test for every check that can reject a note."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from candor.audit import (
    Checkpoint,
    KeyFileError,
    SignatureError,
    SigningKey,
    VerifierKey,
    checkpoint_text,
    key_id,
    open_checkpoint,
    open_note,
)

from .support import fixed_key

# golang.org/x/mod/sumdb/note's own example (note_test.go and the package docs).
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvq"
    "fqdngotpRZb6KE6RyyBwJnAM=\n"
)

ROOT = hashlib.sha256(b"root").digest()
WHEN = datetime(2026, 11, 27, 9, 0, 0, 500000, tzinfo=UTC)


def write_key_file(path: Path, text: str, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(mode)
    return path


@pytest.fixture
def key() -> SigningKey:
    return fixed_key()


@pytest.fixture
def note(key: SigningKey) -> str:
    return key.sign(Checkpoint(origin=key.name, size=300, root=ROOT, time=WHEN))


def test_checkpoint_note_has_the_tlog_checkpoint_layout(key: SigningKey, note: str) -> None:
    root64 = base64.b64encode(ROOT).decode()
    text = f"candor.example/audit\n300\n{root64}\ntime 2026-11-27T09:00:00.500000Z\n"
    assert note.startswith(text + "\n— candor.example/audit ")
    signature_line = note[len(text) + 1 :]
    assert re.fullmatch(r"— candor\.example/audit [A-Za-z0-9+/]{91}=\n", signature_line)
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert len(blob) == 4 + 64
    assert blob[:4] == key.key_id
    assert checkpoint_text(open_checkpoint(note, key.verifier_key())) == text


def test_key_id_and_verifier_key_follow_the_signed_note_spec(key: SigningKey) -> None:
    expected_id = hashlib.sha256(key.name.encode() + b"\n\x01" + key.public_key).digest()[:4]
    assert key.key_id == expected_id == key_id(key.name, key.public_key)
    data = base64.b64encode(b"\x01" + key.public_key).decode()
    assert key.verifier_key() == f"{key.name}+{expected_id.hex()}+{data}"


def test_open_checkpoint_returns_what_was_signed(key: SigningKey, note: str) -> None:
    checkpoint = open_checkpoint(note, key.verifier_key())
    assert checkpoint == Checkpoint(origin=key.name, size=300, root=ROOT, time=WHEN)
    assert open_checkpoint(note, VerifierKey.parse(key.verifier_key())) == checkpoint


def test_go_signed_note_verifies_and_go_key_signs_identically(tmp_path: Path) -> None:
    assert open_note(GO_NOTE, GO_VERIFIER) == GO_TEXT
    go_key = SigningKey.load(write_key_file(tmp_path / "go.key", GO_SIGNER + "\n"))
    assert go_key.verifier_key() == GO_VERIFIER
    # Ed25519 is deterministic: the same key and text give Go's bytes exactly.
    assert go_key.sign_text(GO_TEXT) == GO_NOTE


def test_verifier_keys_from_go_and_transparency_dev_parse() -> None:
    for text in (
        GO_VERIFIER,
        "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
        # Its base64 holds a '+', so only the first two '+' split the fields.
        "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
    ):
        assert str(VerifierKey.parse(text)) == text


def test_signatures_by_other_keys_are_ignored(key: SigningKey, note: str) -> None:
    witness = fixed_key("witness.example", seed="witness")
    cosigned = note + witness.sign_text(checkpoint_text(open_checkpoint(note, key.verifier_key())))
    # Keep only the witness's signature line and append it to the log's note.
    witness_line = cosigned.rsplit("\n", 2)[-2] + "\n"
    both = note + witness_line
    assert open_checkpoint(both, key.verifier_key()).size == 300
    assert open_note(both, witness.verifier_key()) == checkpoint_text(
        open_checkpoint(note, key.verifier_key())
    )
    with pytest.raises(SignatureError, match="origin must be the key name"):
        open_checkpoint(both, witness.verifier_key())


# One test per check in VerifierKey.parse.
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PeterNeumann+c74f20a3", "3 '\\+'-separated parts|<name>\\+<8 hex"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "non-empty"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "no spaces"),
        ("Peter\x01Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "controls"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lower-case hex"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lower-case hex"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy1", "base64"),
        ("PeterNeumann+c74f20a3+AhpjMkEHEFA4TEHoMMW84SqogX7FZJqqvywxOIs1stdE", "0x01 followed"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy", "0x01 followed"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "expected c74f20a3"),
        ("PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "got c74f20a3"),
    ],
)
def test_bad_verifier_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        VerifierKey.parse(text)


def replace_signature(note: str, blob: bytes, name: str = "candor.example/audit") -> str:
    text = note[: note.rindex("\n\n") + 1]
    return f"{text}\n— {name} {base64.b64encode(blob).decode()}\n"


def signed_raw(key: SigningKey, text: str) -> str:
    """`text` signed by `key` without any of SigningKey.sign's checks."""
    signature = key._private.sign(text.encode())
    return f"{text}\n— {key.name} {base64.b64encode(key.key_id + signature).decode()}\n"


# One test per check in open_note and open_checkpoint: each must be able to fail.
def test_refuses_a_note_without_a_final_newline(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="must end with a newline"):
        open_checkpoint(note[:-1], key.verifier_key())


def test_refuses_a_note_without_a_blank_line(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="no blank line"):
        open_checkpoint(note.replace("\n\n", "\n"), key.verifier_key())


def test_refuses_a_note_without_signatures(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="no signature lines"):
        open_checkpoint(note[: note.rindex("\n\n") + 2], key.verifier_key())


def test_refuses_control_characters(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="control character"):
        open_checkpoint(note.replace("300", "300\r"), key.verifier_key())


def test_refuses_oversized_notes(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="longer than"):
        open_checkpoint(note + ("— x AAAAAAAA\n" * 6000), key.verifier_key())


def test_refuses_too_many_signatures(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="more than 100"):
        open_checkpoint(note + "— x AAAAAAAA\n" * 100, key.verifier_key())


def test_refuses_a_line_without_the_em_dash(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="must start with"):
        open_checkpoint(note.replace("— ", "- "), key.verifier_key())


def test_refuses_a_malformed_signature_line(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="<name> <base64>"):
        open_checkpoint(
            note.replace("— candor.example/audit ", "— candor.example/audit  "), key.verifier_key()
        )


def test_refuses_a_signer_name_that_cannot_be_a_key_name(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="no spaces, '\\+' or controls"):
        open_checkpoint(
            note.replace("— candor.example/audit ", "— candor+audit "), key.verifier_key()
        )


def test_refuses_a_signature_that_is_not_base64(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="not standard padded base64"):
        open_checkpoint(note[:-3] + "!=\n", key.verifier_key())


def test_refuses_a_too_short_signature(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="too short"):
        open_checkpoint(replace_signature(note, key.key_id), key.verifier_key())


def test_refuses_a_signature_of_the_wrong_length(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="must be 64 bytes, got 63"):
        open_checkpoint(replace_signature(note, key.key_id + b"\x00" * 63), key.verifier_key())


def test_refuses_a_note_signed_by_another_key(note: str) -> None:
    other = fixed_key(seed="another key")
    with pytest.raises(
        SignatureError, match=f"no signature by candor.example/audit\\+{other.key_id.hex()}"
    ):
        open_checkpoint(note, other.verifier_key())


def test_refuses_two_signatures_by_the_key(key: SigningKey, note: str) -> None:
    line = note[note.rindex("\n\n") + 2 :]
    with pytest.raises(SignatureError, match="2 signatures by"):
        open_checkpoint(note + line, key.verifier_key())


def test_refuses_a_flipped_signature_bit(key: SigningKey, note: str) -> None:
    blob = bytearray(base64.b64decode(note.rsplit(" ", 1)[1]))
    blob[20] ^= 0x04
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(replace_signature(note, bytes(blob)), key.verifier_key())


def test_refuses_a_changed_text(key: SigningKey, note: str) -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(note.replace("\n300\n", "\n299\n"), key.verifier_key())


def test_refuses_an_origin_other_than_the_key_name(key: SigningKey) -> None:
    text = checkpoint_text(Checkpoint(origin="other.example", size=1, root=ROOT, time=WHEN))
    with pytest.raises(
        SignatureError, match=re.escape("expected 'candor.example/audit', got 'other.example'")
    ):
        open_checkpoint(signed_raw(key, text), key.verifier_key())
    with pytest.raises(SignatureError, match="origin must be the key name"):
        key.sign(Checkpoint(origin="other.example", size=1, root=ROOT, time=WHEN))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("candor.example/audit\n300\n{root}\n", "must be 4 lines"),
        (
            "candor.example/audit\n300\n{root}\ntime 2026-11-27T09:00:00.500000Z\nx\n",
            "must be 4 lines",
        ),
        ("candor.example/audit\n0300\n{root}\ntime 2026-11-27T09:00:00.500000Z\n", "leading zeros"),
        ("candor.example/audit\n-3\n{root}\ntime 2026-11-27T09:00:00.500000Z\n", "decimal"),
        ("candor.example/audit\n300\nAAAA\ntime 2026-11-27T09:00:00.500000Z\n", "must be 32 bytes"),
        ("candor.example/audit\n300\n{root}x\ntime 2026-11-27T09:00:00.500000Z\n", "base64"),
        (
            "candor.example/audit\n300\n{root}\nwhen 2026-11-27T09:00:00.500000Z\n",
            "'time <RFC 3339",
        ),
        ("candor.example/audit\n300\n{root}\ntime 2026-11-27T09:00:00Z\n", "time must look like"),
        (
            "candor.example/audit\n300\n{root}\ntime 2026-11-31T09:00:00.000000Z\n",
            "not a real date",
        ),
    ],
)
def test_refuses_malformed_checkpoint_text(key: SigningKey, body: str, message: str) -> None:
    text = body.replace("{root}", base64.b64encode(ROOT).decode())
    with pytest.raises(SignatureError, match=message):
        open_checkpoint(signed_raw(key, text), key.verifier_key())


def test_refuses_non_canonical_base64_root(key: SigningKey) -> None:
    root64 = base64.b64encode(ROOT[:31] + b"\x00").decode()
    sloppy = root64[:-2] + chr(ord(root64[-2]) + 1) + "="  # same bytes, non-zero pad bits
    text = f"candor.example/audit\n300\n{sloppy}\ntime 2026-11-27T09:00:00.500000Z\n"
    with pytest.raises(SignatureError, match="canonical base64"):
        open_checkpoint(signed_raw(key, text), key.verifier_key())


def test_checkpoint_fields_are_validated() -> None:
    with pytest.raises(ValueError, match="size"):
        Checkpoint(origin="a", size=-1, root=ROOT, time=WHEN)
    with pytest.raises(ValueError, match="32 bytes"):
        Checkpoint(origin="a", size=1, root=ROOT[:31], time=WHEN)
    with pytest.raises(ValueError, match="naive"):
        Checkpoint(origin="a", size=1, root=ROOT, time=datetime(2026, 1, 1))
    with pytest.raises(SignatureError, match="no spaces"):
        Checkpoint(origin="a b", size=1, root=ROOT, time=WHEN)


# Key files.
def test_generate_writes_a_0600_file_that_load_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    made = SigningKey.generate(path, "candor.example/audit")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+candor.example/audit+")
    loaded = SigningKey.load(path)
    assert loaded.verifier_key() == made.verifier_key()
    note = loaded.sign(
        Checkpoint(origin=loaded.name, size=0, root=hashlib.sha256().digest(), time=WHEN)
    )
    assert open_checkpoint(note, made.verifier_key()).size == 0


def test_generate_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    first = SigningKey.generate(path, "a")
    with pytest.raises(KeyFileError, match="already exists"):
        SigningKey.generate(path, "a")
    assert SigningKey.load(path).verifier_key() == first.verifier_key()


def test_generate_refuses_a_bad_name(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="no spaces"):
        SigningKey.generate(tmp_path / "k", "a+b")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_load_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "audit.key"
    SigningKey.generate(path, "a")
    path.chmod(mode)
    with pytest.raises(
        KeyFileError, match=f"mode 0{mode:o}.*run: chmod 600 {re.escape(str(path))}"
    ):
        SigningKey.load(path)


def test_load_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        SigningKey.load(tmp_path / "absent.key")


def test_load_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match=r"not a regular file|cannot open"):
        SigningKey.load(tmp_path / "d")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello\n",
        GO_SIGNER,  # no final newline
        GO_SIGNER.replace("PRIVATE+KEY+", "PRIVATE+KEY") + "\n",
        GO_SIGNER[:-4] + "\n",
        GO_SIGNER.replace("+AYEK", "+AhEK") + "\n",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    ],
)
def test_load_refuses_a_garbled_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(KeyFileError, match="not a Candor signing key"):
        SigningKey.load(write_key_file(tmp_path / "k", text))


def test_load_refuses_a_key_whose_id_does_not_match(tmp_path: Path) -> None:
    text = GO_SIGNER.replace("c74f20a3", "c74f20a4") + "\n"
    with pytest.raises(KeyFileError, match="damaged: key id expected c74f20a3, got 'c74f20a4'"):
        SigningKey.load(write_key_file(tmp_path / "k", text))


def test_sign_text_refuses_text_that_cannot_be_a_note() -> None:
    key = SigningKey("a", Ed25519PrivateKey.generate())
    for text in ("no newline", "two\n\n", "tab\there\n"):
        with pytest.raises(SignatureError):
            key.sign_text(text)
