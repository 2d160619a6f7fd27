"""Escaping of values put into LDAP filters (RFC 4515) and DNs (RFC 4514).

Every value that comes from outside (a username typed at login, a DN a server returned)
passes through one of these before it is put into a filter or a DN, so a name like
`*)(uid=*` or `x,cn=admin` is a value and never a piece of syntax. Written out here
rather than taken from ldap3: its `escape_rdn` turns NUL into a backslash and a raw NUL,
which RFC 4514 does not allow.

One DN has many spellings (`uid=a\\,b` and `uid=a\\2Cb`, `CN=Analysts` and `cn=analysts`):
slapd answers with its own. `dn_key` gives the one spelling to compare and store by.
"""

from __future__ import annotations

from typing import Final

__all__ = ["dn_key", "escape_dn_value", "escape_filter_value", "unescape_dn_value"]

# RFC 4515 section 3: these four, and NUL, are written as a backslash and two hex digits.
_FILTER_SPECIAL: Final = frozenset("*()\\\x00")
# RFC 4514 section 2.4: escaped anywhere in an attribute value.
_DN_SPECIAL: Final = frozenset('"+,;<>\\=')


def escape_filter_value(value: str) -> str:
    """`value` as an assertion value in a search filter (RFC 4515). White space at either
    end is escaped too: ldap3 strips it from a filter's values otherwise, and the server
    would be asked about another name than the one given."""
    start = len(value) - len(value.lstrip())
    end = len(value.rstrip())
    return "".join(
        "".join(f"\\{byte:02x}" for byte in char.encode("utf-8"))
        if char in _FILTER_SPECIAL or not start <= index < end
        else char
        for index, char in enumerate(value)
    )


def escape_dn_value(value: str) -> str:
    """`value` as the value of one RDN (`uid=<value>,ou=people,...`), RFC 4514."""
    if not value:
        raise ValueError("an empty value cannot be put into a DN")
    escaped = []
    for index, char in enumerate(value):
        if char == "\x00":
            escaped.append("\\00")
        elif (
            char in _DN_SPECIAL
            or (char == " " and index in (0, len(value) - 1))
            or (char == "#" and index == 0)
        ):
            escaped.append("\\" + char)
        else:
            escaped.append(char)
    return "".join(escaped)


def unescape_dn_value(value: str) -> str:
    """The attribute value an escaped RDN value stands for (`a\\2Cb` and `a\\,b` are `a,b`)."""
    pieces: list[str] = []
    pending = bytearray()  # hex pairs, decoded together: one character may be several bytes
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            pair = value[index + 1 : index + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                pending.append(int(pair, 16))
                index += 3
                continue
            char = value[index + 1]
            index += 1
        if pending:
            pieces.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
        pieces.append(char)
        index += 1
    if pending:
        pieces.append(pending.decode("utf-8", errors="replace"))
    return "".join(pieces)


def _split_dn(dn: str) -> list[tuple[str, str, str]]:
    """(type, escaped value, separator after it) for each attribute value of `dn`; split
    by hand because ldap3's parse_dn refuses a `#` inside a value, which slapd writes."""
    pieces: list[tuple[str, str]] = []
    current: list[str] = []
    index = 0
    while index < len(dn):
        char = dn[index]
        if char == "\\" and index + 1 < len(dn):
            current.append(dn[index : index + 2])
            index += 2
            continue
        if char in ",+":
            pieces.append(("".join(current), char))
            current = []
        else:
            current.append(char)
        index += 1
    pieces.append(("".join(current), ""))
    parts = []
    for text, separator in pieces:
        kind, equals, value = text.partition("=")
        value = value.lstrip(" ")
        while value.endswith(" ") and not value.endswith("\\ "):
            value = value[:-1]
        if not equals or not kind.strip() or not value:
            raise ValueError(f"{dn!r} is not a DN (at {text.strip()!r})")
        parts.append((kind.strip(), value, separator))
    return parts


def dn_key(dn: str) -> str:
    """`dn` in one spelling: attribute types and values in lower case, values escaped as
    escape_dn_value does, no spaces around separators. Two DNs of one entry have one key
    (the usual naming attributes, cn, uid, ou, dc, compare without case). ValueError when
    `dn` is not a DN."""
    return "".join(
        f"{kind.lower()}={escape_dn_value(unescape_dn_value(value).casefold())}{separator}"
        for kind, value, separator in _split_dn(dn)
    )
