"""Writing an audit export: the files an outside auditor verifies with candor.audit.verifier.

DIR/entries.jsonl          each entry's exact bytes followed by "\\n", in seq order
DIR/checkpoints/<size>.note  each signed checkpoint note, named by its tree size
DIR/audit.vkey             the verifier key line followed by "\\n"
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from candor.audit.errors import AuditError
from candor.audit.notes import VerifierKey, open_checkpoint
from candor.audit.verification import ENTRIES_FILE, NOTES_DIR, VKEY_FILE

__all__ = ["write_export"]


def _write(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_export(
    directory: Path, entries: Sequence[bytes], notes: Sequence[str], verifier_key: str
) -> None:
    """Write the export into `directory`, which must not exist or be empty.

    Notes are opened with `verifier_key` first, so an export never carries a note its own
    key rejects; the entries are written as given (verification is the auditor's job)."""
    key = VerifierKey.parse(verifier_key)
    by_size: dict[int, str] = {}
    for note in notes:
        size = open_checkpoint(note, key).size
        if by_size.get(size, note) != note:
            raise AuditError(f"two different checkpoint notes claim size {size}")
        by_size[size] = note
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
    _write(directory / VKEY_FILE, f"{key}\n".encode("ascii"))
