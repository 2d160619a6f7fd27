"""Errors raised by candor.audit. Each message is one sentence; where a value was compared,
it says what was expected and what was found."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error candor.audit raises on purpose."""


class EntryError(AuditError, ValueError):
    """An entry's fields are missing, mistyped, or its bytes are not canonical JSON."""


class ChainError(AuditError):
    """Entries do not form an unbroken, checkpointed hash chain; `seq` is the first entry
    in doubt (None when no entry can be named)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class ProofError(AuditError):
    """An inclusion or consistency proof does not verify."""


class SignatureError(AuditError):
    """A checkpoint note or verifier key is malformed, or its signature does not verify."""


class KeyFileError(AuditError):
    """A signing key file is missing, unreadable, garbled or too widely readable."""


class WitnessError(AuditError):
    """A witness (the log's latest signed checkpoint, kept outside the database) is
    unreadable, malformed, or does not fit its own signed checkpoint."""
