"""Directory accounts, group-to-role mappings and the confirmations of directory admins and
auditors. Schema revision 0015_directory_roles.

- `DirectoryAccount` (directory_accounts): a user who logs in with their directory
  password. Their row in `users` keeps an argon2id hash of 32 random bytes that nobody
  ever sees (the users table requires a hash; login never checks it for such a user).
  `checked_at` is when their groups were last read; None makes the next request read them.
- `DirectoryGroupRole` (directory_group_roles): "members of this group hold this role",
  requested by one admin and confirmed by another (the database refuses a mapping
  confirmed by its requester). A pending or confirmed mapping may be withdrawn.
- `DirectoryRoleConfirmation` (directory_role_confirmations): a person whose groups give
  them admin or auditor holds it only once another admin confirms that person; one row
  per (user, role), removed when the groups no longer give the role, so coming back into
  the group asks again.

Every SQL statement about them lives here; the rules (who may confirm, what the roles in
force are) belong to candor.workflow.directory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.store.governance import ROLES
from candor.store.models import NEVER_REUSED_IDS, Base, UTCDateTime, _non_blank, _sql_list

__all__ = [
    "CONFIRMED_PERSON_ROLES",
    "GROUP_ROLE_STATES",
    "PERSON_CONFIRMATION_STATES",
    "DirectoryAccount",
    "DirectoryGroupRole",
    "DirectoryRoleConfirmation",
    "add_directory_account",
    "add_group_role",
    "add_role_confirmation",
    "decide_group_role",
    "decide_role_confirmation",
    "directory_account",
    "directory_accounts",
    "group_role",
    "group_roles",
    "recheck_all_directory_accounts",
    "remove_role_confirmation",
    "role_confirmation",
    "role_confirmations",
    "withdraw_group_role",
]

GROUP_ROLE_STATES: Final = ("pending", "confirmed", "rejected", "withdrawn")
PERSON_CONFIRMATION_STATES: Final = ("pending", "confirmed", "rejected")
# The roles a group gives a person only after a second admin confirms that person.
CONFIRMED_PERSON_ROLES: Final = ("admin", "auditor")


class DirectoryAccount(Base):
    """A user who authenticates against the directory, and when their groups were read."""

    __tablename__ = "directory_accounts"
    __table_args__ = (CheckConstraint(_non_blank("dn"), name="dn_not_blank"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    # The entry the directory returned at the first login (for the admin's eyes; the
    # username is what each login and look-up goes by).
    dn: Mapped[str] = mapped_column(Text)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DirectoryGroupRole(Base):
    """Members of `group_dn` hold `role`, once a second admin confirms the mapping."""

    __tablename__ = "directory_group_roles"
    __table_args__ = (
        CheckConstraint(_non_blank("group_dn"), name="group_dn_not_blank"),
        CheckConstraint(f"role IN ({_sql_list(ROLES)})", name="role_known"),
        CheckConstraint(f"state IN ({_sql_list(GROUP_ROLE_STATES)})", name="state_known"),
        CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state IN ('confirmed', 'rejected') AND decided_by IS NOT NULL "
            "AND decided_at IS NOT NULL) OR state = 'withdrawn'",
            name="decision_complete",
        ),
        CheckConstraint(
            "(state = 'withdrawn') = (withdrawn_by IS NOT NULL AND withdrawn_at IS NOT NULL)",
            name="withdrawal_complete",
        ),
        # The two-admin rule, held by the database as well as by the workflow.
        CheckConstraint(
            "decided_by IS NULL OR decided_by <> requested_by OR state = 'rejected'",
            name="second_admin_confirms",
        ),
        CheckConstraint(
            f"state <> 'rejected' OR (reason IS NOT NULL AND {_non_blank('reason')})",
            name="rejection_has_reason",
        ),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_dn: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    withdrawn_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class DirectoryRoleConfirmation(Base):
    """Whether a second admin let this directory person hold admin or auditor."""

    __tablename__ = "directory_role_confirmations"
    __table_args__ = (
        CheckConstraint(
            f"role IN ({_sql_list(CONFIRMED_PERSON_ROLES)})", name="role_needs_confirmation"
        ),
        CheckConstraint(f"state IN ({_sql_list(PERSON_CONFIRMATION_STATES)})", name="state_known"),
        CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state <> 'pending' AND decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name="decision_complete",
        ),
        # Nobody confirms their own admin or auditor role.
        CheckConstraint("decided_by IS NULL OR decided_by <> user_id", name="not_self_decided"),
        CheckConstraint(
            f"state <> 'rejected' OR (reason IS NOT NULL AND {_non_blank('reason')})",
            name="rejection_has_reason",
        ),
        UniqueConstraint("user_id", "role"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # When the person's groups were first seen to give the role.
    noticed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


# Accounts --------------------------------------------------------------------------------


def add_directory_account(
    session: Session, user_id: int, dn: str, *, at: datetime
) -> DirectoryAccount:
    """Mark a user as one who logs in through the directory."""
    account = DirectoryAccount(user_id=user_id, dn=dn, linked_at=at, checked_at=None)
    session.add(account)
    session.flush()
    return account


def directory_account(session: Session, user_id: int) -> DirectoryAccount | None:
    """The directory link of this user, or None for a local account."""
    return session.get(DirectoryAccount, user_id)


def directory_accounts(session: Session) -> list[DirectoryAccount]:
    """Every directory account, by user id (for the admin's list)."""
    return list(session.scalars(select(DirectoryAccount).order_by(DirectoryAccount.user_id)))


def recheck_all_directory_accounts(session: Session) -> int:
    """Make every directory account's next request read its groups again; how many."""
    result = session.execute(
        update(DirectoryAccount)
        .where(DirectoryAccount.checked_at.is_not(None))
        .values(checked_at=None)
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


# Group mappings --------------------------------------------------------------------------


def add_group_role(
    session: Session, group_dn: str, role: str, requested_by: int, *, at: datetime
) -> DirectoryGroupRole:
    """Record a mapping that waits for a second admin."""
    row = DirectoryGroupRole(
        group_dn=group_dn, role=role, requested_by=requested_by, requested_at=at, state="pending"
    )
    session.add(row)
    session.flush()
    return row


def group_role(session: Session, mapping_id: int) -> DirectoryGroupRole | None:
    """The mapping with this id, or None."""
    return session.get(DirectoryGroupRole, mapping_id)


def group_roles(session: Session, *states: str) -> list[DirectoryGroupRole]:
    """Mappings in any of `states` (all when none is given), oldest first."""
    query = select(DirectoryGroupRole)
    if states:
        query = query.where(DirectoryGroupRole.state.in_(states))
    return list(session.scalars(query.order_by(DirectoryGroupRole.id)))


def decide_group_role(
    session: Session,
    row: DirectoryGroupRole,
    *,
    decided_by: int,
    confirmed: bool,
    at: datetime,
    reason: str | None = None,
) -> None:
    """Confirm or reject a pending mapping (the database refuses the requester confirming)."""
    row.state = "confirmed" if confirmed else "rejected"
    row.decided_by = decided_by
    row.decided_at = at
    row.reason = reason
    session.flush()


def withdraw_group_role(
    session: Session, row: DirectoryGroupRole, *, by: int, at: datetime, reason: str | None
) -> None:
    """End a pending or confirmed mapping; its decision, if any, stays recorded."""
    row.state = "withdrawn"
    row.withdrawn_by = by
    row.withdrawn_at = at
    row.reason = reason
    session.flush()


# Person confirmations --------------------------------------------------------------------


def add_role_confirmation(
    session: Session, user_id: int, role: str, *, at: datetime
) -> DirectoryRoleConfirmation:
    """Note that this person's groups give them `role`, which waits for a second admin."""
    row = DirectoryRoleConfirmation(user_id=user_id, role=role, state="pending", noticed_at=at)
    session.add(row)
    session.flush()
    return row


def role_confirmation(
    session: Session, user_id: int, role: str
) -> DirectoryRoleConfirmation | None:
    """The confirmation row of this person and role, or None."""
    return session.scalar(
        select(DirectoryRoleConfirmation).where(
            DirectoryRoleConfirmation.user_id == user_id, DirectoryRoleConfirmation.role == role
        )
    )


def role_confirmations(
    session: Session, *, user_id: int | None = None, state: str | None = None
) -> list[DirectoryRoleConfirmation]:
    """Confirmation rows, of one person or in one state when given, oldest first."""
    query = select(DirectoryRoleConfirmation)
    if user_id is not None:
        query = query.where(DirectoryRoleConfirmation.user_id == user_id)
    if state is not None:
        query = query.where(DirectoryRoleConfirmation.state == state)
    return list(session.scalars(query.order_by(DirectoryRoleConfirmation.id)))


def decide_role_confirmation(
    session: Session,
    row: DirectoryRoleConfirmation,
    *,
    decided_by: int,
    confirmed: bool,
    at: datetime,
    reason: str | None = None,
) -> None:
    """Confirm or reject a pending person confirmation."""
    row.state = "confirmed" if confirmed else "rejected"
    row.decided_by = decided_by
    row.decided_at = at
    row.reason = reason
    session.flush()


def remove_role_confirmation(session: Session, row: DirectoryRoleConfirmation) -> None:
    """Forget a confirmation once the person's groups no longer give the role."""
    session.delete(row)
    session.flush()
