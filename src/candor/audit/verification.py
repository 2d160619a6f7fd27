"""Verifying an audit log: the hash chain, the signed checkpoints, and checkpoints held outside.

One pass over the entries checks that each is canonical JSON with every field typed, that
`seq` counts 1, 2, 3, ... and that `prev` is the leaf hash of the entry before, while a
`MerkleAccumulator` gives the root at every checkpoint size to compare with what was
signed. Checkpoints held by the verifier (`against`) are compared the same way, so a
history rewritten and re-signed with the log's own key is caught by any checkpoint that
left the system before the rewrite. So is the log's witness (the latest checkpoint it
signed, kept outside its database and put in every export), which its own checkpoints
must also include: a log cut short, or rewritten with the checkpoints that would show it
deleted, fails. Each note is opened with the key that covered its size (a KeyRing).

The standard library and `cryptography` are all this module needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from candor.audit.canonical import ZERO_PREV, parse_entry
from candor.audit.errors import ChainError, EntryError, ProofError, SignatureError
from candor.audit.keyring import KeyRing, open_with
from candor.audit.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    consistency_proof_shared,
    leaf_hash,
    verify_consistency,
)
from candor.audit.notes import Checkpoint
from candor.audit.witness import Witness

__all__ = [
    "ENTRIES_FILE",
    "KEYS_FILE",
    "NOTES_DIR",
    "VKEY_FILE",
    "WITNESS_FILE",
    "VerificationReport",
    "verify_chain",
    "verify_entries",
    "verify_export",
]

ENTRIES_FILE: Final = "entries.jsonl"
NOTES_DIR: Final = "checkpoints"
VKEY_FILE: Final = "audit.vkey"
KEYS_FILE: Final = "audit.keys"
WITNESS_FILE: Final = "witness.note"

_NOTE_NAME: Final = re.compile(r"(0|[1-9][0-9]{0,18})\.note")


@dataclass(frozen=True)
class VerificationReport:
    """The verdict on one log.

    `first_bad_seq` is the first entry in doubt (None when ok, or when the problem is a
    checkpoint note rather than an entry); `problem` is one sentence (None when ok);
    `unchecked_tail` lists the entries after the last verified checkpoint, which only the
    hash chain protects: dropping them all leaves no trace unless a later checkpoint is held.
    `witness_size` is the size of the log's witness when one was checked and agreed.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None
    last_checkpoint_size: int
    unchecked_tail: tuple[int, ...]
    checkpoints: int = 0
    held: int = 0
    key_name: str | None = None
    witness_size: int | None = None

    def summary(self) -> str:
        """A few lines for a person: what was checked and the verdict."""
        lines = [
            f"entries:            {self.entries}",
            f"signing key:        {self.key_name or '(not read)'}",
            f"log checkpoints:    {self.checkpoints} verified; the last covers entries "
            f"1..{self.last_checkpoint_size}",
            f"held checkpoints:   {self.held} verified and consistent",
        ]
        if self.witness_size is not None:
            lines.append(
                f"witness:            the latest checkpoint the log signed (entries "
                f"1..{self.witness_size}) agrees"
            )
        if self.unchecked_tail:
            first, last = self.unchecked_tail[0], self.unchecked_tail[-1]
            lines.append(
                f"chain only:         entries {first}..{last} ({len(self.unchecked_tail)}) come "
                "after the last checkpoint; only the hash chain protects them"
            )
        else:
            lines.append("chain only:         none")
        if self.ok:
            lines.append("result:             OK")
        else:
            if self.first_bad_seq is not None:
                lines.append(f"first bad entry:    seq {self.first_bad_seq}")
            lines.append(f"problem:            {self.problem}")
            lines.append("result:             FAILED")
        return "\n".join(lines)


@dataclass
class _Stop:
    """Checkpoints (from the log and held) that claim the same tree size."""

    claims: list[tuple[str, Checkpoint]] = field(default_factory=list)


def _walk(
    entries: Sequence[bytes], stops: Sequence[int], at_stop: Callable[[int, bytes], None]
) -> list[bytes]:
    """Check the chain and call `at_stop(size, root)` at each size in sorted `stops`;
    return the leaf hashes. Raises ChainError naming the first entry in doubt."""
    # The hot loop of verification: names bound locally. The tree is candor.audit.merkle's
    # MerkleAccumulator, the one the log is signed with, not a copy of it.
    parse = parse_entry
    hash_leaf = leaf_hash
    leaves: list[bytes] = []
    keep = leaves.append
    tree = MerkleAccumulator()
    grow = tree.append
    pending = iter([*stops, -1])
    next_stop = next(pending)
    while next_stop == 0:
        at_stop(0, EMPTY_ROOT)
        next_stop = next(pending)
    prev = ZERO_PREV
    verified = 0
    for seq, raw in enumerate(entries, start=1):
        try:
            entry = parse(raw)
        except EntryError as error:
            raise ChainError(f"entry {seq} is malformed: {error}", seq) from None
        if entry["seq"] != seq:
            raise ChainError(
                f"the entry at position {seq} has seq {entry['seq']}, expected {seq}: "
                "entries are missing, duplicated or out of order",
                seq,
            )
        if entry["prev"] != prev:
            if seq == 1:
                raise ChainError(f"entry 1 must link to 64 zeros, got {entry['prev']}", 1)
            if seq - 1 <= verified:
                raise ChainError(
                    f"entry {seq} links to {entry['prev']} but entry {seq - 1}, which a verified "
                    f"checkpoint covers, hashes to {prev}: the link in entry {seq} was altered",
                    seq,
                )
            raise ChainError(
                f"entry {seq} links to {entry['prev']} but entry {seq - 1} hashes to {prev}: "
                f"entry {seq - 1} or the link in entry {seq} was altered",
                seq - 1,
            )
        digest = hash_leaf(raw)
        prev = digest.hex()
        keep(digest)
        grow(digest)
        while seq == next_stop:
            at_stop(seq, tree.root())
            verified = seq
            next_stop = next(pending)
    return leaves


def verify_chain(entries: Sequence[bytes]) -> list[bytes]:
    """Check that `entries` are canonical and chained from seq 1; return their leaf hashes.

    Raises ChainError whose `seq` is the first entry in doubt."""
    return _walk(entries, (), lambda size, root: None)


class _NoteRejectedError(Exception):
    """A checkpoint note failed to open; the problem is the note, not an entry."""


def _open_all(
    notes: Sequence[tuple[str, str, int | None]], keys: KeyRing
) -> list[tuple[str, Checkpoint]]:
    """Open each (label, note text, size its file name claims) or raise _NoteRejectedError."""
    opened = []
    for label, note, named_size in notes:
        try:
            checkpoint = open_with(note, keys)
        except SignatureError as error:
            raise _NoteRejectedError(f"{label} was rejected: {error}") from None
        if named_size is not None and checkpoint.size != named_size:
            # File names are not signed, but a misnamed file means the export was edited.
            raise _NoteRejectedError(
                f"{label} is named for size {named_size} but holds size {checkpoint.size}"
            )
        opened.append((label, checkpoint))
    return opened


_WITNESS_LABEL: Final = "the witness (the latest checkpoint the log signed)"


def _witness_problem(
    log: Sequence[tuple[str, Checkpoint]], witnessed: Checkpoint, counted: int | None
) -> str | None:
    """Why the log's own checkpoints do not include the witnessed one, or None."""
    if not any(
        checkpoint.size == witnessed.size and checkpoint.root == witnessed.root
        for _, checkpoint in log
    ):
        return (
            f"the log has no checkpoint of size {witnessed.size}, which {_WITNESS_LABEL} "
            "holds: checkpoints were removed"
        )
    if counted is not None:
        held = sum(1 for _, checkpoint in log if checkpoint.size <= witnessed.size)
        if held != counted:
            return (
                f"the log holds {held} checkpoints up to size {witnessed.size} but there were "
                f"{counted} when {_WITNESS_LABEL} was signed: checkpoints were removed"
            )
    return None


def _verify(
    entries: Sequence[bytes],
    notes: Sequence[tuple[str, str, int | None]],
    verifier_keys: str | KeyRing,
    against: Sequence[tuple[str, str, int | None]],
    witness: tuple[str, int | None] | None = None,
) -> VerificationReport:
    count = len(entries)
    covered = 0
    verified_log = 0
    key_name: str | None = None
    witnessed: Checkpoint | None = None

    def report(problem: str | None, seq: int | None, held: int = 0) -> VerificationReport:
        end = min(covered, count)
        return VerificationReport(
            ok=problem is None,
            entries=count,
            first_bad_seq=seq,
            problem=problem,
            last_checkpoint_size=end,
            unchecked_tail=tuple(range(end + 1, count + 1)),
            checkpoints=verified_log,
            held=held,
            key_name=key_name,
            witness_size=None if witnessed is None or problem else witnessed.size,
        )

    try:
        keys = (
            verifier_keys
            if isinstance(verifier_keys, KeyRing)
            else KeyRing.parse(verifier_keys.strip("\n"))
        )
        key_name = keys.describe()
    except SignatureError as error:
        return report(f"the verifier key was rejected: {error}", None)
    try:
        log = _open_all(notes, keys)
        held = _open_all(against, keys)
        if witness is not None:
            ((_, witnessed),) = _open_all([(_WITNESS_LABEL, witness[0], None)], keys)
    except _NoteRejectedError as error:
        return report(str(error), None)

    checked = [*held] if witnessed is None else [*held, (_WITNESS_LABEL, witnessed)]
    stops: dict[int, _Stop] = {}
    for label, checkpoint in [*log, *checked]:
        stops.setdefault(checkpoint.size, _Stop()).claims.append((label, checkpoint))
    log_counts: dict[int, int] = {}
    for _, checkpoint in log:
        log_counts[checkpoint.size] = log_counts.get(checkpoint.size, 0) + 1

    def at_stop(size: int, root: bytes) -> None:
        nonlocal covered, verified_log
        for label, checkpoint in stops[size].claims:
            if checkpoint.root != root:
                raise ChainError(
                    f"the root over entries 1..{size} is {root.hex()} but {label} signed "
                    f"{checkpoint.root.hex()}: entries {covered + 1}..{size} are not what "
                    "was signed",
                    covered + 1,
                )
        covered = size
        verified_log += log_counts.get(size, 0)

    try:
        leaves = _walk(entries, sorted(size for size in stops if size <= count), at_stop)
    except ChainError as error:
        return report(str(error), error.seq)

    beyond = sorted(size for size in stops if size > count)
    if beyond:
        label = stops[beyond[0]].claims[0][0]
        return report(
            f"{label} covers {beyond[0]} entries but the log holds {count}: entries "
            f"{count + 1}..{beyond[0]} were removed",
            count + 1,
        )
    if witnessed is not None and witness is not None:
        problem = _witness_problem(log, witnessed, witness[1])
        if problem is not None:
            return report(problem, None)

    latest = max((cp for _, cp in log), key=lambda cp: cp.size, default=None)
    if latest is not None:
        memo: dict[tuple[int, int], bytes] = {}
        for label, checkpoint in checked:
            older, newer = sorted((checkpoint, latest), key=lambda cp: cp.size)
            try:
                verify_consistency(
                    older.size,
                    newer.size,
                    older.root,
                    newer.root,
                    consistency_proof_shared(leaves, older.size, newer.size, memo),
                )
            except ProofError as error:
                return report(f"{label} is not consistent with the log: {error}", None)
    return report(None, None, held=len(held))


def verify_entries(
    entries: Sequence[bytes],
    notes: Sequence[str],
    verifier_key: str | KeyRing,
    against: Sequence[str] = (),
    *,
    witness: Witness | str | None = None,
) -> VerificationReport:
    """Verify a log: chain, every signed checkpoint in `notes`, every checkpoint the
    verifier holds from earlier (`against`), and the log's witness, each against the
    log's keys (`verifier_key`: one verifier key line, or a KeyRing or its text).

    witness: the latest checkpoint the log signed (a Witness, or its note alone). The
        entries must extend it, and `notes` must include it (and, given a Witness, as many
        checkpoints up to its size as there were when it was signed).
    """
    kept: tuple[str, int | None] | None = None
    if isinstance(witness, Witness):
        kept = None if witness.note is None else (witness.note, witness.checkpoints)
    elif witness is not None:
        kept = (witness, None)
    return _verify(
        entries,
        [(f"checkpoint note {i + 1}", note, None) for i, note in enumerate(notes)],
        verifier_key,
        [(f"held checkpoint {i + 1}", note, None) for i, note in enumerate(against)],
        kept,
    )


def _read_text(path: Path) -> str:
    """A file's UTF-8 text exactly as stored (no newline translation)."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _ExportProblemError(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise _ExportProblemError(f"cannot read {path}: {error.strerror or error}") from None


class _ExportProblemError(Exception):
    """The export's files are missing or laid out wrongly."""


_Labelled = list[tuple[str, str, int | None]]


@dataclass(frozen=True)
class _Export:
    entries: list[bytes]
    notes: _Labelled
    keys: str
    held: _Labelled
    witness: str


def _read_keys(directory: Path) -> str:
    """The export's key ring text: audit.keys, which must end on audit.vkey's key; or, in
    an export that predates key rotation, audit.vkey alone."""
    vkey = _read_text(directory / VKEY_FILE)
    if vkey.count("\n") != 1 or not vkey.endswith("\n"):
        raise _ExportProblemError(f"{directory / VKEY_FILE} must hold exactly one line")
    if not (directory / KEYS_FILE).exists():
        return vkey[:-1]
    keys = _read_text(directory / KEYS_FILE)
    if not keys.endswith("\n"):
        raise _ExportProblemError(f"{directory / KEYS_FILE} does not end with a newline")
    try:
        current = str(KeyRing.parse(keys).current)
    except SignatureError as error:
        raise _ExportProblemError(f"{directory / KEYS_FILE} was rejected: {error}") from None
    if current != vkey[:-1]:
        raise _ExportProblemError(
            f"{directory / VKEY_FILE} names {vkey[:-1]} but the current key in "
            f"{directory / KEYS_FILE} is {current}"
        )
    return keys[:-1]


def _read_export(directory: Path, against: Sequence[Path]) -> _Export:
    entries_path = directory / ENTRIES_FILE
    try:
        raw = entries_path.read_bytes()
    except OSError as error:
        raise _ExportProblemError(
            f"cannot read {entries_path}: {error.strerror or error}"
        ) from None
    if raw and not raw.endswith(b"\n"):
        raise _ExportProblemError(f"{entries_path} does not end with a newline (cut short?)")
    entries = raw[:-1].split(b"\n") if raw else []
    notes_dir = directory / NOTES_DIR
    notes: list[tuple[int, str, str]] = []
    if notes_dir.exists():
        for path in notes_dir.iterdir():
            match = _NOTE_NAME.fullmatch(path.name)
            if match is None or not path.is_file():
                raise _ExportProblemError(f"{path} is not a checkpoint note named <size>.note")
            notes.append((int(match.group(1)), f"{NOTES_DIR}/{path.name}", _read_text(path)))
    notes.sort()
    keys = _read_keys(directory)
    if not (directory / WITNESS_FILE).is_file():
        raise _ExportProblemError(
            f"the export has no {WITNESS_FILE} (the latest checkpoint the log signed, which "
            "every export carries since the witness was introduced); without it, a log cut "
            "short or rewritten with its checkpoints removed cannot be told from a whole one"
        )
    witness = _read_text(directory / WITNESS_FILE)
    held: _Labelled = [(f"held checkpoint {path}", _read_text(path), None) for path in against]
    log: _Labelled = [(label, text, size) for size, label, text in notes]
    return _Export(entries, log, keys, held, witness)


def verify_export(directory: Path, against: Sequence[Path] = ()) -> VerificationReport:
    """Verify an export written by `write_export`, against checkpoint note files held."""
    try:
        export = _read_export(Path(directory), against)
    except _ExportProblemError as error:
        return VerificationReport(
            ok=False,
            entries=0,
            first_bad_seq=None,
            problem=str(error),
            last_checkpoint_size=0,
            unchecked_tail=(),
        )
    return _verify(export.entries, export.notes, export.keys, export.held, (export.witness, None))
