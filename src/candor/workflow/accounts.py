"""Accounts: bootstrap, login sessions, users and roles, and two-admin confirmations.

A new workspace has no users and no policy. `bootstrap` makes the first two admins at
once; from then on, creating a user, granting or revoking a role, enabling a user and
changing the policy are requests that a second admin confirms (the requester never
confirms their own). Disabling a user and updating a training certificate take effect at
once: stopping access must be fast. Every action, refused logins included, writes its
audit entry in the same transaction as the action; no password or password hash ever
reaches the audit log.

Passwords are hashed with argon2id at the first of RFC 9106's recommended parameter
sets for memory-constrained hosts (t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt,
32-byte tag): about 0.2 s per login on one core. A stored hash made with other
parameters is rehashed at the next successful login.

A login returns a random bearer token (256 bits); the database keeps only its sha256,
so a copy of the database logs nobody in.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from candor.policy import (
    ROLES,
    Policy,
    PolicyError,
    has_permission,
    load_policy,
    parse_policy,
    role_conflict,
)
from candor.store import (
    BOOTSTRAP_CREATOR,
    AccountError,
    AdminChange,
    User,
    activate_policy,
    active_policy_row,
    active_policy_text,
    add_admin_change,
    add_policy,
    admin_change,
    check_username,
    count_users,
    create_session,
    create_user,
    decide_change,
    grant_role,
    list_users,
    pending_changes,
    revoke_role,
    revoke_session,
    revoke_user_sessions,
    session_by_token_sha256,
    user_by_id,
    user_by_name,
    users_with_role,
)
from candor.store.governance import PolicyRecord
from candor.store.reconciliation import password_digest
from candor.workflow import limits
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = limits.PASSWORD.max_length
DEFAULT_SESSION_LIFETIME = timedelta(hours=8)
MAX_SESSION_LIFETIME = timedelta(days=7)
# Admin changes need a second admin; fewer than this many enabled admins could confirm nothing.
MIN_ADMINS = 2

PASSWORD_HASHER = PasswordHasher(
    time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16, type=Type.ID
)
# Audit entries hold what was typed as a username; a pasted essay is cut short.
_AUDITED_USERNAME_CHARS = 100


class AccountWorkflowError(WorkflowError):
    """An account action was refused; the message says why."""


class NotAuthenticatedError(AccountWorkflowError):
    """No valid login session: none, expired, ended, or the user is disabled."""


class LoginFailedError(AccountWorkflowError):
    """Wrong username or password, or a disabled user."""


class NotAnAdminError(AccountWorkflowError):
    """The action needs an enabled user holding the admin role."""


class SelfConfirmationError(AccountWorkflowError):
    """An admin tried to confirm a change they requested themselves."""


class RoleConflictError(AccountWorkflowError):
    """The roles asked for may not be held together (the auditor holds no other role)."""


class WeakPasswordError(AccountWorkflowError):
    """The password is shorter than MIN_PASSWORD_LENGTH (or absurdly long)."""


class UserNotFoundError(AccountWorkflowError):
    """No user has that username."""


class PasswordChangeRequiredError(AccountWorkflowError):
    """An admin reset this user's password: they must choose their own before anything else."""


class ChangeNotFoundError(AccountWorkflowError):
    """No admin change has that id, or it was already decided."""


class PolicyFileError(AccountWorkflowError):
    """The policy file cannot be used; str() is the PolicyError's "<file>: <key>: <problem>"."""

    def __init__(self, error: PolicyError) -> None:
        self.file = error.file
        self.key = error.key
        self.problem = error.problem
        super().__init__(str(error))


@dataclass(frozen=True)
class Actor:
    """The logged-in person a workflow action is done by."""

    user_id: int
    username: str
    unit: str
    roles: frozenset[str]
    certificate_valid: bool
    disabled: bool
    # An admin reset the password; until the user chooses a new one, only that is allowed.
    must_change_password: bool = False


@dataclass(frozen=True)
class NewUser:
    """Who a new account is for. The password is never printed (repr) nor stored as given."""

    username: str
    unit: str
    certificate_ref: str
    certificate_expires: date
    password: str
    display_name: str | None = None
    roles: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"NewUser(username={self.username!r}, unit={self.unit!r}, roles={self.roles!r}, "
            "password=<hidden>)"
        )


@dataclass(frozen=True)
class UserInfo:
    """A user as shown to admins and auditors (no password hash)."""

    id: int
    username: str
    display_name: str
    unit: str
    roles: tuple[str, ...]
    certificate_ref: str
    certificate_expires: date
    certificate_valid: bool
    disabled: bool
    created_at: datetime
    created_by: str
    # An admin reset the password and the user has not yet chosen a new one.
    reset_pending: bool = False


@dataclass(frozen=True)
class ChangeInfo:
    """An admin change and its state; a new user's password hash is never part of it."""

    id: int
    kind: str
    payload: dict[str, Any]
    requested_by: str
    requested_at: datetime
    state: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    # What a confirmed change could not finish at once (an expungement's files still to
    # erase); empty when it is complete.
    remaining: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoginResult:
    """A new login: the bearer token (shown once, never stored) and when it expires."""

    token: str
    username: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"LoginResult(username={self.username!r}, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class SessionView:
    """Who a token belongs to, and until when it is valid."""

    actor: Actor
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PolicyInfo:
    """The policy in force and who put it there."""

    name: str
    version: str
    sha256: str
    activated_at: datetime
    added_by: str
    confirmed_by: str
    source: str


def token_sha256(token: str) -> str:
    """What the database stores of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_password(password: str) -> None:
    """Refuse a password that is too short (or too long to hash in reasonable time)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters, not {len(password)}"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """The argon2id encoding of a password that passes check_password."""
    check_password(password)
    return PASSWORD_HASHER.hash(password)


def _directory_configured(workflow: Workflow) -> bool:
    # The directory module reads the settings; whether the file exists is enough here.
    from candor.workflow.directory import settings_path

    return settings_path(workflow).exists()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so a refusal takes as long either way
    # and its timing does not tell which usernames exist. Made on first use, not on import.
    return PASSWORD_HASHER.hash(secrets.token_urlsafe(16))


def _password_matches(encoded: str, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_roles(roles: Iterable[str]) -> frozenset[str]:
    held = frozenset(roles)
    unknown = sorted(held.difference(ROLES))
    if unknown:
        raise AccountWorkflowError(
            f"unknown role(s) {', '.join(unknown)}; the roles are {', '.join(ROLES)}"
        )
    if not held:
        raise AccountWorkflowError(f"give a user at least one role: {', '.join(ROLES)}")
    conflict = role_conflict(held)
    if conflict is not None:
        raise RoleConflictError(conflict)
    return held


def _username(username: str) -> str:
    # Before the form check, whose message repeats the name: not 100,000 characters of it.
    limits.USERNAME.check(username)
    try:
        return check_username(username)
    except AccountError as error:
        raise AccountWorkflowError(str(error)) from None


def _certificate_valid(user: User, today: date) -> bool:
    return today <= user.certificate_expires


def _actor(user: User, today: date) -> Actor:
    return Actor(
        user_id=user.id,
        username=user.username,
        unit=user.unit,
        roles=user.roles,
        certificate_valid=_certificate_valid(user, today),
        disabled=user.disabled,
        must_change_password=user.must_change_password,
    )


def _user_info(user: User, today: date) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        unit=user.unit,
        roles=tuple(role for role in ROLES if role in user.roles),
        certificate_ref=user.certificate_ref,
        certificate_expires=user.certificate_expires,
        certificate_valid=_certificate_valid(user, today),
        disabled=user.disabled,
        created_at=user.created_at,
        created_by=user.created_by,
        reset_pending=user.must_change_password,
    )


def _public_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "password_hash"}


def change_info(session: Session, change: AdminChange) -> ChangeInfo:
    decider = None if change.decided_by is None else user_by_id(session, change.decided_by)
    return ChangeInfo(
        id=change.id,
        kind=change.kind,
        payload=_public_payload(change.payload),
        requested_by=change.requester.username,
        requested_at=change.requested_at,
        state=change.state,
        decided_by=None if decider is None else decider.username,
        decided_at=change.decided_at,
        reason=change.reason,
    )


def require_admin(session: Session, actor: Actor) -> User:
    # Re-read in this transaction: a role revoked or a user disabled a moment ago counts.
    user = user_by_id(session, actor.user_id)
    if user is None or user.disabled:
        raise NotAnAdminError(f"{actor.username} is disabled or unknown and can do nothing")
    if "admin" not in user.roles:
        raise NotAnAdminError(f"{actor.username} is not an admin; this needs the admin role")
    return user


def _require_user(session: Session, username: str) -> User:
    # A name from a path or a form: PostgreSQL cannot even look up one with a NUL.
    limits.USERNAME.check(username)
    user = user_by_name(session, username)
    if user is None:
        raise UserNotFoundError(f"no user named {username!r}")
    return user


def _user_details(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "unit": user.unit,
        "roles": sorted(user.roles),
        "certificate_ref": user.certificate_ref,
        "certificate_expires": user.certificate_expires.isoformat(),
        # So `audit verify` sees a password hash replaced in the database (a digest,
        # salted hash and all: nothing to guess a password against).
        "password_sha256": password_digest(user.password_hash),
    }


def _new_user_fields(new: NewUser, roles: frozenset[str]) -> dict[str, Any]:
    return {
        "username": _username(new.username),
        "display_name": (new.display_name or new.username).strip() or new.username,
        "unit": new.unit.strip(),
        "roles": sorted(roles),
        "certificate_ref": new.certificate_ref.strip(),
        "certificate_expires": new.certificate_expires.isoformat(),
    }


def _check_new_user_text(fields: Mapping[str, Any]) -> None:
    for key, label in (("unit", "unit"), ("certificate_ref", "certificate reference")):
        if not fields[key]:
            raise AccountWorkflowError(f"the {label} of {fields['username']!r} must not be blank")
    for limit in (limits.DISPLAY_NAME, limits.UNIT, limits.CERTIFICATE_REF):
        limit.check(fields[limit.field])


# Bootstrap ------------------------------------------------------------------------------


def bootstrap(workflow: Workflow, first: NewUser, second: NewUser) -> tuple[UserInfo, UserInfo]:
    """Create the workspace's first two admins; refused once any user exists.

    Two at once, because every later change to users, roles or policy needs a second
    admin to confirm it. Their `roles` are ignored: both are admins only.
    """
    if first.username == second.username:
        raise AccountWorkflowError("the two first admins must be two different users")
    prepared = []
    for new in (first, second):
        fields = _new_user_fields(new, frozenset({"admin"}))
        _check_new_user_text(fields)
        prepared.append((fields, hash_password(new.password)))
    workspace = workflow.workspace
    today = workflow.today()
    with workspace.session() as session, session.begin():
        if count_users(session) > 0:
            raise AccountWorkflowError(
                "this workspace already has users; bootstrap runs only once, on a new workspace"
            )
        users = []
        for fields, encoded in prepared:
            user = _create_from_fields(session, fields, encoded, BOOTSTRAP_CREATOR, workflow.now())
            record(
                session,
                workflow,
                None,
                "user.bootstrap",
                {"user": user.id},
                _user_details(user),
            )
            users.append(user)
        return _user_info(users[0], today), _user_info(users[1], today)


def _create_from_fields(
    session: Session, fields: Mapping[str, Any], encoded: str, created_by: str, at: datetime
) -> User:
    try:
        return create_user(
            session,
            username=fields["username"],
            display_name=fields["display_name"],
            unit=fields["unit"],
            password_hash=encoded,
            certificate_ref=fields["certificate_ref"],
            certificate_expires=date.fromisoformat(fields["certificate_expires"]),
            roles=fields["roles"],
            created_by=created_by,
            created_at=at,
        )
    except AccountError as error:
        raise AccountWorkflowError(str(error)) from None


# Sessions -------------------------------------------------------------------------------


def login(
    workflow: Workflow,
    username: str,
    password: str,
    *,
    lifetime: timedelta = DEFAULT_SESSION_LIFETIME,
) -> LoginResult:
    """Check the password and open a session; every refusal is audited, then raised.

    The refusal does not say whether the username exists; the audit entry does.
    """
    if not timedelta(0) < lifetime <= MAX_SESSION_LIFETIME:
        raise AccountWorkflowError(
            f"a session lasts more than 0 and at most {MAX_SESSION_LIFETIME.days} days"
        )
    # Before the failed login's audit entry: PostgreSQL cannot store a NUL in it.
    limits.USERNAME.check(username)
    limits.PASSWORD.check(password)
    workspace = workflow.workspace
    # The password is checked (argon2: tens of milliseconds of CPU) before the writing
    # transaction, so logins at once do not queue behind each other's hashing while they
    # hold the database's write lock; the transaction then checks the hash is unchanged.
    with workspace.session() as session:
        seen = user_by_name(session, username)
        checked_hash = _dummy_hash() if seen is None else seen.password_hash
        directory_user = seen is not None and seen.directory_link is not None
    if directory_user or (seen is None and _directory_configured(workflow)):
        # A directory account (or a name unknown here, where a directory is configured):
        # the directory checks the password. A local account never goes there.
        from candor.workflow.directory import directory_login

        return directory_login(workflow, username, password, lifetime)
    matches = _password_matches(checked_hash, password)
    failure: str | None = None
    failed_user_id: int | None = None
    with workspace.session() as session, session.begin():
        user = user_by_name(session, username)
        if user is not None and user.password_hash != checked_hash:
            # Changed in between (a reset, a rehash): check the hash now in force.
            matches = _password_matches(user.password_hash, password)
        if user is None:
            failure = "unknown_user"
        elif not matches:
            failure, failed_user_id = "wrong_password", user.id
        elif user.disabled:
            failure, failed_user_id = "disabled", user.id
        if failure is not None:
            record(
                session,
                workflow,
                None,
                "auth.login_failed",
                {} if failed_user_id is None else {"user": failed_user_id},
                {"username": username[:_AUDITED_USERNAME_CHARS], "reason": failure},
            )
        else:
            assert user is not None
            rehashed: dict[str, str] = {}
            if PASSWORD_HASHER.check_needs_rehash(user.password_hash):
                user.password_hash = PASSWORD_HASHER.hash(password)
                rehashed = {"password_sha256": password_digest(user.password_hash)}
            return open_session(session, workflow, user, lifetime, rehashed)
    if failure == "disabled":
        raise LoginFailedError(f"{username} is disabled; an admin must enable the account")
    raise LoginFailedError("wrong username or password")


def open_session(
    session: Session,
    workflow: Workflow,
    user: User,
    lifetime: timedelta,
    details: Mapping[str, object],
) -> LoginResult:
    """A new session for `user`, its `auth.login` entry (with `details`) in the caller's
    transaction; the token is returned once and only its sha256 is stored."""
    token = secrets.token_urlsafe(32)
    now = workflow.now()
    row = create_session(session, token_sha256(token), user.id, now + lifetime, created_at=now)
    record(
        session,
        workflow,
        user.username,
        "auth.login",
        {"user": user.id, "session": row.id},
        {"expires_at": row.expires_at.isoformat(), **details},
    )
    return LoginResult(token=token, username=user.username, expires_at=row.expires_at)


def session_view(
    workflow: Workflow, token: str | None, *, directory_check: bool = True
) -> SessionView:
    """The actor behind a token and the session's times; NotAuthenticatedError otherwise.

    directory_check=False skips reading a directory account's groups again (a logout,
    which must work while the directory is down).
    """
    if not token:
        raise NotAuthenticatedError("not logged in; run `candor login --user NAME`")
    workspace = workflow.workspace
    with workspace.session() as session:
        row = session_by_token_sha256(session, token_sha256(token))
        if row is None:
            raise NotAuthenticatedError(
                "the saved session is not known to this workspace; run `candor login`"
            )
        if row.revoked_at is not None:
            raise NotAuthenticatedError("the session was ended; run `candor login`")
        if row.expires_at <= workflow.now():
            raise NotAuthenticatedError(
                f"the session expired at {row.expires_at.isoformat(timespec='seconds')}; "
                "run `candor login`"
            )
        user = row.user
        if user.disabled:
            raise NotAuthenticatedError(f"{user.username} is disabled and can do nothing")
        view = SessionView(
            actor=_actor(user, workflow.today()),
            created_at=row.created_at,
            expires_at=row.expires_at,
        )
        account = user.directory_link
        checked_at = None if account is None else account.checked_at
    if account is None or not directory_check:
        return view
    # A directory account's roles follow its groups, read again once the cache runs out.
    from candor.workflow.directory import recheck_person

    return replace(view, actor=recheck_person(workflow, view.actor, checked_at))


def authenticate(
    workflow: Workflow, token: str | None, *, password_change_pending: bool = False
) -> Actor:
    """The actor behind a session token; raises NotAuthenticatedError saying what to do.

    A user whose password an admin reset is refused (PasswordChangeRequiredError) until
    they choose their own, unless the caller is the password change itself
    (password_change_pending=True; the server also uses it to send them to that page).
    """
    actor = session_view(workflow, token).actor
    if actor.must_change_password and not password_change_pending:
        raise PasswordChangeRequiredError(password_change_required(actor.username))
    return actor


def password_change_required(username: str) -> str:
    """The one sentence every interface says to a user who must choose a new password."""
    return (
        f"an admin reset the password of {username}: choose a new one before anything "
        "else (web: the password page; CLI: `candor user password`)"
    )


def logout(workflow: Workflow, token: str | None) -> Actor:
    """End the session of this token; returns who was logged out."""
    # A user who must still choose a new password may log out all the same, and a
    # directory account while the directory is down.
    actor = session_view(workflow, token, directory_check=False).actor
    assert token is not None
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        row = session_by_token_sha256(session, token_sha256(token))
        assert row is not None
        revoke_session(session, row, at=workflow.now())
        record(
            session,
            workflow,
            actor.username,
            "auth.logout",
            {"user": actor.user_id, "session": row.id},
            {},
        )
    return actor


def change_password(workflow: Workflow, actor: Actor, new_password: str) -> None:
    """The actor sets their own password; their other sessions stay open.

    After an admin's reset this is the one thing the user may do, and the new password
    must differ from the one the admin set (which the admin knows).
    """
    encoded = hash_password(new_password)
    workspace = workflow.workspace
    with workspace.session() as session:
        seen = user_by_id(session, actor.user_id)
        reset_hash = None if seen is None or not seen.must_change_password else seen.password_hash
    if reset_hash is not None and _password_matches(reset_hash, new_password):
        raise WeakPasswordError(
            "choose a password of your own, not the one the admin set when resetting it"
        )
    with workspace.session() as session, session.begin():
        user = user_by_id(session, actor.user_id)
        if user is None or user.disabled:
            raise NotAuthenticatedError(f"{actor.username} is disabled and can do nothing")
        _refuse_directory_password(session, user)
        was_reset = user.must_change_password
        user.password_hash = encoded
        user.must_change_password = False
        record(
            session,
            workflow,
            actor.username,
            "user.password_changed",
            {"user": user.id},
            {
                "password_sha256": password_digest(encoded),
                **({"after_reset": True} if was_reset else {}),
            },
        )


def _refuse_directory_password(session: Session, user: User) -> None:
    # Login never checks a directory account's local hash; a reset would only lock them
    # out behind a password change they cannot make.
    if user.directory_link is not None:
        raise AccountWorkflowError(
            f"{user.username} is a directory account: their password is the directory's; "
            "change it there"
        )


def reset_password(
    workflow: Workflow, actor: Actor, username: str, temporary_password: str
) -> UserInfo:
    """An admin sets another user's password; that user must choose a new one at next login.

    Takes effect at once (a locked-out colleague should not wait for a second admin);
    every session of that user ends now. The audit entry holds a digest of the new hash,
    never the password. An admin changes their own password with change_password.
    """
    encoded = hash_password(temporary_password)
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        user = _require_user(session, username)
        _refuse_directory_password(session, user)
        if user.id == admin.id:
            raise AccountWorkflowError(
                f"{actor.username} cannot reset their own password; change it instead "
                "(web: the password page; CLI: `candor user password`)"
            )
        user.password_hash = encoded
        user.must_change_password = True
        ended = revoke_user_sessions(session, user.id, at=workflow.now())
        record(
            session,
            workflow,
            actor.username,
            "user.password_reset",
            {"user": user.id},
            {
                "username": user.username,
                "password_sha256": password_digest(encoded),
                "sessions_ended": ended,
            },
        )
        return _user_info(user, workflow.today())


# Users and roles -------------------------------------------------------------------------


def list_user_infos(workflow: Workflow, actor: Actor) -> list[UserInfo]:
    """Every user, for admins and auditors."""
    workspace = workflow.workspace
    with workspace.session() as session:
        viewer = user_by_id(session, actor.user_id)
        if viewer is None or viewer.disabled or not viewer.roles & {"admin", "auditor"}:
            raise NotAnAdminError("listing users needs the admin or auditor role")
        today = workflow.today()
        return [_user_info(user, today) for user in list_users(session)]


def request_user(workflow: Workflow, actor: Actor, new: NewUser) -> ChangeInfo:
    """Ask for a new user; they exist (and can log in) once a second admin confirms."""
    roles = _check_roles(new.roles)
    fields = _new_user_fields(new, roles)
    _check_new_user_text(fields)
    encoded = hash_password(new.password)
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        if user_by_name(session, fields["username"]) is not None:
            raise AccountWorkflowError(f"a user named {fields['username']!r} already exists")
        for change in pending_changes(session, "create_user"):
            if change.payload.get("username") == fields["username"]:
                raise AccountWorkflowError(
                    f"user {fields['username']!r} is already requested (change {change.id})"
                )
        # The hash waits in the change until a decision, then leaves it (see _decided_payload).
        change = add_admin_change(
            session,
            "create_user",
            {**fields, "password_hash": encoded},
            admin.id,
            requested_at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "user.create_requested",
            {"change": change.id},
            fields,
        )
        return change_info(session, change)


def request_role_grant(workflow: Workflow, actor: Actor, username: str, role: str) -> ChangeInfo:
    """Ask to give `username` a role; takes effect when a second admin confirms."""
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        user = _require_user(session, username)
        _check_grant(user, role)
        change = add_admin_change(
            session,
            "grant_role",
            {"username": user.username, "role": role},
            admin.id,
            requested_at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "user.role_grant_requested",
            {"change": change.id, "user": user.id},
            {"username": user.username, "role": role},
        )
        return change_info(session, change)


def _check_grant(user: User, role: str) -> None:
    if role not in ROLES:
        raise AccountWorkflowError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
    if role in user.roles:
        raise AccountWorkflowError(f"{user.username} already holds the {role} role")
    conflict = role_conflict(user.roles | {role})
    if conflict is not None:
        raise RoleConflictError(f"{user.username} cannot also be {role}: {conflict}")


def request_role_revoke(workflow: Workflow, actor: Actor, username: str, role: str) -> ChangeInfo:
    """Ask to take a role from `username`; takes effect when a second admin confirms."""
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        user = _require_user(session, username)
        _check_revoke(session, user, role)
        change = add_admin_change(
            session,
            "revoke_role",
            {"username": user.username, "role": role},
            admin.id,
            requested_at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "user.role_revoke_requested",
            {"change": change.id, "user": user.id},
            {"username": user.username, "role": role},
        )
        return change_info(session, change)


def _check_revoke(session: Session, user: User, role: str) -> None:
    if role not in user.roles:
        raise AccountWorkflowError(f"{user.username} does not hold the {role} role")
    if role == "admin" and not user.disabled:
        _keep_enough_admins(session, user)


def _keep_enough_admins(session: Session, leaving: User) -> None:
    remaining = [u for u in users_with_role(session, "admin") if u.id != leaving.id]
    if len(remaining) < MIN_ADMINS:
        raise AccountWorkflowError(
            f"{leaving.username} is one of the last {MIN_ADMINS} enabled admins; every "
            "admin change needs a second admin, so add another admin first"
        )


def disable_user(workflow: Workflow, actor: Actor, username: str) -> UserInfo:
    """Stop a user at once: no second admin needed, and every open session ends now."""
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        require_admin(session, actor)
        user = _require_user(session, username)
        if user.disabled:
            raise AccountWorkflowError(f"{user.username} is already disabled")
        if "admin" in user.roles:
            _keep_enough_admins(session, user)
        user.disabled = True
        ended = revoke_user_sessions(session, user.id, at=workflow.now())
        record(
            session,
            workflow,
            actor.username,
            "user.disabled",
            {"user": user.id},
            {"username": user.username, "sessions_ended": ended},
        )
        return _user_info(user, workflow.today())


def request_enable(workflow: Workflow, actor: Actor, username: str) -> ChangeInfo:
    """Ask to let a disabled user back in; takes effect when a second admin confirms."""
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        user = _require_user(session, username)
        if not user.disabled:
            raise AccountWorkflowError(f"{user.username} is not disabled")
        change = add_admin_change(
            session,
            "enable_user",
            {"username": user.username},
            admin.id,
            requested_at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "user.enable_requested",
            {"change": change.id, "user": user.id},
            {"username": user.username},
        )
        return change_info(session, change)


def update_certificate(
    workflow: Workflow, actor: Actor, username: str, certificate_ref: str, expires: date
) -> UserInfo:
    """Record a user's new training certificate; takes effect at once."""
    reference = certificate_ref.strip()
    if not reference:
        raise AccountWorkflowError("the certificate reference must not be blank")
    limits.CERTIFICATE_REF.check(reference)
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        require_admin(session, actor)
        user = _require_user(session, username)
        previous = (user.certificate_ref, user.certificate_expires.isoformat())
        user.certificate_ref = reference
        user.certificate_expires = expires
        record(
            session,
            workflow,
            actor.username,
            "user.certificate_updated",
            {"user": user.id},
            {
                "username": user.username,
                "certificate_ref": reference,
                "certificate_expires": expires.isoformat(),
                "previous_certificate_ref": previous[0],
                "previous_certificate_expires": previous[1],
            },
        )
        return _user_info(user, workflow.today())


# Policy ---------------------------------------------------------------------------------


def request_policy_change(workflow: Workflow, actor: Actor, path: Path) -> ChangeInfo:
    """Validate a policy file and ask to put it in force; a second admin confirms it."""
    try:
        policy = load_policy(path)
    except PolicyError as error:
        raise PolicyFileError(error) from error
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        current = active_policy_row(session)
        if current is not None and current.sha256 == policy.sha256:
            raise AccountWorkflowError(
                f"policy {policy.name} {policy.version} ({policy.sha256[:12]}) is already in force"
            )
        row = add_policy(
            session,
            sha256=policy.sha256,
            name=policy.name,
            version=policy.version,
            source=policy.source,
            added_by=admin.id,
            added_at=workflow.now(),
        )
        payload = {
            "policy_id": row.id,
            "sha256": row.sha256,
            "name": row.name,
            "version": row.version,
        }
        change = add_admin_change(
            session, "change_policy", payload, admin.id, requested_at=workflow.now()
        )
        record(
            session,
            workflow,
            actor.username,
            "policy.change_requested",
            {"change": change.id, "policy": row.sha256},
            {
                "sha256": row.sha256,
                "name": row.name,
                "version": row.version,
                # The name only: through the web or API, `path` is the upload's temporary
                # copy inside the workspace, a server folder the log has no need to keep.
                "file": path.name,
            },
        )
        return change_info(session, change)


def _stored_policy(source: str, sha256: str) -> Policy:
    policy = _parsed_policy(source, sha256[:12])
    if policy.sha256 != sha256:
        raise AccountWorkflowError(
            f"the stored text of policy {sha256[:12]} no longer matches its hash; "
            "the database has been altered"
        )
    return policy


@functools.lru_cache(maxsize=8)
def _parsed_policy(source: str, label: str) -> Policy:
    # Every request reads the policy in force; parsing its TOML each time cost about 2 ms.
    # Keyed by the text itself, so an altered row is parsed (and its hash checked) anew.
    return parse_policy(source, file=f"stored policy {label}")


def active_policy(workflow: Workflow) -> Policy | None:
    """The policy in force, parsed from its stored text; None before an admin sets one."""
    with workflow.workspace.session() as session:
        return policy_in_force(session)


def policy_in_force(session: Session) -> Policy | None:
    """`active_policy` as `session`'s transaction sees it."""
    text = active_policy_text(session)
    return None if text is None else _stored_policy(*text)


def active_policy_info(workflow: Workflow) -> PolicyInfo | None:
    """The policy in force with who added and confirmed it; None before one is set."""
    with workflow.workspace.session() as session:
        row = active_policy_row(session)
        if row is None or row.activated_at is None or row.confirmed_by is None:
            return None
        added = user_by_id(session, row.added_by)
        confirmed = user_by_id(session, row.confirmed_by)
        return PolicyInfo(
            name=row.name,
            version=row.version,
            sha256=row.sha256,
            activated_at=row.activated_at,
            added_by="?" if added is None else added.username,
            confirmed_by="?" if confirmed is None else confirmed.username,
            source=row.source,
        )


# Confirmations --------------------------------------------------------------------------


def pending_change_infos(workflow: Workflow, actor: Actor) -> list[ChangeInfo]:
    """Admin changes waiting for a decision, oldest first (admins and auditors)."""
    with workflow.workspace.session() as session:
        viewer = user_by_id(session, actor.user_id)
        if viewer is None or viewer.disabled or not viewer.roles & {"admin", "auditor"}:
            raise NotAnAdminError("pending admin changes are shown to admins and auditors")
        return [change_info(session, change) for change in pending_changes(session)]


def _pending(session: Session, change_id: int) -> AdminChange:
    change = admin_change(session, change_id)
    if change is None:
        raise ChangeNotFoundError(f"no admin change {change_id}")
    if change.state != "pending":
        raise ChangeNotFoundError(f"admin change {change_id} was already {change.state}")
    return change


def confirm_change(workflow: Workflow, actor: Actor, change_id: int) -> ChangeInfo:
    """A second admin confirms a pending change, which takes effect in this transaction.

    A confirmed expungement deletes its rows here; its files, index entries and the
    database scrub follow the commit, and `remaining` says what they could not finish.
    """
    # Imported here: the expungement module builds on this one (Actor, require_admin).
    from candor.workflow.expunge import erase_removed, remove_subject_rows, removed_details
    from candor.workflow.permissions import PermissionDeniedError

    workspace = workflow.workspace
    removed = None
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        change = _pending(session, change_id)
        if change.requested_by == admin.id:
            raise SelfConfirmationError(
                f"{actor.username} requested change {change_id} and cannot confirm it; "
                "another admin must"
            )
        if change.kind == "expunge_subject":
            # The policy must let the confirming admin expunge too, as it did the requester
            # (read in this transaction: no second connection while it is open).
            policy = policy_in_force(session)
            if policy is None or not has_permission(policy, admin.roles, "gallery.expunge"):
                raise PermissionDeniedError(
                    f"{actor.username} may not gallery.expunge under the policy in force"
                )
            removed = remove_subject_rows(
                session, workflow, change.payload["subject_id"], change.payload["subject_ref"]
            )
            action = "gallery.expunged"
            objects: dict[str, int | str] = {"subject": removed.subject_id}
            details: dict[str, object] = {
                **removed_details(removed),
                "reason": change.payload["reason"],
            }
        else:
            action, objects, details = _apply(session, admin, change, workflow.now())
        decide_change(
            session,
            change,
            decided_by=admin.id,
            confirmed=True,
            payload=_public_payload(change.payload),
            at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            action,
            {"change": change.id, **objects},
            {"requested_by": change.requester.username, **details},
        )
        confirmed = change_info(session, change)
    if removed is None:
        return confirmed
    report = erase_removed(workflow, removed)
    return replace(confirmed, remaining=report.remaining)


def reject_change(workflow: Workflow, actor: Actor, change_id: int, reason: str) -> ChangeInfo:
    """An admin (the requester too, withdrawing it) rejects a pending change, with a reason."""
    if not reason.strip():
        raise AccountWorkflowError("a rejection needs a reason (--reason)")
    limits.REASON.check(reason.strip())
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        change = _pending(session, change_id)
        decide_change(
            session,
            change,
            decided_by=admin.id,
            confirmed=False,
            reason=reason,
            payload=_public_payload(change.payload),
            at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "admin.change_rejected",
            {"change": change.id},
            {
                "kind": change.kind,
                "requested_by": change.requester.username,
                "reason": reason.strip(),
                "payload": _public_payload(change.payload),
            },
        )
        return change_info(session, change)


def _apply(
    session: Session, admin: User, change: AdminChange, now: datetime
) -> tuple[str, dict[str, int | str], dict[str, object]]:
    """Carry out a confirmed change; the checks of the request are made again, now."""
    payload = change.payload
    if change.kind == "create_user":
        fields = _public_payload(payload)
        _check_roles(fields["roles"])
        if user_by_name(session, fields["username"]) is not None:
            raise AccountWorkflowError(f"a user named {fields['username']!r} already exists")
        user = _create_from_fields(session, fields, payload["password_hash"], admin.username, now)
        return "user.created", {"user": user.id}, _user_details(user)
    if change.kind in ("grant_role", "revoke_role", "enable_user"):
        user = _require_user(session, payload["username"])
        if change.kind == "grant_role":
            _check_grant(user, payload["role"])
            grant_role(session, user, payload["role"])
            action = "user.role_granted"
        elif change.kind == "revoke_role":
            _check_revoke(session, user, payload["role"])
            revoke_role(session, user, payload["role"])
            action = "user.role_revoked"
        else:
            if not user.disabled:
                raise AccountWorkflowError(f"{user.username} is not disabled")
            user.disabled = False
            action = "user.enabled"
        return (
            action,
            {"user": user.id},
            {"username": user.username, "roles": sorted(user.roles), **_role_of(payload)},
        )
    if change.kind == "change_policy":
        row = session.get(PolicyRecord, payload["policy_id"])
        if row is None:
            raise AccountWorkflowError(f"the policy of change {change.id} is missing")
        _stored_policy(row.source, row.sha256)
        previous = active_policy_row(session)
        activate_policy(session, row, admin.id, at=now)
        return (
            "policy.changed",
            {"policy": row.sha256},
            {
                "sha256": row.sha256,
                "name": row.name,
                "version": row.version,
                "previous_sha256": None if previous is None else previous.sha256,
            },
        )
    raise AccountWorkflowError(f"unknown admin change kind {change.kind!r}")


def _role_of(payload: Mapping[str, Any]) -> dict[str, object]:
    return {"role": payload["role"]} if "role" in payload else {}


__all__ = [
    "DEFAULT_SESSION_LIFETIME",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "AccountWorkflowError",
    "Actor",
    "ChangeInfo",
    "ChangeNotFoundError",
    "LoginFailedError",
    "LoginResult",
    "NewUser",
    "NotAnAdminError",
    "NotAuthenticatedError",
    "PasswordChangeRequiredError",
    "PolicyFileError",
    "PolicyInfo",
    "RoleConflictError",
    "SelfConfirmationError",
    "SessionView",
    "UserInfo",
    "UserNotFoundError",
    "WeakPasswordError",
    "active_policy",
    "active_policy_info",
    "authenticate",
    "bootstrap",
    "change_password",
    "check_password",
    "confirm_change",
    "disable_user",
    "hash_password",
    "list_user_infos",
    "login",
    "logout",
    "password_change_required",
    "pending_change_infos",
    "reject_change",
    "request_enable",
    "request_policy_change",
    "request_role_grant",
    "request_role_revoke",
    "request_user",
    "reset_password",
    "session_view",
    "token_sha256",
    "update_certificate",
]
