"""Asking the directory about a person: is this their password, are they disabled, which
groups are they in.

- `authenticate` checks a password by binding as the person (a password is never read or
  compared by Candor). An empty password is refused before anything is sent: a simple
  bind with a DN and no password is an *unauthenticated* bind, which Active Directory
  (and slapd with `allow bind_anon_dn`) answers with success.
- `look_up` reads a person and their groups with the service account, as the workflow
  does at login and again at each request once its cache has run out.

The person is found with the service account: `(&(<user_attribute>=<name>)<user_filter>)`
under `user_base`, the name escaped by RFC 4515; their groups are the entries under
`group_base` whose `group_member_attribute` holds the person's DN (escaped the same way).
Every connection has time-outs (`timeout_seconds`), so a dead directory is a refusal
that says so, not a hang. Each call opens its connections and closes them before it
returns. No password appears in a message or a log line.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from candor.directory.errors import (
    DirectoryConfigError,
    DirectoryError,
    DirectoryRefused,
    DirectoryUnavailable,
)
from candor.directory.escaping import dn_key, escape_filter_value
from candor.directory.settings import DirectorySettings, is_loopback, read_service_password

__all__ = [
    "DirectoryConfigError",
    "DirectoryError",
    "DirectoryPerson",
    "DirectoryRefused",
    "DirectoryUnavailable",
    "authenticate",
    "dn_key",
    "look_up",
]

# LDAP result codes (RFC 4511 appendix A) that mean something here.
_SUCCESS: Final = 0
_SIZE_LIMIT_EXCEEDED: Final = 4
_INVALID_CREDENTIALS: Final = 49
_NO_SUCH_OBJECT: Final = 32
# A longer name than this is no directory's account name; refused before asking.
MAX_USERNAME_LENGTH: Final = 256
PPOLICY_LOCK: Final = "pwdAccountLockedTime"
AD_FLAGS: Final = "userAccountControl"
AD_ACCOUNT_DISABLED: Final = 0x2


@dataclass(frozen=True)
class DirectoryPerson:
    """A person as the directory describes them now.

    `username` is the value of `user_attribute` as the directory spells it (a directory
    compares names without case; this is the spelling to store); `groups` are the DNs of
    their groups as the directory spells them: compare and store DNs by `dn_key` (slapd
    answers `uid=a\\2Cb` for `uid=a\\,b`, and case does not count)."""

    username: str
    dn: str
    display_name: str
    groups: frozenset[str]
    disabled: bool


def authenticate(settings: DirectorySettings, username: str, password: str) -> DirectoryPerson:
    """The person whose password this is, with their groups; DirectoryRefused when the
    password is empty or wrong, the name unknown or the account disabled;
    DirectoryUnavailable when the directory cannot be asked."""
    if not password:
        # Before any connection: a bind with an empty password would be anonymous.
        raise DirectoryRefused("an empty password is refused", "empty_password")
    _check_username(username)
    with _service_connection(settings) as service:
        entry = _find_person(settings, service, username)
        if entry is None:
            raise DirectoryRefused("the directory refused the name or password", "unknown_user")
        if _is_disabled(settings, entry):
            raise DirectoryRefused("the directory account is disabled", "disabled")
        _bind_as_person(settings, entry["dn"], password)
        return _person(settings, service, username, entry)


def look_up(settings: DirectorySettings, username: str) -> DirectoryPerson | None:
    """The person named `username` and their groups, read with the service account; None
    when the directory has no such person."""
    if not username.strip() or len(username) > MAX_USERNAME_LENGTH:
        return None
    with _service_connection(settings) as service:
        entry = _find_person(settings, service, username)
        if entry is None:
            return None
        return _person(settings, service, username, entry)


def _check_username(username: str) -> None:
    if not username.strip() or len(username) > MAX_USERNAME_LENGTH:
        raise DirectoryRefused("the directory refused the name or password", "unknown_user")


def _server(settings: DirectorySettings) -> Server:
    if settings.tls == "none" and not is_loopback(settings.host):
        # load_directory_settings refuses this too; settings made another way are held
        # to the same rule here, where the password would leave the machine.
        raise DirectoryConfigError(
            f'{settings.path}: tls: "none" is allowed only to a loopback address, '
            f"not {settings.host}"
        )
    tls = None
    if settings.tls != "none":
        # The server's certificate must chain to ca_file (or the system's roots) and name
        # the host of the url; ldap3 checks the name itself once the handshake is done.
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
            sni=settings.host,
        )
    return Server(
        settings.host,
        port=settings.port,
        use_ssl=settings.tls == "ldaps",
        tls=tls,
        get_info=NONE,
        connect_timeout=settings.timeout_seconds,
    )


def _unavailable(settings: DirectorySettings, what: str) -> DirectoryUnavailable:
    return DirectoryUnavailable(f"directory {settings.url}: {what}")


def _open(settings: DirectorySettings, dn: str, password: str) -> tuple[Connection, bool]:
    """A connection (TLS as the settings say) after a simple bind as `dn`: (connection,
    whether the bind succeeded). The caller closes it."""
    try:
        server = _server(settings)
    except LDAPException as error:  # ldap3 checks ca_file here (it may be gone since loading)
        raise DirectoryConfigError(
            f"{settings.path}: ca_file: {settings.ca_file}: {type(error).__name__}: {error}"
        ) from None
    connection = Connection(
        server,
        user=dn,
        password=password,
        authentication=SIMPLE,
        read_only=True,
        auto_referrals=False,
        raise_exceptions=False,
        receive_timeout=settings.timeout_seconds,
    )
    try:
        connection.open()
        if settings.tls == "starttls":
            connection.start_tls()
        bound = bool(connection.bind())
    except (LDAPException, OSError) as error:  # OSError: a socket error ldap3 let through
        _close(connection)
        # ldap3's messages name the socket or TLS failure, never the password.
        raise _unavailable(settings, f"{type(error).__name__}: {error}") from None
    if not bound and connection.result.get("result") != _INVALID_CREDENTIALS:
        description = connection.result.get("description")
        _close(connection)
        raise _unavailable(settings, f"bind refused ({description})")
    return connection, bound


def _close(connection: Connection) -> None:
    # Already gone: nothing to release.
    with contextlib.suppress(LDAPException, OSError):
        connection.unbind()


@contextmanager
def _service_connection(settings: DirectorySettings) -> Iterator[Connection]:
    connection, bound = _open(settings, settings.service_dn, read_service_password(settings))
    try:
        if not bound:
            raise _unavailable(
                settings,
                f"the service account {settings.service_dn} was refused "
                f"(check service_dn and service_password_file in {settings.path})",
            )
        yield connection
    finally:
        _close(connection)


def _bind_as_person(settings: DirectorySettings, dn: str, password: str) -> None:
    connection, bound = _open(settings, dn, password)
    _close(connection)
    if not bound:
        raise DirectoryRefused("the directory refused the name or password", "wrong_password")


def _search(
    settings: DirectorySettings,
    connection: Connection,
    base_key: str,
    search_filter: str,
    attributes: list[str],
    size_limit: int = 0,
) -> list[dict[str, Any]]:
    base = getattr(settings, base_key)
    try:
        connection.search(
            base,
            search_filter,
            search_scope=SUBTREE,
            attributes=attributes,
            size_limit=size_limit,
            time_limit=math.ceil(settings.timeout_seconds),
        )
    except (LDAPException, OSError) as error:
        raise _unavailable(settings, f"{type(error).__name__}: {error}") from None
    code = connection.result.get("result")
    if code == _NO_SUCH_OBJECT:
        raise _unavailable(settings, f"{base_key} {base} does not exist (see {settings.path})")
    if code not in (_SUCCESS, _SIZE_LIMIT_EXCEEDED):
        raise _unavailable(settings, f"search refused ({connection.result.get('description')})")
    entries = [item for item in connection.response or [] if item.get("type") == "searchResEntry"]
    if code == _SIZE_LIMIT_EXCEEDED and size_limit == 0:
        raise _unavailable(settings, f"the search under {base} returned too many entries")
    return entries


def _find_person(
    settings: DirectorySettings, connection: Connection, username: str
) -> dict[str, Any] | None:
    search_filter = (
        f"(&({settings.user_attribute}={escape_filter_value(username)})"
        f"{settings.user_filter or ''})"
    )
    wanted = [settings.user_attribute, "cn", "displayName"]
    if settings.disabled == "ppolicy":
        wanted.append(PPOLICY_LOCK)  # operational: returned only when asked for
    elif settings.disabled == "active_directory":
        wanted.append(AD_FLAGS)
    entries = _search(settings, connection, "user_base", search_filter, wanted, 2)
    if len(entries) > 1:
        raise _unavailable(
            settings,
            f"more than one entry under {settings.user_base} has this {settings.user_attribute}"
            f" (make user_filter in {settings.path} pick one)",
        )
    return entries[0] if entries else None


def _values(entry: dict[str, Any], name: str) -> list[Any]:
    """An attribute's values, whatever case the server spelled its name in."""
    attributes: dict[str, Any] = entry.get("attributes", {})
    for key, value in attributes.items():
        if key.lower() == name.lower():
            return list(value) if isinstance(value, list | tuple) else [value]
    return []


def _is_disabled(settings: DirectorySettings, entry: dict[str, Any]) -> bool:
    if settings.disabled == "ppolicy":
        # Any lock counts, also the temporary one after too many wrong passwords.
        return bool(_values(entry, PPOLICY_LOCK))
    if settings.disabled == "active_directory":
        for value in _values(entry, AD_FLAGS):
            try:
                if int(value) & AD_ACCOUNT_DISABLED:
                    return True
            except (TypeError, ValueError):
                return True  # unreadable flags: not safe to call the account enabled
        return False
    return False


def _person(
    settings: DirectorySettings, connection: Connection, username: str, entry: dict[str, Any]
) -> DirectoryPerson:
    dn: str = entry["dn"]
    spelled = [str(value) for value in _values(entry, settings.user_attribute)]
    # The directory matched the name by its own rules (case, spaces); store its spelling.
    canonical = next(
        (value for value in spelled if value.casefold() == username.strip().casefold()),
        spelled[0] if spelled else username,
    )
    display = next(
        (str(value) for name in ("displayName", "cn") for value in _values(entry, name) if value),
        canonical,
    )
    group_filter = (
        f"(&({settings.group_member_attribute}={escape_filter_value(dn)})"
        f"{settings.group_filter or ''})"
    )
    groups = _search(settings, connection, "group_base", group_filter, ["1.1"])
    return DirectoryPerson(
        username=canonical,
        dn=dn,
        display_name=display,
        groups=frozenset(str(group["dn"]) for group in groups),
        disabled=_is_disabled(settings, entry),
    )
