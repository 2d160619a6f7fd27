"""What a server keeps between requests, held in the database so that every worker
process and every node of one service sees the same: failed guesses (logins and the
first-run setup token), the secrets every node signs forms with, and probe photos checked
on the search page but not yet sent. Session activity (for idle logouts) is the
`last_seen_at` column of `auth_sessions`.

Migration 0008 creates these tables. The repository functions below take a Session,
flush, and leave committing to the caller (workflow).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import (
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.store.governance import AuthSession
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
    """A probe photo checked on the search page and waiting to be sent with its request.

    `data` is the photo sealed under the data key of the probe `probe_sha256` (the sha256
    of the photo) for the context "staged:<key_sha256>": destroying that probe key shreds
    every copy of the row's bytes, in free pages and WAL included.
    """

    __tablename__ = "staged_probes"
    __table_args__ = (
        CheckConstraint(_hex64("key_sha256"), name="key_sha256_hex"),
        CheckConstraint(_hex64("owner_sha256"), name="owner_sha256_hex"),
        CheckConstraint(_hex64("probe_sha256"), name="probe_sha256_hex"),
    )

    # Both the key the page holds and the owning session token are kept as sha256 only.
    key_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary())
    probe_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# Failed guesses ---------------------------------------------------------------------------


def add_failed_guess(session: Session, kind: str, subject: str, at: datetime) -> None:
    """Record one failed guess of `kind` (a login's username, or "" for the setup token)."""
    session.add(FailedGuess(kind=kind, subject=subject, failed_at=at))
    session.flush()


def failed_guess_times(
    session: Session, kind: str, subject: str, since: datetime
) -> list[datetime]:
    """When the guesses of `kind` at `subject` failed after `since`, oldest first."""
    return list(
        session.scalars(
            select(FailedGuess.failed_at)
            .where(
                FailedGuess.kind == kind,
                FailedGuess.subject == subject,
                FailedGuess.failed_at > since,
            )
            .order_by(FailedGuess.failed_at)
        )
    )


def delete_failed_guesses(session: Session, kind: str, subject: str) -> int:
    """Forget the failed guesses at one subject (a login succeeded); how many there were."""
    result = session.execute(
        delete(FailedGuess).where(FailedGuess.kind == kind, FailedGuess.subject == subject)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_failed_guesses_before(session: Session, before: datetime) -> int:
    """Drop guesses too old to count towards any lock-out; how many were dropped."""
    result = session.execute(delete(FailedGuess).where(FailedGuess.failed_at <= before))
    return int(result.rowcount)  # type: ignore[attr-defined]


# Server secrets ---------------------------------------------------------------------------


def server_secret(session: Session, name: str) -> str | None:
    """The value of the named secret, or None when there is none."""
    return session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))


def add_server_secret_once(session: Session, name: str, value: str, at: datetime) -> str:
    """The named secret: `value` when no row held it yet, otherwise the one already stored.

    An insert that ignores a conflict, then a read: two processes making it at once both
    end up with the one that was committed first.
    """
    dialect = session.get_bind().dialect.name
    values = {"name": name, "value": value, "created_at": at}
    if dialect == "postgresql":
        session.execute(postgresql.insert(ServerSecret).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite.insert(ServerSecret).values(values).on_conflict_do_nothing())
    stored = server_secret(session, name)
    assert stored is not None
    return stored


def replace_server_secret(session: Session, name: str, value: str, at: datetime) -> None:
    """Store `value` under `name`, replacing any earlier value."""
    delete_server_secret(session, name)
    session.add(ServerSecret(name=name, value=value, created_at=at))
    session.flush()


def delete_server_secret(session: Session, name: str) -> bool:
    """Remove the named secret; False when there was none."""
    result = session.execute(delete(ServerSecret).where(ServerSecret.name == name))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Staged probes ----------------------------------------------------------------------------


def staged_probe_hashes(
    session: Session,
    *,
    keys_sha256: Sequence[str] | None = None,
    owner_sha256: str | None = None,
    expired_by: datetime | None = None,
    among: Iterable[str] | None = None,
) -> set[str]:
    """The probes (photo sha256) of the staged rows matching every filter given: these
    keys, this owner, expired by then, or (among) naming one of these probes."""
    query = select(StagedProbe.probe_sha256).distinct()
    if keys_sha256 is not None:
        query = query.where(StagedProbe.key_sha256.in_(list(keys_sha256)))
    if owner_sha256 is not None:
        query = query.where(StagedProbe.owner_sha256 == owner_sha256)
    if expired_by is not None:
        query = query.where(StagedProbe.expires_at <= expired_by)
    if among is not None:
        query = query.where(StagedProbe.probe_sha256.in_(sorted(set(among))))
    return set(session.scalars(query))


def delete_expired_staged_probes(session: Session, now: datetime) -> int:
    """Drop staged probes whose time is up; how many were dropped."""
    result = session.execute(delete(StagedProbe).where(StagedProbe.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


def staged_probe_keys_of(session: Session, owner_sha256: str) -> list[str]:
    """The keys (sha256) of one session's staged probes, the soonest to expire first."""
    return list(
        session.scalars(
            select(StagedProbe.key_sha256)
            .where(StagedProbe.owner_sha256 == owner_sha256)
            .order_by(StagedProbe.expires_at, StagedProbe.key_sha256)
        )
    )


def count_staged_probes(session: Session) -> int:
    """How many probes are staged, by every session."""
    return int(session.scalar(select(func.count()).select_from(StagedProbe)) or 0)


def add_staged_probe(
    session: Session,
    key_sha256: str,
    owner_sha256: str,
    filename: str,
    data: bytes,
    *,
    probe_sha256: str,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    """Hold a checked probe photo (`data`: sealed under the key of `probe_sha256`) until its
    request is sent."""
    session.add(
        StagedProbe(
            key_sha256=key_sha256,
            owner_sha256=owner_sha256,
            filename=filename,
            data=data,
            probe_sha256=probe_sha256,
            created_at=created_at,
            expires_at=expires_at,
        )
    )
    session.flush()


def staged_probe(session: Session, key_sha256: str) -> StagedProbe | None:
    """The staged probe with this key, or None."""
    return session.get(StagedProbe, key_sha256)


def delete_staged_probes(session: Session, keys_sha256: Sequence[str]) -> int:
    """Drop the staged probes with these keys; how many were dropped."""
    if not keys_sha256:
        return 0
    result = session.execute(
        delete(StagedProbe).where(StagedProbe.key_sha256.in_(list(keys_sha256)))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_staged_probes_of(session: Session, owner_sha256: str) -> int:
    """Drop every probe one session staged; how many were dropped."""
    result = session.execute(delete(StagedProbe).where(StagedProbe.owner_sha256 == owner_sha256))
    return int(result.rowcount)  # type: ignore[attr-defined]


# Session activity -------------------------------------------------------------------------


def mark_session_seen(session: Session, session_id: int, at: datetime) -> None:
    """Record that the login `session_id` was used at `at`."""
    session.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=at))
