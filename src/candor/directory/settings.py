"""The directory settings of a workspace: `<workspace home>/directory.toml`.

One flat TOML table; docs/directory.md describes each key with OpenLDAP and Active
Directory examples. Every mistake is one line naming the file and the key. The service
account's password is not in this file (the workspace is backed up and copied around):
it lives in a file outside the workspace that only its owner (and group) may read, read
again at each use so it can be rotated without a restart.
"""

from __future__ import annotations

import ipaddress
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import parse_filter

from candor.directory.errors import DirectoryConfigError
from candor.directory.escaping import dn_key

__all__ = [
    "DISABLED_CONVENTIONS",
    "SETTINGS_NAME",
    "TLS_MODES",
    "DirectoryConfigError",
    "DirectorySettings",
    "DisabledConvention",
    "TlsMode",
    "is_loopback",
    "load_directory_settings",
    "read_service_password",
]

SETTINGS_NAME: Final = "directory.toml"
TlsMode = Literal["ldaps", "starttls", "none"]
TLS_MODES: Final[tuple[TlsMode, ...]] = ("ldaps", "starttls", "none")
# How the directory marks an account that may not log in:
#   ppolicy: OpenLDAP's password policy lock, the operational attribute pwdAccountLockedTime
#     (present = locked; slapd's ppolicy overlay refuses the bind as well);
#   active_directory: bit 2 (ACCOUNTDISABLE) of userAccountControl;
#   none: the directory has no such mark (removing the person is then the only way).
DisabledConvention = Literal["ppolicy", "active_directory", "none"]
DISABLED_CONVENTIONS: Final[tuple[DisabledConvention, ...]] = (
    "ppolicy",
    "active_directory",
    "none",
)
DEFAULT_CACHE_SECONDS: Final = 60
DEFAULT_TIMEOUT_SECONDS: Final = 5
MAX_TIMEOUT_SECONDS: Final = 60
DEFAULT_PORTS: Final = {"ldap": 389, "ldaps": 636}
# An attribute description, optionally with an extensible-match rule, so that Active
# Directory's nested groups (member:1.2.840.113556.1.4.1941:) can be asked for.
_ATTRIBUTE: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_MEMBER_ATTRIBUTE: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*(:[0-9]+(\.[0-9]+)*:)?")
_KEYS: Final = frozenset(
    {
        "url",
        "tls",
        "ca_file",
        "user_base",
        "user_attribute",
        "user_filter",
        "group_base",
        "group_member_attribute",
        "group_filter",
        "service_dn",
        "service_password_file",
        "disabled",
        "cache_seconds",
        "timeout_seconds",
    }
)


@dataclass(frozen=True)
class DirectorySettings:
    """Where the directory is and how people and groups are found in it."""

    path: Path  # the settings file, for messages
    workspace: Path  # the workspace home the password file must stay out of
    url: str
    host: str
    port: int
    tls: TlsMode
    ca_file: Path | None
    user_base: str
    user_attribute: str
    user_filter: str | None
    group_base: str
    group_member_attribute: str
    group_filter: str | None
    service_dn: str
    service_password_file: Path
    disabled: DisabledConvention
    cache_seconds: int
    timeout_seconds: int


def is_loopback(host: str) -> bool:
    """True for localhost and loopback address literals. A name is not resolved: a name
    that resolves to 127.0.0.1 today may not tomorrow, so only these count."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Reader:
    """Takes keys out of the parsed table, each mistake one line naming file and key."""

    def __init__(self, path: Path, table: dict[str, object]) -> None:
        self.path = path
        self.table = table

    def error(self, key: str, what: str) -> DirectoryConfigError:
        return DirectoryConfigError(f"{self.path}: {key}: {what}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if key not in self.table:
            if required:
                raise self.error(key, "missing (docs/directory.md lists the keys)")
            return default
        value = self.table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "must be a non-empty string")
        if any(ord(char) < 0x20 for char in value):
            raise self.error(key, "must not hold control characters")
        return value.strip()

    def required(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def dn(self, key: str) -> str:
        value = self.required(key)
        try:
            dn_key(value)
        except ValueError:
            raise self.error(
                key, f"{value!r} is not a DN (like ou=people,dc=example,dc=org)"
            ) from None
        return value

    def search_filter(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            if not (value.startswith("(") and value.endswith(")")):
                raise ValueError("not in parentheses")
            parse_filter(value, None, False, False, None, False)
        except (LDAPException, ValueError) as error:
            raise self.error(key, f"{value!r} is not an LDAP filter ({error})") from None
        return value

    def attribute(self, key: str, default: str, pattern: re.Pattern[str]) -> str:
        value = self.text(key, default)
        assert value is not None
        if not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not an attribute name")
        return value

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be a whole number of seconds")
        if not low <= value <= high:
            raise self.error(key, f"must be between {low} and {high}, not {value}")
        return value


def load_directory_settings(path: Path, *, workspace: Path | None = None) -> DirectorySettings:
    """Read and check `path` (normally `<workspace home>/directory.toml`; `workspace`
    defaults to the file's folder). Checks the service password file too, without keeping
    the password. Raises DirectoryConfigError naming the file and the key."""
    workspace = workspace if workspace is not None else path.parent
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DirectoryConfigError(
            f"{path}: no such file (directory sign-on is not set up)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DirectoryConfigError(f"{path}: cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise DirectoryConfigError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise DirectoryConfigError(
            f"{path}: {unknown[0]}: not a directory setting (docs/directory.md lists the keys)"
        )
    read = _Reader(path, table)

    url = read.required("url")
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise read.error("url", f"{url!r} must start with ldaps:// or ldap://")
    try:
        host = parts.hostname
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as error:
        raise read.error("url", f"{url!r}: {error}") from None
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise read.error("url", f"{url!r} must be scheme://host[:port] and nothing more")

    default_tls: TlsMode = "ldaps" if parts.scheme == "ldaps" else "starttls"
    tls_text = read.text("tls", default_tls)
    if tls_text not in TLS_MODES:
        raise read.error("tls", f"{tls_text!r} must be one of {', '.join(TLS_MODES)}")
    tls: TlsMode = tls_text
    if (tls == "ldaps") != (parts.scheme == "ldaps"):
        raise read.error(
            "tls",
            f'"{tls}" does not go with {parts.scheme}:// (ldaps:// is "ldaps"; '
            'ldap:// is "starttls" or "none")',
        )
    if tls == "none" and not is_loopback(host):
        raise read.error(
            "tls",
            f'"none" is allowed only to a loopback address (127.0.0.1, ::1, localhost), '
            f'not {host}: passwords would cross the network in clear; use "ldaps" or "starttls"',
        )

    ca_text = read.text("ca_file")
    ca_file = Path(ca_text) if ca_text is not None else None
    if ca_file is not None and not ca_file.is_file():
        raise read.error("ca_file", f"{ca_file} is not a file")

    disabled_text = read.required("disabled")
    if disabled_text not in DISABLED_CONVENTIONS:
        raise read.error(
            "disabled", f"{disabled_text!r} must be one of {', '.join(DISABLED_CONVENTIONS)}"
        )
    disabled: DisabledConvention = disabled_text

    cache_seconds = read.whole("cache_seconds", DEFAULT_CACHE_SECONDS, 0, 3600)
    # Whole seconds: ldap3 sets the socket's receive time-out from an integer.
    timeout_seconds = read.whole("timeout_seconds", DEFAULT_TIMEOUT_SECONDS, 1, MAX_TIMEOUT_SECONDS)

    settings = DirectorySettings(
        path=path,
        workspace=workspace,
        url=url,
        host=host,
        port=port,
        tls=tls,
        ca_file=ca_file,
        user_base=read.dn("user_base"),
        user_attribute=read.attribute("user_attribute", "uid", _ATTRIBUTE),
        user_filter=read.search_filter("user_filter"),
        group_base=read.dn("group_base"),
        group_member_attribute=read.attribute(
            "group_member_attribute", "member", _MEMBER_ATTRIBUTE
        ),
        group_filter=read.search_filter("group_filter"),
        service_dn=read.dn("service_dn"),
        service_password_file=Path(read.required("service_password_file")),
        disabled=disabled,
        cache_seconds=cache_seconds,
        timeout_seconds=timeout_seconds,
    )
    read_service_password(settings)
    return settings


def read_service_password(settings: DirectorySettings) -> str:
    """The service account's password, from its file (checked at each read: outside the
    workspace, a regular file, not readable by others, not empty)."""
    path = settings.service_password_file

    def refuse(what: str) -> DirectoryConfigError:
        return DirectoryConfigError(f"{settings.path}: service_password_file: {path} {what}")

    if not path.is_absolute():
        raise refuse("must be an absolute path (a file outside the workspace)")
    resolved = path.resolve()
    if resolved.is_relative_to(settings.workspace.resolve()):
        raise refuse(
            f"is inside the workspace {settings.workspace}: keep it outside "
            "(backups and copies of the workspace must not carry it)"
        )
    try:
        status = resolved.stat()
        if not stat.S_ISREG(status.st_mode):
            raise refuse("is not a regular file")
        if status.st_mode & (stat.S_IROTH | stat.S_IWOTH):
            raise refuse(
                f"may be read or written by anyone (mode {stat.S_IMODE(status.st_mode):04o}); "
                f"chmod 600 {path}"
            )
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise refuse("does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise refuse(f"cannot be read ({type(error).__name__})") from None
    # One line; the newline an editor adds is not part of the password.
    password = text.removesuffix("\n").removesuffix("\r")
    if not password or "\n" in password:
        raise refuse("must hold the password on one line")
    return password
