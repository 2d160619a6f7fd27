"""What can go wrong when Candor asks the directory. No message ever holds a password."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DirectoryConfigError",
    "DirectoryError",
    "DirectoryRefused",
    "DirectoryUnavailable",
    "RefusalReason",
]

# Why the directory said no, for the audit log; the person at the login form is told
# only that the name or password is wrong (no hint that a name exists or is disabled).
RefusalReason = Literal["empty_password", "unknown_user", "wrong_password", "disabled"]


class DirectoryError(Exception):
    """Base of the directory client's errors."""


class DirectoryUnavailable(DirectoryError):  # noqa: N818 (the name the workflow's contract uses)
    """The directory could not be asked: unreachable, TLS failed, the service account was
    refused, or the settings are wrong. Nothing is known about the person."""


class DirectoryConfigError(DirectoryUnavailable, ValueError):
    """directory.toml (or the service password file) is wrong; the message names the file
    and the key."""


class DirectoryRefused(DirectoryError):  # noqa: N818 (the name the workflow's contract uses)
    """The directory answered, and the answer is no: `reason` says which no."""

    def __init__(self, message: str, reason: RefusalReason) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason
