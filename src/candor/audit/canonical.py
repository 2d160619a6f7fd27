"""Audit entries as canonical JSON, with the standard library only.

RFC 8785 (JCS) is defined for all JSON values, but Candor entries use a restricted set:
null, booleans, integers in the IEEE 754 safe range, strings, arrays and objects. Floats
are refused everywhere because their canonical form (ECMAScript number formatting) is a
trap for callers and for independent verifiers alike; pass a string or an integer (for
example a score as "0.926" or in thousandths) instead.

For those types RFC 8785 reduces to: no whitespace, object keys sorted by their UTF-16
code units, strings as raw UTF-8 with only `"`, `\\` and control characters escaped
(`\\b \\f \\n \\r \\t` by name, the rest as `\\u00xx`), integers in decimal. That is
what `canonical_json` writes. The verifier's hot path uses the C `json` encoder with
sorted keys instead, which gives the same bytes whenever no string holds a character
outside the Basic Multilingual Plane (the only case where code point order and UTF-16
order differ); texts with such characters take the slow path.

This module is imported by the verifier, so it uses nothing but the standard library.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias, TypedDict, cast

from candor.audit.errors import EntryError

__all__ = [
    "ENTRY_FIELDS",
    "MAX_DEPTH",
    "SAFE_INT_MAX",
    "ZERO_PREV",
    "Entry",
    "JsonValue",
    "canonical_json",
    "check_entry",
    "format_time",
    "loads_canonical",
    "parse_entry",
    "parse_time",
]

JsonValue: TypeAlias = "bool | int | str | list[JsonValue] | dict[str, JsonValue] | None"

SAFE_INT_MAX: Final = 2**53 - 1
MAX_DEPTH: Final = 32
ZERO_PREV: Final = "0" * 64
ENTRY_FIELDS: Final = frozenset({"seq", "time", "actor", "action", "objects", "details", "prev"})

_TIME_SHAPE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_ACTION_SHAPE: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_NON_BMP: Final = re.compile("[\U00010000-\U0010ffff]")
_ZERO: Final = timedelta(0)


class Entry(TypedDict):
    """One audit entry as parsed from its canonical bytes."""

    seq: int
    time: str
    actor: str | None
    action: str
    objects: dict[str, int | str]
    details: dict[str, JsonValue]
    prev: str


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and 'Z', e.g. 2026-11-27T08:49:19.123456Z."""
    if not isinstance(moment, datetime):
        raise EntryError(f"time must be a datetime, got {type(moment).__name__}")
    offset = moment.utcoffset()
    if offset is None:
        raise EntryError("time must be timezone-aware UTC, got a naive datetime")
    if offset != _ZERO:
        raise EntryError(
            f"time must be in UTC (offset +00:00), got offset {moment.isoformat()[-6:]}; "
            "convert with .astimezone(datetime.UTC)"
        )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def parse_time(text: str) -> datetime:
    """The inverse of `format_time`; anything else raises EntryError."""
    if _TIME_SHAPE.fullmatch(text) is None:
        raise EntryError(f"time must look like 2026-11-27T08:49:19.123456Z, got {text!r}")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise EntryError(f"time {text!r} is not a real date and time") from None


def canonical_json(value: object) -> bytes:
    """RFC 8785 bytes of `value` (null, bool, safe int, str, list, dict with str keys)."""
    parts: list[str] = []
    _emit(value, parts, 0)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError("a string holds a lone surrogate, which is not Unicode text") from None


def _emit(value: object, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EntryError(f"value is nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(_safe_int_value(int(value))))
    elif isinstance(value, str):
        out.append(json.encoder.encode_basestring(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise EntryError(f"object keys must be strings, got {type(key).__name__}")
        out.append("{")
        # RFC 8785 3.2.3: keys ordered by their UTF-16 code units, not by code points.
        ordered = sorted(
            value.items(), key=lambda item: item[0].encode("utf-16-be", "surrogatepass")
        )
        for index, (key, item) in enumerate(ordered):
            if index:
                out.append(",")
            out.append(json.encoder.encode_basestring(key))
            out.append(":")
            _emit(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, float):
        raise EntryError(
            f"floats are refused (got {value!r}); pass the number as a string or an integer"
        )
    else:
        raise EntryError(f"{type(value).__name__} is not a JSON value Candor accepts")


def _safe_int_value(number: int) -> int:
    if -SAFE_INT_MAX <= number <= SAFE_INT_MAX:
        return number
    raise EntryError(f"integer {number} is outside the JSON safe range ±(2**53 - 1)")


class _RefusedError(ValueError):
    """Raised from inside the JSON decoder for a value Candor never writes."""


def _refuse_float(text: str) -> object:
    raise _RefusedError(f"number {text} is not an integer; floats are refused")


def _refuse_constant(text: str) -> object:
    raise _RefusedError(f"{text} is not a JSON value")


def _checked_int(text: str) -> int:
    number = int(text)
    if -SAFE_INT_MAX <= number <= SAFE_INT_MAX:
        return number
    raise _RefusedError(f"integer {text} is outside the JSON safe range ±(2**53 - 1)")


_DECODER: Final = json.JSONDecoder(
    parse_float=_refuse_float, parse_int=_checked_int, parse_constant=_refuse_constant
)
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, check_circular=False
)
# The verifier parses and re-encodes every entry, so call the C scanner and encoder
# directly rather than through JSONDecoder.decode / JSONEncoder.encode.
_scan: Final = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
_escape: Final = json.encoder.encode_basestring
try:
    from _json import make_encoder as _make_c_encoder

    # Called as _encode_parts(value, 0); returns the output in pieces to join.
    _encode_parts: Callable[[object, int], Iterable[str]] = _make_c_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
except ImportError:  # pragma: no cover - CPython always has _json

    def _encode_parts(value: object, level: int) -> Iterable[str]:
        return (_ENCODER.encode(value),)


def _encode_sorted(value: object) -> str:
    return "".join(_encode_parts(value, 0))


def _loads(raw: bytes) -> tuple[str, object]:
    """The UTF-8 text of `raw` and the JSON value it holds (floats, big ints refused)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EntryError(f"bytes are not UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        value, end = _scan(text, 0)
    except _RefusedError as error:
        raise EntryError(str(error)) from None
    except StopIteration as stop:
        raise EntryError(f"bytes are not JSON (no value at character {stop.value})") from None
    except (ValueError, RecursionError) as error:
        raise EntryError(f"bytes are not JSON ({error})") from None
    if end != len(text):
        raise EntryError(f"bytes are not one JSON value (extra data at character {end})")
    return text, value


def _require_canonical(text: str, value: object) -> None:
    if text.isascii() or _NON_BMP.search(text) is None:
        again = _encode_sorted(value)
    else:
        try:
            again = canonical_json(value).decode("utf-8")
        except EntryError:
            again = ""
    _compare_canonical(text, again)


def _compare_canonical(text: str, again: str) -> None:
    if again != text:
        at = next(
            (i for i, (a, b) in enumerate(zip(again, text, strict=False)) if a != b),
            min(len(again), len(text)),
        )
        raise EntryError(
            "bytes are not canonical JSON (RFC 8785): they differ from the canonical form "
            f"at character {at}"
        )


def loads_canonical(raw: bytes) -> JsonValue:
    """Parse `raw` and check it is exactly the RFC 8785 form of what it holds."""
    text, value = _loads(raw)
    _require_canonical(text, value)
    return cast(JsonValue, value)


def parse_entry(raw: bytes) -> Entry:
    """Parse one entry's bytes: canonical JSON with every field present and typed."""
    text, value = _loads(raw)
    if type(value) is not dict:
        raise EntryError(f"an entry must be a JSON object, got {type(value).__name__}")
    # This is the verifier's hot path: the common case is one expression, and any doubt
    # goes to check_entry, which names the field at fault.
    try:
        action = value["action"]
        actor = value["actor"]
        details = value["details"]
        objects = value["objects"]
        prev = value["prev"]
        seq = value["seq"]
        time = value["time"]
        good = (
            len(value) == 7
            and type(seq) is int
            and seq >= 1
            and type(time) is str
            and _TIME_SHAPE.fullmatch(time) is not None
            and (actor is None or (type(actor) is str and actor != ""))
            and type(action) is str
            and _ACTION_SHAPE.fullmatch(action) is not None
            and type(objects) is dict
            and type(details) is dict
            and type(prev) is str
            and _HEX64.fullmatch(prev) is not None
            and "" not in objects
        )
        if good:
            for ident in objects.values():
                if type(ident) is not int and type(ident) is not str:
                    good = False
                    break
    except KeyError:
        good = False
    if not good:
        check_entry(value, deep=False)
    try:
        datetime.fromisoformat(time[:-1])
    except ValueError:
        raise EntryError(f"time {time!r} is not a real date and time") from None
    if text.isascii() or _NON_BMP.search(text) is None:
        # Keys in RFC 8785 order; action, prev and time matched patterns that need no
        # escaping, so only actor, details and objects go through the JSON encoder.
        again = (
            f'{{"action":"{action}","actor":{"null" if actor is None else _escape(actor)},'
            f'"details":{"".join(_encode_parts(details, 0))},'
            f'"objects":{"".join(_encode_parts(objects, 0))},'
            f'"prev":"{prev}","seq":{seq},"time":"{time}"}}'
        )
        _compare_canonical(text, again)
    else:
        _require_canonical(text, value)
    return cast(Entry, value)


def check_entry(entry: Mapping[str, object], *, deep: bool = True) -> Entry:
    """Check an entry's fields and types; `deep` also walks `details` and integer ranges.

    `deep=False` is for values just parsed by `loads_canonical`, which already refused
    floats and unsafe integers and can only hold JSON types.
    """
    keys = entry.keys()
    if keys != ENTRY_FIELDS:
        missing = sorted(ENTRY_FIELDS - set(keys))
        extra = sorted(set(keys) - ENTRY_FIELDS)
        raise EntryError(
            f"entry fields must be exactly {sorted(ENTRY_FIELDS)}; missing {missing}, extra {extra}"
        )
    seq = entry["seq"]
    if type(seq) is not int or seq < 1 or seq > SAFE_INT_MAX:
        raise EntryError(f"field 'seq' must be an integer from 1 to 2**53 - 1, got {seq!r}")
    time = entry["time"]
    if type(time) is not str:
        raise EntryError(f"field 'time' must be a string, got {type(time).__name__}")
    parse_time(time)
    actor = entry["actor"]
    if actor is not None and (type(actor) is not str or not actor):
        raise EntryError(f"field 'actor' must be a non-empty string or null, got {actor!r}")
    action = entry["action"]
    if type(action) is not str or _ACTION_SHAPE.fullmatch(action) is None:
        raise EntryError(
            f"field 'action' must be a dotted lower-case name like 'search.run', got {action!r}"
        )
    objects = entry["objects"]
    if type(objects) is not dict:
        raise EntryError(f"field 'objects' must be an object, got {type(objects).__name__}")
    for kind, ident in objects.items():
        if type(kind) is not str or not kind:
            raise EntryError(f"field 'objects' keys must be non-empty strings, got {kind!r}")
        if type(ident) is str:
            continue
        if type(ident) is not int:
            raise EntryError(
                f"field 'objects' values must be integers or strings, "
                f"got {type(ident).__name__} for {kind!r}"
            )
        if deep:
            _safe_int_value(ident)
    details = entry["details"]
    if type(details) is not dict:
        raise EntryError(f"field 'details' must be an object, got {type(details).__name__}")
    if deep:
        _emit(details, [], 1)
    prev = entry["prev"]
    if type(prev) is not str or _HEX64.fullmatch(prev) is None:
        raise EntryError(f"field 'prev' must be 64 lower-case hex digits, got {prev!r}")
    return cast(Entry, entry)
