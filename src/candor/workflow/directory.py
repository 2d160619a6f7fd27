"""Directory sign-on under Candor's rules: directory accounts, group-to-role mappings,
confirmations of directory admins and auditors, and the roles in force.

How it fits together (docs/directory.md says it for operators):

- A directory account is made at its first successful login (the password checked by
  binding as the person, `candor.directory.client.authenticate`), and only when one of the
  person's groups has a confirmed mapping: the two admins who confirmed the mapping are
  the two-admin decision that people in that group may use Candor. The account starts
  with no recorded training certificate (`NO_CERTIFICATE`, expired), so casework waits
  until an admin records one with `candor user certificate`, as for any user. Its local
  password hash is an argon2id hash of 32 random bytes nobody ever sees; login never
  checks it for a directory account, and a local account is never taken over by a
  directory person of the same name (the local password decides for it).
- `user_roles` holds the roles in force. They are computed from the person's groups
  through confirmed mappings at login and again at the first request after the
  settings' `cache_seconds`: a person taken out of a group loses the role at their next
  request after that. Admin and auditor from a group count only once another admin has
  confirmed that person (`confirm_person`); the person's groups ceasing to give the role
  forgets the confirmation, so coming back asks again. A person whose roles would
  combine auditor with another role holds no role at all until the mappings or groups
  are fixed (the auditor role is exclusive; guessing which one they meant is not ours
  to do), and the conflict is an audit entry.
- A person disabled in the directory, or no longer found there, holds no role and every
  session of theirs ends at the next check. While the directory cannot be reached (or
  its settings are wrong), directory accounts cannot log in and their sessions are
  refused once their cache runs out; local accounts keep working, so an admin can
  always get in.
- Every change of a person's roles in force is a `directory.roles_changed` audit entry
  naming the roles, the groups that give them and why; `audit verify` replays it.

Mappings are made by one admin and confirmed by another (the database holds that rule
too); withdrawing one takes effect at once, like disabling a user: stopping access must
be fast. Each decision makes every directory account read its groups at its next request.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session

from candor.directory.client import DirectoryPerson, authenticate, dn_key, look_up
from candor.directory.errors import DirectoryConfigError, DirectoryRefused, DirectoryUnavailable
from candor.directory.settings import SETTINGS_NAME, DirectorySettings, load_directory_settings
from candor.policy import ROLES, role_conflict
from candor.store import USERNAME_PATTERN, User, revoke_user_sessions, set_roles
from candor.store.accounts import create_user, user_by_id, user_by_name
from candor.store.directory import (
    CONFIRMED_PERSON_ROLES,
    DirectoryAccount,
    DirectoryGroupRole,
    DirectoryRoleConfirmation,
    add_directory_account,
    add_group_role,
    add_role_confirmation,
    decide_group_role,
    decide_role_confirmation,
    directory_account,
    group_role,
    group_roles,
    recheck_all_directory_accounts,
    remove_role_confirmation,
    role_confirmation,
    role_confirmations,
    withdraw_group_role,
)
from candor.workflow import accounts, limits
from candor.workflow.accounts import (
    _AUDITED_USERNAME_CHARS,
    AccountWorkflowError,
    Actor,
    LoginFailedError,
    LoginResult,
    NotAnAdminError,
    NotAuthenticatedError,
    SelfConfirmationError,
    _actor,
    _user_details,
    require_admin,
)
from candor.workflow.actions import act
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow

__all__ = [
    "DIRECTORY_UNIT",
    "NO_CERTIFICATE",
    "SETTINGS_FILE",
    "DirectoryCheck",
    "DirectoryWorkflowError",
    "MappingInfo",
    "PersonConfirmationInfo",
    "check_person",
    "confirm_mapping",
    "confirm_person",
    "directory_login",
    "directory_settings",
    "group_key",
    "list_mappings",
    "person_confirmations",
    "recheck_person",
    "reject_mapping",
    "reject_person",
    "request_mapping",
    "settings_path",
    "withdraw_mapping",
]

SETTINGS_FILE: Final = SETTINGS_NAME
# A directory account's certificate until an admin records one: expired, so casework waits.
NO_CERTIFICATE: Final = "none recorded (directory account)"
NO_CERTIFICATE_EXPIRES: Final = date(1970, 1, 1)
DIRECTORY_UNIT: Final = "directory"
# How much of a directory's refusal the audit entry keeps (it names a server, not a secret).
_AUDITED_DETAIL_CHARS = 300


class DirectoryWorkflowError(AccountWorkflowError):
    """A directory action was refused; the message says why."""


@dataclass(frozen=True)
class MappingInfo:
    """A group-to-role mapping and its state."""

    id: int
    group_dn: str
    role: str
    state: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    withdrawn_by: str | None
    withdrawn_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class PersonConfirmationInfo:
    """Whether a directory person may hold the admin or auditor role their groups give."""

    id: int
    username: str
    role: str
    state: str
    noticed_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class DirectoryCheck:
    """What the directory says of a person now, and the roles Candor would give them."""

    username: str
    dn: str
    display_name: str
    disabled: bool
    groups: tuple[str, ...]
    # Roles their groups give through confirmed mappings (before person confirmations).
    mapped_roles: tuple[str, ...]
    # Of those, admin/auditor still waiting for a second admin to confirm the person.
    waiting: tuple[str, ...]
    roles_in_force: tuple[str, ...]
    conflict: str | None
    has_account: bool


@dataclass(frozen=True)
class _Outcome:
    roles: frozenset[str]
    conflict: str | None
    # Why the person can do nothing (disabled in or gone from the directory), or None.
    stopped: str | None


# Settings ---------------------------------------------------------------------------------

_settings_cache: dict[str, tuple[tuple[int, int], DirectorySettings]] = {}


def settings_path(workflow: Workflow) -> Path:
    """Where the workspace's directory settings live."""
    return workflow.workspace.home / SETTINGS_FILE


def directory_settings(workflow: Workflow) -> DirectorySettings | None:
    """The workspace's directory settings; None when it has none (local accounts only).

    Read again when the file changes; raises DirectoryConfigError naming the key.
    """
    path = settings_path(workflow)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _settings_cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    settings = load_directory_settings(path, workspace=workflow.workspace.home)
    _settings_cache[str(path)] = (stamp, settings)
    return settings


# Groups and roles --------------------------------------------------------------------------


def group_key(dn: str) -> str:
    """A group DN as compared: `dn_key`'s one spelling (case, spaces and escapes aside), so
    that "CN=Analysts, OU=Groups" typed by an admin matches what the directory returns,
    including slapd's hex escapes (`cn=a\\2Cb` for `cn=a\\,b`). A stored DN that is not one
    (it was checked when mapped) compares as written."""
    try:
        return dn_key(dn.strip())
    except ValueError:
        return dn.strip().lower()


def _mapped_roles(session: Session, groups: frozenset[str]) -> dict[str, list[str]]:
    """role -> the person's groups (as mapped) that give it through confirmed mappings."""
    keys = {group_key(group) for group in groups}
    mapped: dict[str, list[str]] = {}
    for mapping in group_roles(session, "confirmed"):
        if group_key(mapping.group_dn) in keys:
            mapped.setdefault(mapping.role, []).append(mapping.group_dn)
    return mapped


def _apply_person(
    session: Session,
    workflow: Workflow,
    user: User,
    account: DirectoryAccount,
    person: DirectoryPerson | None,
    *,
    occasion: str,
) -> _Outcome:
    """Put the roles the person's groups give in force, in this transaction, audited."""
    now = workflow.now()
    account.checked_at = now
    if person is None or person.disabled:
        stopped = "not found in the directory" if person is None else "disabled in the directory"
        _set_roles(session, workflow, user, frozenset(), {}, reason=stopped)
        return _Outcome(frozenset(), None, stopped)
    if person.dn and person.dn != account.dn:
        account.dn = person.dn  # moved or renamed in the directory
    mapped = _mapped_roles(session, person.groups)
    waiting = set()
    for role in CONFIRMED_PERSON_ROLES:
        row = role_confirmation(session, user.id, role)
        if role in mapped:
            if row is None:
                row = add_role_confirmation(session, user.id, role, at=now)
                record(
                    session,
                    workflow,
                    None,
                    "directory.person_confirmation_needed",
                    {"user": user.id, "confirmation": row.id},
                    {"username": user.username, "role": role, "groups": sorted(mapped[role])},
                )
            if row.state != "confirmed":
                waiting.add(role)
        elif row is not None:
            remove_role_confirmation(session, row)
    held = frozenset(mapped) - waiting
    conflict = role_conflict(held)
    roles = frozenset() if conflict is not None else held
    reason = occasion if conflict is None else f"{occasion}; roles withheld: {conflict}"
    _set_roles(session, workflow, user, roles, mapped, reason=reason)
    return _Outcome(roles, conflict, None)


def _set_roles(
    session: Session,
    workflow: Workflow,
    user: User,
    roles: frozenset[str],
    mapped: Mapping[str, list[str]],
    *,
    reason: str,
) -> None:
    before = user.roles
    if roles == before:
        return
    set_roles(session, user, roles)
    record(
        session,
        workflow,
        None,
        "directory.roles_changed",
        {"user": user.id},
        {
            "username": user.username,
            "roles": sorted(roles),
            "granted": sorted(roles - before),
            "removed": sorted(before - roles),
            # Which of the person's groups give each role now in force.
            "groups": {role: sorted(mapped.get(role, ())) for role in sorted(roles)},
            "reason": reason,
        },
    )


def _create_account(
    session: Session, workflow: Workflow, username: str, person: DirectoryPerson
) -> tuple[User, DirectoryAccount]:
    display_name = (person.display_name or "").strip()[: limits.DISPLAY_NAME.max_length]
    now = workflow.now()
    # The users table wants an argon2id hash; this one is of bytes nobody ever sees.
    unusable = accounts.PASSWORD_HASHER.hash(secrets.token_bytes(32))
    user = create_user(
        session,
        username=username,
        display_name=display_name or username,
        unit=DIRECTORY_UNIT,
        password_hash=unusable,
        certificate_ref=NO_CERTIFICATE,
        certificate_expires=NO_CERTIFICATE_EXPIRES,
        roles=(),
        created_by=username,
        created_at=now,
    )
    account = add_directory_account(session, user.id, person.dn or username, at=now)
    record(
        session,
        workflow,
        username,
        "directory.account_created",
        {"user": user.id},
        {**_user_details(user), "dn": account.dn},
    )
    return user, account


# Login and the periodic check ------------------------------------------------------------


def directory_login(
    workflow: Workflow, username: str, password: str, lifetime: timedelta
) -> LoginResult:
    """Log a directory account in (called by `accounts.login`); every refusal is audited.

    The password is checked by binding as the person, outside the writing transaction
    (it waits on the network); the transaction then makes the account at its first login,
    puts the roles of the person's groups in force and opens the session.
    """
    failure: str | None = None
    detail: str | None = None
    person: DirectoryPerson | None = None
    directory_said_no = False
    try:
        settings = directory_settings(workflow)
    except DirectoryConfigError as error:
        settings, failure, detail = None, "directory_unavailable", str(error)
    if failure is None:
        if settings is None:
            failure, detail = "directory_unavailable", f"the workspace has no {SETTINGS_FILE}"
        elif not password:
            # Binding with an empty password is an anonymous bind, which succeeds.
            failure = "empty_password"
        elif USERNAME_PATTERN.fullmatch(username) is None:
            failure = "unknown_user"
        else:
            try:
                person = authenticate(settings, username, password)
            except DirectoryRefused as error:
                # Which no (wrong password, unknown, disabled) is for the log only.
                failure, detail, directory_said_no = error.reason, str(error), True
            except DirectoryUnavailable as error:
                failure, detail = "directory_unavailable", str(error)
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        user = user_by_name(session, username)
        account = None if user is None else directory_account(session, user.id)
        if failure is None:
            assert person is not None
            if user is None:
                if not _mapped_roles(session, person.groups):
                    failure = "no_mapped_group"
                else:
                    user, account = _create_account(session, workflow, username, person)
            elif account is None:
                # Made as a local account meanwhile: its own password decides, not ours.
                failure = "wrong_password"
            elif user.disabled:
                failure = "disabled"
        if failure is not None:
            record(
                session,
                workflow,
                None,
                "auth.login_failed",
                {} if user is None else {"user": user.id},
                {
                    "username": username[:_AUDITED_USERNAME_CHARS],
                    "reason": failure,
                    "directory": True,
                    **({} if detail is None else {"detail": detail[:_AUDITED_DETAIL_CHARS]}),
                },
            )
        else:
            assert user is not None and account is not None
            outcome = _apply_person(session, workflow, user, account, person, occasion="login")
            if outcome.conflict is not None:
                record(
                    session,
                    workflow,
                    None,
                    "directory.role_conflict",
                    {"user": user.id},
                    {"username": user.username, "conflict": outcome.conflict},
                )
            return accounts.open_session(session, workflow, user, lifetime, {"directory": True})
    if directory_said_no and failure != "empty_password":
        # Not whether the name exists or is disabled there: the audit entry says which.
        raise LoginFailedError("wrong username or password")
    raise LoginFailedError(_refusal(failure, username, detail))


def _refusal(failure: str, username: str, detail: str | None) -> str:
    if failure == "directory_unavailable":
        return (
            f"the directory cannot be used now ({detail}); directory accounts cannot log in "
            "until it answers, local accounts still can"
        )
    if failure == "empty_password":
        return "an empty password is refused (to a directory it would be an anonymous login)"
    if failure == "no_mapped_group":
        return (
            f"{username} is in no directory group that Candor maps to a role; an admin maps "
            "groups with `candor directory map`"
        )
    if failure == "disabled":
        return f"{username} is disabled; an admin must enable the account"
    return "wrong username or password"


def recheck_person(workflow: Workflow, actor: Actor, checked_at: datetime | None) -> Actor:
    """A directory account's actor for this request: its groups read again once the cache
    ran out (`accounts.session_view` calls this). Raises NotAuthenticatedError when the
    person may do nothing now: disabled in or gone from the directory (every session of
    theirs ends), or the directory unusable (refused until it answers)."""
    try:
        settings = directory_settings(workflow)
    except DirectoryConfigError as error:
        raise NotAuthenticatedError(
            f"the directory settings are wrong ({error}); directory accounts can do nothing "
            "until an admin fixes them"
        ) from None
    if settings is None:
        raise NotAuthenticatedError(
            f"{actor.username} is a directory account and the workspace has no {SETTINGS_FILE}; "
            "directory accounts can do nothing until an admin restores it"
        )
    if checked_at is not None and workflow.now() - checked_at < timedelta(
        seconds=settings.cache_seconds
    ):
        return actor
    try:
        person = look_up(settings, actor.username)
    except DirectoryUnavailable as error:
        raise NotAuthenticatedError(
            f"the directory cannot be reached ({error}); directory accounts can do nothing "
            "until it answers"
        ) from None
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        user = user_by_id(session, actor.user_id)
        account = directory_account(session, actor.user_id)
        if user is None or account is None:
            raise NotAuthenticatedError(f"{actor.username} is not a directory account any more")
        outcome = _apply_person(
            session, workflow, user, account, person, occasion="groups read again"
        )
        if outcome.stopped is not None:
            ended = revoke_user_sessions(session, user.id, at=workflow.now())
            record(
                session,
                workflow,
                None,
                "directory.sessions_ended",
                {"user": user.id},
                {"username": user.username, "reason": outcome.stopped, "sessions_ended": ended},
            )
        fresh = _actor(user, workflow.today())
    if outcome.stopped is not None:
        raise NotAuthenticatedError(f"{actor.username} is {outcome.stopped} and can do nothing")
    return fresh


# Mappings (admins) --------------------------------------------------------------------------


def _name(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = user_by_id(session, user_id)
    return "?" if user is None else user.username


def _mapping_info(session: Session, row: DirectoryGroupRole) -> MappingInfo:
    return MappingInfo(
        id=row.id,
        group_dn=row.group_dn,
        role=row.role,
        state=row.state,
        requested_by=_name(session, row.requested_by) or "?",
        requested_at=row.requested_at,
        decided_by=_name(session, row.decided_by),
        decided_at=row.decided_at,
        withdrawn_by=_name(session, row.withdrawn_by),
        withdrawn_at=row.withdrawn_at,
        reason=row.reason,
    )


def _mapping_details(row: DirectoryGroupRole) -> dict[str, object]:
    return {"group_dn": row.group_dn, "role": row.role}


def _is_dn(text: str) -> bool:
    try:
        dn_key(text)
    except ValueError:
        return False
    return bool(text)


def request_mapping(workflow: Workflow, actor: Actor, group_dn: str, role: str) -> MappingInfo:
    """Ask that members of a directory group hold `role`; a second admin confirms it."""
    group = limits.GROUP_DN.check(group_dn.strip())
    if not _is_dn(group):
        raise DirectoryWorkflowError(
            f"{group_dn!r} is not a group DN; give the group's full name, e.g. "
            "cn=analysts,ou=groups,dc=example,dc=org"
        )
    if role not in ROLES:
        raise DirectoryWorkflowError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
    with act(workflow, actor, "users.manage") as action:
        admin = require_admin(action.session, actor)
        for other in group_roles(action.session, "pending", "confirmed"):
            if other.role == role and group_key(other.group_dn) == group_key(group):
                raise DirectoryWorkflowError(
                    f"{group} is already mapped to {role} (mapping {other.id}, {other.state})"
                )
        row = add_group_role(action.session, group, role, admin.id, at=action.now)
        action.record("directory.mapping_requested", {"mapping": row.id}, _mapping_details(row))
        return _mapping_info(action.session, row)


def _pending_mapping(session: Session, mapping_id: int) -> DirectoryGroupRole:
    row = group_role(session, mapping_id)
    if row is None:
        raise DirectoryWorkflowError(f"no directory mapping {mapping_id}")
    if row.state != "pending":
        raise DirectoryWorkflowError(f"directory mapping {mapping_id} was already {row.state}")
    return row


def confirm_mapping(workflow: Workflow, actor: Actor, mapping_id: int) -> MappingInfo:
    """A second admin confirms a mapping; members hold the role from their next request."""
    with act(workflow, actor, "users.manage") as action:
        admin = require_admin(action.session, actor)
        row = _pending_mapping(action.session, mapping_id)
        if row.requested_by == admin.id:
            raise SelfConfirmationError(
                f"{actor.username} requested directory mapping {mapping_id} and cannot "
                "confirm it; another admin must"
            )
        decide_group_role(action.session, row, decided_by=admin.id, confirmed=True, at=action.now)
        recheck_all_directory_accounts(action.session)
        action.record(
            "directory.mapping_confirmed",
            {"mapping": row.id},
            {**_mapping_details(row), "requested_by": _name(action.session, row.requested_by)},
        )
        return _mapping_info(action.session, row)


def _reason(reason: str | None, *, required: bool) -> str | None:
    text = (reason or "").strip()
    if not text:
        if required:
            raise DirectoryWorkflowError("a rejection needs a reason (--reason)")
        return None
    return limits.REASON.check(text)


def reject_mapping(workflow: Workflow, actor: Actor, mapping_id: int, reason: str) -> MappingInfo:
    """An admin rejects a pending mapping, with a reason."""
    text = _reason(reason, required=True)
    with act(workflow, actor, "users.manage") as action:
        admin = require_admin(action.session, actor)
        row = _pending_mapping(action.session, mapping_id)
        decide_group_role(
            action.session, row, decided_by=admin.id, confirmed=False, at=action.now, reason=text
        )
        action.record(
            "directory.mapping_rejected",
            {"mapping": row.id},
            {**_mapping_details(row), "reason": text},
        )
        return _mapping_info(action.session, row)


def withdraw_mapping(
    workflow: Workflow, actor: Actor, mapping_id: int, reason: str | None = None
) -> MappingInfo:
    """An admin ends a pending or confirmed mapping at once (no second admin: stopping
    access must be fast); its members lose the role at their next request."""
    text = _reason(reason, required=False)
    with act(workflow, actor, "users.manage") as action:
        admin = require_admin(action.session, actor)
        row = group_role(action.session, mapping_id)
        if row is None:
            raise DirectoryWorkflowError(f"no directory mapping {mapping_id}")
        if row.state not in ("pending", "confirmed"):
            raise DirectoryWorkflowError(f"directory mapping {mapping_id} was already {row.state}")
        was = row.state
        withdraw_group_role(action.session, row, by=admin.id, at=action.now, reason=text)
        recheck_all_directory_accounts(action.session)
        action.record(
            "directory.mapping_withdrawn",
            {"mapping": row.id},
            {**_mapping_details(row), "was": was, **({} if text is None else {"reason": text})},
        )
        return _mapping_info(action.session, row)


def _require_viewer(session: Session, actor: Actor) -> None:
    viewer = user_by_id(session, actor.user_id)
    if viewer is None or viewer.disabled or not viewer.roles & {"admin", "auditor"}:
        raise NotAnAdminError("directory mappings are shown to admins and auditors")


def list_mappings(
    workflow: Workflow, actor: Actor, *, include_ended: bool = False
) -> list[MappingInfo]:
    """Pending and confirmed mappings (all with include_ended), oldest first."""
    states = () if include_ended else ("pending", "confirmed")
    with workflow.workspace.session() as session:
        _require_viewer(session, actor)
        return [_mapping_info(session, row) for row in group_roles(session, *states)]


# Person confirmations (admins) -------------------------------------------------------------


def _confirmation_info(session: Session, row: DirectoryRoleConfirmation) -> PersonConfirmationInfo:
    return PersonConfirmationInfo(
        id=row.id,
        username=_name(session, row.user_id) or "?",
        role=row.role,
        state=row.state,
        noticed_at=row.noticed_at,
        decided_by=_name(session, row.decided_by),
        decided_at=row.decided_at,
        reason=row.reason,
    )


def person_confirmations(
    workflow: Workflow, actor: Actor, *, pending_only: bool = True
) -> list[PersonConfirmationInfo]:
    """Directory persons whose groups give admin or auditor, and whether they may hold it."""
    with workflow.workspace.session() as session:
        _require_viewer(session, actor)
        rows = role_confirmations(session, state="pending" if pending_only else None)
        return [_confirmation_info(session, row) for row in rows]


def _decide_person(
    workflow: Workflow,
    actor: Actor,
    username: str,
    role: str,
    *,
    confirmed: bool,
    reason: str | None,
) -> PersonConfirmationInfo:
    if role not in CONFIRMED_PERSON_ROLES:
        raise DirectoryWorkflowError(
            f"only {' and '.join(CONFIRMED_PERSON_ROLES)} need a person confirmed, not {role!r}"
        )
    limits.USERNAME.check(username)
    with act(workflow, actor, "users.manage") as action:
        admin = require_admin(action.session, actor)
        user = user_by_name(action.session, username)
        if user is None or directory_account(action.session, user.id) is None:
            raise DirectoryWorkflowError(f"no directory account named {username!r}")
        row = role_confirmation(action.session, user.id, role)
        if row is None or row.state != "pending":
            state = "nothing to decide" if row is None else f"already {row.state}"
            raise DirectoryWorkflowError(
                f"{username}'s groups do not wait for a decision on {role} ({state})"
            )
        if user.id == admin.id:
            raise SelfConfirmationError(
                f"{actor.username} cannot decide on their own {role} role; another admin must"
            )
        decide_role_confirmation(
            action.session,
            row,
            decided_by=admin.id,
            confirmed=confirmed,
            at=action.now,
            reason=reason,
        )
        account = directory_account(action.session, user.id)
        assert account is not None
        account.checked_at = None  # the role follows at their next request
        action.record(
            "directory.person_confirmed" if confirmed else "directory.person_rejected",
            {"user": user.id, "confirmation": row.id},
            {"username": user.username, "role": role, **({"reason": reason} if reason else {})},
        )
        return _confirmation_info(action.session, row)


def confirm_person(
    workflow: Workflow, actor: Actor, username: str, role: str
) -> PersonConfirmationInfo:
    """Another admin lets a directory person hold the admin or auditor role their groups
    give; it is in force from their next request."""
    return _decide_person(workflow, actor, username, role, confirmed=True, reason=None)


def reject_person(
    workflow: Workflow, actor: Actor, username: str, role: str, reason: str
) -> PersonConfirmationInfo:
    """An admin refuses a directory person the admin or auditor role their groups give."""
    text = _reason(reason, required=True)
    return _decide_person(workflow, actor, username, role, confirmed=False, reason=text)


# Checking the settings (admins) -------------------------------------------------------------


def check_person(workflow: Workflow, actor: Actor, username: str) -> DirectoryCheck:
    """Look a person up with the service account and say which roles they would hold:
    `candor directory test USER`, to check the settings and mappings. Changes nothing."""
    limits.USERNAME.check(username)
    with workflow.workspace.session() as session:
        require_admin(session, actor)
    try:
        settings = directory_settings(workflow)
    except DirectoryConfigError as error:
        raise DirectoryWorkflowError(str(error)) from None
    if settings is None:
        raise DirectoryWorkflowError(
            f"the workspace has no {SETTINGS_FILE} ({settings_path(workflow)}); "
            "see docs/directory.md"
        )
    try:
        person = look_up(settings, username)
    except DirectoryUnavailable as error:
        raise DirectoryWorkflowError(f"the directory cannot be reached: {error}") from None
    if person is None:
        raise DirectoryWorkflowError(f"the directory has no person {username!r}")
    with workflow.workspace.session() as session:
        mapped = _mapped_roles(session, person.groups)
        user = user_by_name(session, username)
        has_account = user is not None and directory_account(session, user.id) is not None
        waiting = []
        for role in CONFIRMED_PERSON_ROLES:
            if role not in mapped:
                continue
            row = None if user is None else role_confirmation(session, user.id, role)
            if row is None or row.state != "confirmed":
                waiting.append(role)
    held = frozenset(mapped) - set(waiting)
    conflict = None if person.disabled else role_conflict(held)
    in_force = frozenset() if conflict is not None or person.disabled else held
    return DirectoryCheck(
        username=username,
        dn=person.dn,
        display_name=person.display_name,
        disabled=person.disabled,
        groups=tuple(sorted(person.groups)),
        mapped_roles=tuple(role for role in ROLES if role in mapped),
        waiting=tuple(waiting),
        roles_in_force=tuple(role for role in ROLES if role in in_force),
        conflict=conflict,
        has_account=has_account,
    )
