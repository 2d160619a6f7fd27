"""Audit entries: RFC 8785 bytes, validation of every field, strict parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from candor.audit import (
    EntryError,
    build_entry,
    canonical_entry,
    canonical_json,
    format_time,
    leaf_hash,
    parse_entry,
    parse_time,
)
from candor.audit.canonical import SAFE_INT_MAX, loads_canonical

T = datetime(2026, 11, 27, 8, 49, 19, 123456, tzinfo=UTC)
ZEROS = "0" * 64

# The worked example of docs/audit-format.md: these bytes and this hash are printed there.
EXAMPLE_BYTES = (
    b'{"action":"search.run","actor":"alice","details":{"candidates":10,'
    b'"policy_sha256":"4d0c0d5a2c1f6d0f1ae0c9b1d9e8e7b2a0c3f5e6d7c8b9a0f1e2d3c4b5a69788",'
    b'"purpose":"investigation"},"objects":{"case":"C-2026-00042","search":12},'
    b'"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"seq":1,"time":"2026-11-27T08:49:19.123456Z"}'
)
EXAMPLE_LEAF_HASH = "eba1a9feafd3a7671cb102d6fb3d980d8bf389f141b6646e3cdf72ec90dddc1d"


def example_entry() -> bytes:
    return build_entry(
        seq=1,
        time=T,
        actor="alice",
        action="search.run",
        objects={"search": 12, "case": "C-2026-00042"},
        details={
            "purpose": "investigation",
            "candidates": 10,
            "policy_sha256": "4d0c0d5a2c1f6d0f1ae0c9b1d9e8e7b2a0c3f5e6d7c8b9a0f1e2d3c4b5a69788",
        },
        prev_hex=ZEROS,
    )


def fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 3,
        "time": T,
        "actor": "alice",
        "action": "search.run",
        "objects": {"search": 12},
        "details": {"purpose": "investigation"},
        "prev_hex": "ab" * 32,
    }
    base.update(changes)
    return base


def test_the_worked_example_of_the_format_document() -> None:
    raw = example_entry()
    assert raw == EXAMPLE_BYTES
    assert leaf_hash(raw).hex() == EXAMPLE_LEAF_HASH


def test_build_entry_writes_rfc8785_bytes_and_parse_entry_reads_them() -> None:
    raw = build_entry(**fields())
    entry = parse_entry(raw)
    assert entry == {
        "seq": 3,
        "time": "2026-11-27T08:49:19.123456Z",
        "actor": "alice",
        "action": "search.run",
        "objects": {"search": 12},
        "details": {"purpose": "investigation"},
        "prev": "ab" * 32,
    }
    assert raw == rfc8785.dumps(dict(entry))
    assert canonical_entry(entry) == raw


def test_time_is_rfc3339_utc_with_microseconds() -> None:
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    assert parse_time("2026-01-02T03:04:05.000007Z") == datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    # An aware zero-offset zone other than datetime.UTC is still UTC.
    assert format_time(datetime(2026, 1, 2, tzinfo=timezone(timedelta(0)))).endswith("Z")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seq": 0}, "'seq' must be an integer from 1"),
        ({"seq": True}, "'seq' must be an integer"),
        ({"seq": 2**53}, "'seq' must be an integer from 1 to 2\\*\\*53 - 1"),
        ({"time": datetime(2026, 1, 1)}, "naive"),
        ({"time": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))}, "must be in UTC"),
        ({"time": "2026-01-01T00:00:00Z"}, "must be a datetime"),
        ({"actor": ""}, "'actor' must be a non-empty string or null"),
        ({"actor": 7}, "'actor' must be a non-empty string or null"),
        ({"action": "search"}, "dotted lower-case"),
        ({"action": "Search.Run"}, "dotted lower-case"),
        ({"action": "search..run"}, "dotted lower-case"),
        ({"action": "search.run "}, "dotted lower-case"),
        ({"objects": {"search": 1.0}}, "values must be integers or strings"),
        ({"objects": {"search": True}}, "values must be integers or strings"),
        ({"objects": {"search": [1]}}, "values must be integers or strings"),
        ({"objects": {"": 1}}, "keys must be non-empty strings"),
        ({"objects": {"search": 2**60}}, "outside the JSON safe range"),
        ({"objects": [("search", 1)]}, "'objects' must be a mapping"),
        ({"details": {"score": 0.93}}, "floats are refused"),
        ({"details": {"scores": [{"value": 0.5}]}}, "floats are refused"),
        ({"details": {"n": -(2**53)}}, "outside the JSON safe range"),
        ({"details": {1: "x"}}, "object keys must be strings"),
        ({"details": {"when": T}}, "datetime is not a JSON value"),
        ({"details": {"text": "\ud800"}}, "canonical JSON"),
        ({"details": "x"}, "'details' must be a mapping"),
        ({"prev_hex": "AB" * 32}, "64 lower-case hex"),
        ({"prev_hex": "ab" * 31}, "64 lower-case hex"),
    ],
)
def test_build_entry_refuses_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EntryError, match=message):
        build_entry(**fields(**changes))


def test_details_nested_too_deep_are_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(EntryError, match="nested deeper than 32"):
        build_entry(**fields(details=deep))


def test_canonical_entry_wants_exactly_the_seven_fields() -> None:
    entry = dict(parse_entry(build_entry(**fields())))
    with pytest.raises(EntryError, match="missing \\['prev'\\]"):
        canonical_entry({k: v for k, v in entry.items() if k != "prev"})
    with pytest.raises(EntryError, match="extra \\['extra'\\]"):
        canonical_entry({**entry, "extra": 1})
    with pytest.raises(EntryError, match="not a real date"):
        canonical_entry({**entry, "time": "2026-02-30T00:00:00.000000Z"})


# JSON values of the kinds Candor writes: no floats, integers in the safe range.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-SAFE_INT_MAX, max_value=SAFE_INT_MAX)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_stdlib_canonicaliser_equals_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_canonical_check_accepts_exactly_rfc8785_text(value: dict[str, Any]) -> None:
    canonical = rfc8785.dumps(value)
    assert loads_canonical(canonical) == value
    for variant in (
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode(),
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(),
    ):
        if variant == canonical:
            assert loads_canonical(variant) == value
        else:
            with pytest.raises(EntryError, match="not canonical"):
                loads_canonical(variant)


@settings(max_examples=150, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=SAFE_INT_MAX),
    actor=st.none() | st.text(min_size=1, max_size=12),
    action=st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){1,3}", fullmatch=True),
    objects=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.integers(-SAFE_INT_MAX, SAFE_INT_MAX) | st.text(max_size=12),
        max_size=4,
    ),
    details=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    moment=st.datetimes(timezones=st.just(UTC)),
)
def test_every_valid_entry_round_trips(
    seq: int,
    actor: str | None,
    action: str,
    objects: dict[str, int | str],
    details: dict[str, Any],
    moment: datetime,
) -> None:
    raw = build_entry(
        seq=seq,
        time=moment,
        actor=actor,
        action=action,
        objects=objects,
        details=details,
        prev_hex=ZEROS,
    )
    entry = parse_entry(raw)
    assert entry["details"] == details
    assert entry["objects"] == objects
    assert parse_time(entry["time"]) == moment
    assert canonical_entry(entry) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "not UTF-8"),
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b'{"a":1} ', "extra data"),
        (b' {"a":1}', "not JSON"),
        (b'{"a":1.5}', "floats are refused"),
        (b'{"a":1e3}', "floats are refused"),
        (b'{"a":NaN}', "NaN is not a JSON value"),
        (b'{"a":9007199254740992}', "outside the JSON safe range"),
        (b'{"a":-0}', "not canonical"),
        (b'{"b":1,"a":2}', "not canonical"),
        (b'{"a":1,"a":1}', "not canonical"),
        (b'{"a": 1}', "not canonical"),
        (b'{"a":"\\u0041"}', "not canonical"),
        (b'{"a":"\\/"}', "not canonical"),
        (b'{"a":"\\u001F"}', "not canonical"),
        (b'{"a":"\\ud83d\\ude00"}', "not canonical"),
        (b'{"a":"\\ud800"}', "not canonical"),
        # U+FF5E sorts before U+1F600 by code point but after it by UTF-16 code unit.
        ('{"\uff5e":2,"\U0001f600":1}'.encode(), "not canonical"),
    ],
)
def test_loads_canonical_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(EntryError, match=message):
        loads_canonical(raw)


def test_parse_entry_refuses_a_well_formed_entry_in_another_form() -> None:
    raw = build_entry(**fields(details={"note": "a/b", "n": 1}))
    entry = parse_entry(raw)
    for variant in (
        raw.replace(b'"seq":3', b'"seq": 3'),
        raw.replace(b"a/b", b"a\\/b"),
        raw.replace(b'"n":1', b'"n":-0,"n":1'),
        json.dumps(dict(reversed(entry.items())), separators=(",", ":")).encode(),
        raw + b"\n",
    ):
        with pytest.raises(EntryError, match=r"not canonical|extra data"):
            parse_entry(variant)
    with pytest.raises(EntryError, match="must be a JSON object"):
        parse_entry(b"[]")


def test_keys_sort_by_utf16_code_units() -> None:
    value = {"\uff5e": 2, "\U0001f600": 1}
    raw = rfc8785.dumps(value)
    assert raw == '{"\U0001f600":1,"\uff5e":2}'.encode()
    assert loads_canonical(raw) == value


def test_parse_entry_names_the_bad_field() -> None:
    good = dict(parse_entry(build_entry(**fields())))
    for key, bad, message in [
        ("seq", 0, "'seq'"),
        ("time", "2026-11-27 08:49:19Z", "time must look like"),
        ("time", "2026-13-27T08:49:19.123456Z", "not a real date"),
        ("actor", "", "'actor'"),
        ("action", "x", "'action'"),
        ("objects", {"a": None}, "'objects'"),
        ("details", [], "'details'"),
        ("prev", "0" * 63, "'prev'"),
    ]:
        raw = rfc8785.dumps({**good, key: bad})
        with pytest.raises(EntryError, match=message):
            parse_entry(raw)
    with pytest.raises(EntryError, match="missing \\['actor'\\]"):
        parse_entry(rfc8785.dumps({k: v for k, v in good.items() if k != "actor"}))


def test_non_ascii_entries_take_the_exact_path() -> None:
    raw = build_entry(**fields(actor="zoë", details={"note": "Łódź \U0001f600", "\uff5e": 1}))
    assert parse_entry(raw)["actor"] == "zoë"
