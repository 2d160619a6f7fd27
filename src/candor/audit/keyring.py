"""The keys a log has signed with, each with the checkpoint sizes it covers.

A log starts with one key; every rotation ends the current key's span at the size of
the rotation's own checkpoint and starts the new key's span there, so that checkpoint
may carry either signature (both, when the old key still existed to sign it). As text
(the export's `audit.keys`), one key per line, oldest first:

    <verifier key> <first size>..<last size>     a retired key
    <verifier key> <first size>..                the current key

A log that never rotated is written as its verifier key line alone, which is also the
whole of the older `audit.vkey` format. The standard library and `cryptography` are all
this module needs (the verifier imports it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from candor.audit.errors import SignatureError
from candor.audit.notes import Checkpoint, VerifierKey, open_checkpoint, peek_checkpoint_size

__all__ = ["KeyRing", "KeySpan", "open_with"]

_SPAN: Final = re.compile(r"(0|[1-9][0-9]{0,18})\.\.(0|[1-9][0-9]{0,18})?")


@dataclass(frozen=True)
class KeySpan:
    """One key and the checkpoint sizes it signs: first_size to last_size (None: open)."""

    key: VerifierKey
    first_size: int
    last_size: int | None

    def covers(self, size: int) -> bool:
        """Whether a checkpoint of `size` may be signed by this key."""
        return self.first_size <= size and (self.last_size is None or size <= self.last_size)

    def __str__(self) -> str:
        last = "" if self.last_size is None else str(self.last_size)
        return f"{self.key} {self.first_size}..{last}"


@dataclass(frozen=True)
class KeyRing:
    """Every key of one log, oldest first; the last one is the key that signs now."""

    spans: tuple[KeySpan, ...]

    def __post_init__(self) -> None:
        if not self.spans:
            raise SignatureError("a key ring needs at least one key")
        first = self.spans[0]
        if first.first_size != 0:
            raise SignatureError(f"the first key must cover size 0, not {first.first_size}")
        for earlier, later in zip(self.spans, self.spans[1:], strict=False):
            if earlier.last_size is None or earlier.last_size != later.first_size:
                raise SignatureError(
                    f"key {earlier.key.key_id.hex()} must end where key "
                    f"{later.key.key_id.hex()} begins (size {later.first_size})"
                )
            if later.first_size < earlier.first_size:
                raise SignatureError("keys must be listed oldest first")
        if self.spans[-1].last_size is not None:
            raise SignatureError("the last key must be open-ended (the key that signs now)")
        names = {span.key.name for span in self.spans}
        if len(names) != 1:
            raise SignatureError(f"every key of one log has its name; found {sorted(names)}")
        ids = [span.key.key_id for span in self.spans]
        if len(set(ids)) != len(ids):
            raise SignatureError("a key appears twice in the key ring")

    @classmethod
    def single(cls, key: VerifierKey | str) -> KeyRing:
        """A log that has only ever had this key."""
        parsed = key if isinstance(key, VerifierKey) else VerifierKey.parse(key)
        return cls((KeySpan(parsed, 0, None),))

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Read the text form (module docstring); a lone verifier key line is a ring of one.

        Raises SignatureError saying which line is wrong."""
        if not isinstance(text, str):
            raise SignatureError(f"verifier keys must be text, got {type(text).__name__}")
        lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
        if len(lines) == 1 and " " not in lines[0]:
            return cls.single(lines[0])
        spans = []
        for number, line in enumerate(lines, start=1):
            fields = line.split(" ")
            if len(fields) != 2:
                raise SignatureError(
                    f"key line {number} must be '<verifier key> <first>..<last>', got {line!r}"
                )
            match = _SPAN.fullmatch(fields[1])
            if match is None:
                raise SignatureError(
                    f"key line {number}: sizes must be '<first>..<last>' or '<first>..', "
                    f"got {fields[1]!r}"
                )
            last = match.group(2)
            spans.append(
                KeySpan(
                    VerifierKey.parse(fields[0]),
                    int(match.group(1)),
                    None if last is None else int(last),
                )
            )
        return cls(tuple(spans))

    def __str__(self) -> str:
        if len(self.spans) == 1:
            return str(self.spans[0].key)
        return "\n".join(str(span) for span in self.spans)

    @property
    def current(self) -> VerifierKey:
        """The key that signs new checkpoints."""
        return self.spans[-1].key

    @property
    def name(self) -> str:
        """The log's name (every key's name, and every checkpoint's origin)."""
        return self.current.name

    def keys_for(self, size: int) -> list[VerifierKey]:
        """The keys whose signature a checkpoint of `size` may carry."""
        return [span.key for span in self.spans if span.covers(size)]

    def rotated(self, new_key: VerifierKey, at_size: int) -> KeyRing:
        """This ring after the current key handed over to `new_key` at checkpoint `at_size`."""
        last = self.spans[-1]
        if at_size < last.first_size:
            raise SignatureError(
                f"a rotation at size {at_size} comes before the current key's first size "
                f"{last.first_size}"
            )
        return KeyRing(
            (
                *self.spans[:-1],
                KeySpan(last.key, last.first_size, at_size),
                KeySpan(new_key, at_size, None),
            )
        )

    def describe(self) -> str:
        """The key names and ids for a person: `name+id` or `name+id (and n earlier)`."""
        current = f"{self.current.name}+{self.current.key_id.hex()}"
        earlier = len(self.spans) - 1
        return current if not earlier else f"{current} (and {earlier} earlier)"


def open_with(note: str, keys: KeyRing | VerifierKey | str) -> Checkpoint:
    """Open a checkpoint note with the key that covered its size; SignatureError if none
    of them signed it (the message names each key tried)."""
    if isinstance(keys, str):
        keys = KeyRing.parse(keys)
    if isinstance(keys, VerifierKey):
        return open_checkpoint(note, keys)
    if len(keys.spans) == 1:
        return open_checkpoint(note, keys.current)
    size = peek_checkpoint_size(note)
    candidates: Sequence[VerifierKey] = keys.keys_for(size)
    problems = []
    for key in candidates:
        try:
            return open_checkpoint(note, key)
        except SignatureError as error:
            problems.append(str(error))
    raise SignatureError(
        f"checkpoint of size {size} carries no valid signature by the key(s) for that size: "
        + "; ".join(problems)
    )
