"""Persistence of users, roles, login sessions, admin changes awaiting confirmation, policies.

Each function takes a Session, flushes, and leaves committing to the caller (workflow),
which also writes the audit entry in the same transaction. Rules about who may do what
(two admins, the auditor's exclusivity, password strength) belong to the workflow; the
checks here are about well-formed rows only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from candor.store.errors import StoreError
from candor.store.governance import (
    ADMIN_CHANGE_KINDS,
    ROLES,
    AdminChange,
    AuthSession,
    PolicyRecord,
    User,
    UserRole,
)
from candor.store.models import utc_now
from candor.store.vault import is_sha256

USERNAME_PATTERN = re.compile(r"[a-z0-9._-]{2,64}")


class AccountError(StoreError, ValueError):
    """An account, session, change or policy row is malformed or in the wrong state."""


def check_username(username: str) -> str:
    """The username if it has the allowed form; raises AccountError saying what is wrong."""
    if USERNAME_PATTERN.fullmatch(username) is None:
        raise AccountError(
            f"username {username!r} is not allowed: use 2 to 64 lower-case letters, "
            "digits, dots, underscores or hyphens"
        )
    return username


def _check_roles(roles: Iterable[str]) -> frozenset[str]:
    held = frozenset(roles)
    unknown = sorted(held.difference(ROLES))
    if unknown:
        raise AccountError(
            f"unknown role(s) {', '.join(unknown)}; the roles are {', '.join(ROLES)}"
        )
    return held


def _text(value: str, field: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise AccountError(f"{field} must not be blank")
    return stripped


def create_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    unit: str,
    password_hash: str,
    certificate_ref: str,
    certificate_expires: date,
    roles: Iterable[str],
    created_by: str,
    created_at: datetime | None = None,
) -> User:
    """Add a user with their roles; refuses a taken username."""
    check_username(username)
    if user_by_name(session, username) is not None:
        raise AccountError(f"a user named {username!r} already exists")
    user = User(
        username=username,
        display_name=_text(display_name, "display name"),
        unit=_text(unit, "unit"),
        password_hash=password_hash,
        certificate_ref=_text(certificate_ref, "certificate reference"),
        certificate_expires=certificate_expires,
        disabled=False,
        created_at=created_at or utc_now(),
        created_by=created_by,
    )
    user.role_rows = [UserRole(role=role) for role in sorted(_check_roles(roles))]
    session.add(user)
    session.flush()
    return user


def user_by_name(session: Session, username: str) -> User | None:
    """The user with this username, or None."""
    return session.scalar(select(User).where(User.username == username))


def user_by_id(session: Session, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def list_users(session: Session) -> list[User]:
    """Every user, by username."""
    return list(session.scalars(select(User).order_by(User.username)))


def count_users(session: Session) -> int:
    """How many users exist (disabled ones included)."""
    return session.scalar(select(func.count()).select_from(User)) or 0


def users_with_role(session: Session, role: str, *, enabled_only: bool = True) -> list[User]:
    """Users holding `role`, by username; disabled ones left out unless asked."""
    query = select(User).join(UserRole).where(UserRole.role == role)
    if enabled_only:
        query = query.where(User.disabled.is_(False))
    return list(session.scalars(query.order_by(User.username)))


def set_roles(session: Session, user: User, roles: Iterable[str]) -> None:
    """Replace the user's roles with exactly `roles`."""
    wanted = _check_roles(roles)
    user.role_rows = [row for row in user.role_rows if row.role in wanted] + [
        UserRole(role=role) for role in sorted(wanted - user.roles)
    ]
    session.flush()


def grant_role(session: Session, user: User, role: str) -> bool:
    """Give the user `role`; False when they already hold it."""
    _check_roles([role])
    if role in user.roles:
        return False
    set_roles(session, user, user.roles | {role})
    return True


def revoke_role(session: Session, user: User, role: str) -> bool:
    """Take `role` from the user; False when they do not hold it."""
    _check_roles([role])
    if role not in user.roles:
        return False
    set_roles(session, user, user.roles - {role})
    return True


def create_session(
    session: Session,
    token_sha256: str,
    user_id: int,
    expires_at: datetime,
    *,
    created_at: datetime | None = None,
) -> AuthSession:
    """Record a login by the sha256 of its token (the token itself is never stored)."""
    if not is_sha256(token_sha256):
        raise AccountError("a session token hash must be 64 lower-case hex digits")
    created = created_at or utc_now()
    if expires_at <= created:
        raise AccountError("a session must expire after it is created")
    row = AuthSession(
        token_sha256=token_sha256, user_id=user_id, created_at=created, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    return row


def session_by_token_sha256(session: Session, token_sha256: str) -> AuthSession | None:
    """The login with this token hash, whatever its state, or None."""
    return session.scalar(select(AuthSession).where(AuthSession.token_sha256 == token_sha256))


def revoke_session(
    session: Session, auth_session: AuthSession, *, at: datetime | None = None
) -> bool:
    """End a login now; False when it had already been ended."""
    if auth_session.revoked_at is not None:
        return False
    auth_session.revoked_at = at or utc_now()
    session.flush()
    return True


def revoke_user_sessions(session: Session, user_id: int, *, at: datetime | None = None) -> int:
    """End every open login of a user; returns how many were open."""
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at or utc_now())
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def add_admin_change(
    session: Session,
    kind: str,
    payload: Mapping[str, Any],
    requested_by: int,
    *,
    requested_at: datetime | None = None,
) -> AdminChange:
    """Record a change that waits for a second admin's confirmation."""
    if kind not in ADMIN_CHANGE_KINDS:
        raise AccountError(
            f"unknown admin change {kind!r}; the kinds are {', '.join(ADMIN_CHANGE_KINDS)}"
        )
    change = AdminChange(
        kind=kind,
        payload=dict(payload),
        requested_by=requested_by,
        requested_at=requested_at or utc_now(),
        state="pending",
    )
    session.add(change)
    session.flush()
    return change


def admin_change(session: Session, change_id: int) -> AdminChange | None:
    """The admin change with this id, or None."""
    return session.get(AdminChange, change_id)


def pending_changes(session: Session, kind: str | None = None) -> list[AdminChange]:
    """Changes still waiting for a decision, oldest first; only of `kind` when given."""
    query = select(AdminChange).where(AdminChange.state == "pending")
    if kind is not None:
        query = query.where(AdminChange.kind == kind)
    return list(session.scalars(query.order_by(AdminChange.id)))


def decide_change(
    session: Session,
    change: AdminChange,
    *,
    decided_by: int,
    confirmed: bool,
    reason: str | None = None,
    payload: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Mark a pending change confirmed or rejected; `payload` replaces the stored one.

    A rejection needs a reason. The database refuses a confirmation by the requester.
    """
    if change.state != "pending":
        raise AccountError(f"admin change {change.id} was already {change.state}")
    if not confirmed and (reason is None or not reason.strip()):
        raise AccountError("a rejection needs a reason")
    change.state = "confirmed" if confirmed else "rejected"
    change.decided_by = decided_by
    change.decided_at = at or utc_now()
    change.reason = reason.strip() if reason is not None and reason.strip() else None
    if payload is not None:
        change.payload = dict(payload)
    session.flush()


def add_policy(
    session: Session,
    *,
    sha256: str,
    name: str,
    version: str,
    source: str,
    added_by: int,
    added_at: datetime | None = None,
) -> PolicyRecord:
    """Store a policy's text, or return the row already holding the same bytes."""
    if not is_sha256(sha256):
        raise AccountError("a policy's sha256 must be 64 lower-case hex digits")
    existing = policy_by_sha256(session, sha256)
    if existing is not None:
        return existing
    row = PolicyRecord(
        sha256=sha256,
        name=name,
        version=version,
        source=source,
        added_at=added_at or utc_now(),
        added_by=added_by,
    )
    session.add(row)
    session.flush()
    return row


def policy_by_sha256(session: Session, sha256: str) -> PolicyRecord | None:
    """The stored policy with these bytes, or None."""
    return session.scalar(select(PolicyRecord).where(PolicyRecord.sha256 == sha256))


_POLICIES = PolicyRecord.__table__.c


def active_policy_row(session: Session) -> PolicyRecord | None:
    """The policy in force: the one activated last, or None before any activation."""
    found: PolicyRecord | None = session.scalar(_in_force(select(PolicyRecord)))
    return found


def active_policy_text(session: Session) -> tuple[str, str] | None:
    """(source, sha256) of the policy in force, read off the ORM: every request reads it,
    and loading the whole row as an object cost more than the query (about 0.3 ms)."""
    found = session.connection().execute(_in_force(select(_POLICIES.source, _POLICIES.sha256)))
    row = found.first()
    return None if row is None else (row.source, row.sha256)


def _in_force(query: Select[Any]) -> Select[Any]:
    """`query` narrowed to the policy activated last."""
    return (
        query.where(_POLICIES.activated_at.is_not(None))
        .order_by(_POLICIES.activated_at.desc(), _POLICIES.id.desc())
        .limit(1)
    )


def activate_policy(
    session: Session, policy: PolicyRecord, confirmed_by: int, *, at: datetime | None = None
) -> None:
    """Put `policy` in force from `at` (now); an earlier policy may be activated again."""
    moment = at or utc_now()
    current = active_policy_row(session)
    # "Active" means "activated last", so a clock that stepped back must not hide this one.
    if current is not None and current.activated_at is not None and current.activated_at >= moment:
        moment = current.activated_at + timedelta(microseconds=1)
    policy.activated_at = moment
    policy.confirmed_by = confirmed_by
    session.flush()
