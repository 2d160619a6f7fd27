"""Building audit entries: validated fields, serialised with RFC 8785 (rfc8785.dumps).

`rfc8785` is imported when the first entry is built, not when this module is imported,
so that `import candor.audit` (and so the verifier) works where only the standard
library and `cryptography` are installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from candor.audit.canonical import check_entry, format_time
from candor.audit.errors import EntryError

__all__ = ["build_entry", "canonical_entry"]


def canonical_entry(entry: Mapping[str, object]) -> bytes:
    """The RFC 8785 bytes of a complete entry (time already a string); EntryError if invalid."""
    payload: dict[str, Any] = dict(entry)
    check_entry(payload, deep=True)
    import rfc8785

    try:
        return rfc8785.dumps(payload)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as error:
        raise EntryError(f"entry cannot be written as canonical JSON: {error}") from None


def build_entry(
    *,
    seq: int,
    time: datetime,
    actor: str | None,
    action: str,
    objects: Mapping[str, int | str],
    details: Mapping[str, object],
    prev_hex: str,
) -> bytes:
    """The canonical bytes of entry `seq`, linked to the leaf hash `prev_hex` of entry seq-1
    (64 zeros for seq 1). Floats anywhere are refused: pass strings or integers."""
    if not isinstance(objects, Mapping):
        raise EntryError(f"field 'objects' must be a mapping, got {type(objects).__name__}")
    if not isinstance(details, Mapping):
        raise EntryError(f"field 'details' must be a mapping, got {type(details).__name__}")
    return canonical_entry(
        {
            "seq": seq,
            "time": format_time(time),
            "actor": actor,
            "action": action,
            "objects": dict(objects),
            "details": dict(details),
            "prev": prev_hex,
        }
    )
