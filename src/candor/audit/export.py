"""Writing an audit export: the files an outside auditor verifies with candor.audit.verifier.

DIR/entries.jsonl          each entry's exact bytes followed by "\\n", in seq order
DIR/checkpoints/<size>.note  each signed checkpoint note, named by its tree size
DIR/audit.vkey             the current verifier key line followed by "\\n"
DIR/audit.keys             every key of the log with the checkpoint sizes it signs
                           (candor.audit.keyring), followed by "\\n"
DIR/witness.note           the latest checkpoint the log had signed (its witness)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from candor.audit.errors import AuditError, SignatureError
from candor.audit.keyring import KeyRing, open_with
from candor.audit.verification import (
    ENTRIES_FILE,
    KEYS_FILE,
    NOTES_DIR,
    VKEY_FILE,
    WITNESS_FILE,
)

__all__ = ["write_export"]


def _write(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_export(
    directory: Path,
    entries: Sequence[bytes],
    notes: Sequence[str],
    verifier_keys: str | KeyRing,
    *,
    witness: str,
) -> None:
    """Write the export into `directory`, which must not exist or be empty.

    verifier_keys: the log's keys (a KeyRing, its text, or one verifier key line).
    witness: the note of the latest checkpoint the log signed; it must be among `notes`.

    Notes are opened with the keys first, so an export never carries a note its own keys
    reject; the entries are written as given (verification is the auditor's job)."""
    keys = verifier_keys if isinstance(verifier_keys, KeyRing) else KeyRing.parse(verifier_keys)
    by_size: dict[int, str] = {}
    for note in notes:
        size = open_with(note, keys).size
        if by_size.get(size, note) != note:
            raise AuditError(f"two different checkpoint notes claim size {size}")
        by_size[size] = note
    try:
        witnessed = open_with(witness, keys)
    except SignatureError as error:
        raise AuditError(f"the witness was rejected: {error}") from None
    if by_size.get(witnessed.size) != witness:
        raise AuditError(f"the witness (size {witnessed.size}) is not among the notes exported")
    for position, entry in enumerate(entries, start=1):
        if b"\n" in entry:
            raise AuditError(f"entry at position {position} holds a newline; it is not canonical")
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise AuditError(f"export folder {directory} is not empty")
    (directory / NOTES_DIR).mkdir(parents=True)
    _write(directory / ENTRIES_FILE, b"".join(entry + b"\n" for entry in entries))
    for size, note in sorted(by_size.items()):
        _write(directory / NOTES_DIR / f"{size}.note", note.encode("utf-8"))
    _write(directory / VKEY_FILE, f"{keys.current}\n".encode("ascii"))
    _write(directory / KEYS_FILE, f"{keys}\n".encode("ascii"))
    _write(directory / WITNESS_FILE, witness.encode("utf-8"))
