"""What a server keeps between requests, held in the database so that every worker
process and every node of one service sees the same: failed guesses (logins and the
first-run setup token), the secrets every node signs forms with, and probe photos checked
on the search page but not yet sent. Session activity (for idle logouts) is the
`last_seen_at` column of `auth_sessions`.

Migration 0008 creates these tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from candor.store.models import NEVER_REUSED_IDS, Base, UTCDateTime, _hex64, _sql_list

LOGIN_GUESS: Final = "login"
SETUP_TOKEN_GUESS: Final = "setup_token"  # noqa: S105 (a kind of guess, not a secret)
GUESS_KINDS: Final = (LOGIN_GUESS, SETUP_TOKEN_GUESS)


class FailedGuess(Base):
    """One failed login (for a username) or setup-token guess, counted by every node."""

    __tablename__ = "failed_guesses"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_sql_list(GUESS_KINDS)})", name="kind_known"),
        Index("ix_failed_guesses_kind_subject_failed_at", "kind", "subject", "failed_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The username as typed, lower-cased; empty for setup-token guesses.
    subject: Mapped[str] = mapped_column(String(200))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServerSecret(Base):
    """A named secret shared by the nodes of one service (the CSRF key, the setup token's
    digest); never a password or a session token."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StagedProbe(Base):
    """A probe photo checked on the search page and waiting to be sent with its request."""

    __tablename__ = "staged_probes"
    __table_args__ = (
        CheckConstraint(_hex64("key_sha256"), name="key_sha256_hex"),
        CheckConstraint(_hex64("owner_sha256"), name="owner_sha256_hex"),
    )

    # Both the key the page holds and the owning session token are kept as sha256 only.
    key_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
