"""RFC 4515 filter values, RFC 4514 DN values, and one spelling of a DN."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.operation.search import MATCH_EQUAL, parse_filter

from candor.directory.escaping import (
    dn_key,
    escape_dn_value,
    escape_filter_value,
    unescape_dn_value,
)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("*", "\\2a"),
        (")(uid=*", "\\29\\28uid=\\2a"),
        ("\\", "\\5c"),
        ("a\x00b", "a\\00b"),
        (",cn=admin", ",cn=admin"),  # nothing special in a filter
        ("José", "José"),
        (" a b\t", "\\20a b\\09"),  # ldap3 would strip the ends
    ],
)
def test_filter_values(value: str, escaped: str) -> None:
    assert escape_filter_value(value) == escaped


@given(st.text())
def test_an_escaped_filter_value_is_one_equality_assertion(value: str) -> None:
    root = parse_filter(f"(uid={escape_filter_value(value)})", None, False, False, None, False)
    [node] = root.elements
    assert node.tag == MATCH_EQUAL and not node.elements
    assert node.assertion["attr"] == "uid"
    # ldap3 keeps the escapes until it encodes the request; undone, they give the value.
    raw = re.sub(
        rb"\\([0-9a-f]{2})", lambda hexpair: bytes([int(hexpair[1], 16)]), node.assertion["value"]
    )
    assert raw == value.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        (",cn=admin", "\\,cn\\=admin"),
        ('a+b"c<d>e;f\\g', 'a\\+b\\"c\\<d\\>e\\;f\\\\g'),
        ("a\x00b", "a\\00b"),
        ("#lead", "\\#lead"),
        ("mid#dle", "mid#dle"),
        (" both ", "\\ both\\ "),
        ("*", "*"),  # nothing special in a DN
    ],
)
def test_dn_values(value: str, escaped: str) -> None:
    assert escape_dn_value(value) == escaped


def test_an_empty_dn_value_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        escape_dn_value("")


@given(st.text(min_size=1))
def test_a_dn_value_survives_the_round_trip(value: str) -> None:
    escaped = escape_dn_value(value)
    assert unescape_dn_value(escaped) == value
    assert dn_key(f"uid={escaped},dc=test") == f"uid={escape_dn_value(value.casefold())},dc=test"


def test_two_spellings_of_one_dn_have_one_key() -> None:
    assert dn_key("uid=a\\2Cb\\3Dc, OU=People,dc=candor,dc=test") == dn_key(
        "UID=A\\,B\\=C,ou=people,DC=candor,DC=test"
    )
    assert dn_key("cn=caf\\C3\\A9,dc=x") == dn_key("cn=Café,dc=x")
    assert dn_key("cn=team (#1)*,dc=x") == "cn=team (#1)*,dc=x"
    assert dn_key("cn=a,dc=x") != dn_key("cn=a\\,dc\\=x")


@pytest.mark.parametrize("text", ["x", "cn=", "=a", "dc=a,,dc=b", ""])
def test_not_a_dn(text: str) -> None:
    with pytest.raises(ValueError, match="not a DN"):
        dn_key(text)
