"""Account commands: bootstrap, login, logout, whoami, and the `user`, `admin`, `policy` groups.

The login token lives in the workspace at sessions/<os login name>.token (file 0600,
folder 0700; candor.cli.session reads it), so each person on a shared host has their own
session, and a token never appears on a command line. Passwords come from a file
(--password-file) or an environment variable; the command line never prompts.
"""

from __future__ import annotations

import contextlib
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import add_literal_row, emit_json, fail, reported_errors, stdout
from candor.cli.session import SESSIONS_FOLDER, logged_in, read_token, token_path
from candor.workflow.accounts import (
    ROLES,
    Actor,
    ChangeInfo,
    NewUser,
    NotAuthenticatedError,
    UserInfo,
    active_policy_info,
    authenticate,
    bootstrap,
    change_password,
    confirm_change,
    disable_user,
    list_user_infos,
    login,
    logout,
    pending_change_infos,
    reject_change,
    request_enable,
    request_policy_change,
    request_role_grant,
    request_role_revoke,
    request_user,
    reset_password,
    session_view,
    update_certificate,
)
from candor.workflow.context import Workflow
from candor.workflow.workspaces import open_workflow

# Names of environment variables, not passwords.
PASSWORD_VARIABLE = "CANDOR_PASSWORD"  # noqa: S105
NEW_PASSWORD_VARIABLE = "CANDOR_NEW_PASSWORD"  # noqa: S105
BOOTSTRAP_PASSWORD_VARIABLES = ("CANDOR_BOOTSTRAP_PASSWORD_1", "CANDOR_BOOTSTRAP_PASSWORD_2")

user_app = typer.Typer(
    help="Users: add, roles, disable and enable, certificates, passwords.",
    no_args_is_help=True,
)
admin_app = typer.Typer(
    help="Admin changes waiting for a second admin: list, confirm, reject.",
    no_args_is_help=True,
)
policy_app = typer.Typer(help="The agency's policy: set (a second admin confirms), show.")

RoleArgument = Annotated[str, typer.Argument(help=f"One of {', '.join(ROLES)}.")]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help=f"File holding the new password (else ${NEW_PASSWORD_VARIABLE}).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add the account commands and the user, admin and policy groups to the `candor` app."""
    app.command("bootstrap")(bootstrap_command)
    app.command("login")(login_command)
    app.command("logout")(logout_command)
    app.command("whoami")(whoami_command)
    app.add_typer(user_app, name="user")
    app.add_typer(admin_app, name="admin")
    app.add_typer(policy_app, name="policy")


# Sessions on disk ------------------------------------------------------------------------


def save_token(home: Path, token: str) -> Path:
    """Write the token (0600, in a 0700 folder), replacing an earlier one."""
    folder = home / SESSIONS_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    path = token_path(home)
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    # O_EXCL and O_NOFOLLOW: never write the token through a planted file or link.
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def forget_token(home: Path) -> bool:
    """Remove the saved token; False when there was none."""
    path = token_path(home)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _workflow(home: Path | None, as_json: bool) -> Workflow:
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    return open_workflow(home)


def _date(text: str, option: str, as_json: bool) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date in YYYY-MM-DD form", as_json=as_json)


def _secret(path: Path | None, variable: str, option: str, as_json: bool) -> str:
    # A password is never an argument of its own: arguments show in process listings.
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            fail(f"{option} {path}: cannot be read as text ({error})", as_json=as_json)
        secret = text.removesuffix("\n").removesuffix("\r")
        if not secret:
            fail(f"{option} {path} is empty", as_json=as_json)
        return secret
    secret = os.environ.get(variable, "")
    if not secret:
        fail(f"no password given: pass {option} FILE or set {variable}", as_json=as_json)
    return secret


def _ordered(roles: frozenset[str] | tuple[str, ...]) -> list[str]:
    return [role for role in ROLES if role in roles]


def _roles_text(roles: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(_ordered(roles)) or "no role"


def _change_line(change: ChangeInfo) -> str:
    subject = (
        change.payload.get("username")
        or change.payload.get("name")
        or change.payload.get("subject_ref")
        or ""
    )
    detail = change.payload.get("role") or change.payload.get("version") or ""
    if change.payload.get("reason"):
        detail = f"(reason: {change.payload['reason']})"
    what = " ".join(str(part) for part in (change.kind, subject, detail) if part)
    return f"change {change.id}: {what} (requested by {change.requested_by}, {change.state})"


def _pending_note(change: ChangeInfo) -> str:
    return (
        f"Requested {_change_line(change)}.\nIt takes effect when another admin runs "
        f"`candor admin confirm {change.id}`."
    )


# Top-level commands ----------------------------------------------------------------------


def bootstrap_command(
    first: Annotated[str, typer.Option("--first", help="Username of the first admin.")],
    first_unit: Annotated[str, typer.Option("--first-unit", help="The first admin's unit.")],
    first_certificate_ref: Annotated[
        str, typer.Option("--first-certificate-ref", help="The first admin's training record.")
    ],
    first_certificate_expires: Annotated[
        str, typer.Option("--first-certificate-expires", help="Its expiry date (YYYY-MM-DD).")
    ],
    second: Annotated[str, typer.Option("--second", help="Username of the second admin.")],
    second_unit: Annotated[str, typer.Option("--second-unit", help="The second admin's unit.")],
    second_certificate_ref: Annotated[
        str,
        typer.Option("--second-certificate-ref", help="The second admin's training record."),
    ],
    second_certificate_expires: Annotated[
        str, typer.Option("--second-certificate-expires", help="Its expiry date (YYYY-MM-DD).")
    ],
    first_password_file: Annotated[
        Path | None,
        typer.Option(
            "--first-password-file",
            help=f"File with the first password (else ${BOOTSTRAP_PASSWORD_VARIABLES[0]}).",
        ),
    ] = None,
    second_password_file: Annotated[
        Path | None,
        typer.Option(
            "--second-password-file",
            help=f"File with the second password (else ${BOOTSTRAP_PASSWORD_VARIABLES[1]}).",
        ),
    ] = None,
    first_display_name: Annotated[
        str | None, typer.Option("--first-display-name", help="Full name (default: username).")
    ] = None,
    second_display_name: Annotated[
        str | None, typer.Option("--second-display-name", help="Full name (default: username).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the first two admins of a new workspace (only when it has no users)."""
    admins = (
        NewUser(
            username=first,
            unit=first_unit,
            certificate_ref=first_certificate_ref,
            certificate_expires=_date(
                first_certificate_expires, "--first-certificate-expires", as_json
            ),
            password=_secret(
                first_password_file,
                BOOTSTRAP_PASSWORD_VARIABLES[0],
                "--first-password-file",
                as_json,
            ),
            display_name=first_display_name,
        ),
        NewUser(
            username=second,
            unit=second_unit,
            certificate_ref=second_certificate_ref,
            certificate_expires=_date(
                second_certificate_expires, "--second-certificate-expires", as_json
            ),
            password=_secret(
                second_password_file,
                BOOTSTRAP_PASSWORD_VARIABLES[1],
                "--second-password-file",
                as_json,
            ),
            display_name=second_display_name,
        ),
    )
    with reported_errors(as_json), _workflow(home, as_json) as workflow:
        created = bootstrap(workflow, *admins)
    if as_json:
        emit_json({"ok": True, "users": list(created)})
        return
    stdout.print(
        f"Created the first two admins, {created[0].username} and {created[1].username}. "
        "From now on every new user, role and policy needs one admin to request it and "
        "the other to confirm."
    )


def login_command(
    user: Annotated[str, typer.Option("--user", help="Your username.")],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help=f"File holding your password (else ${PASSWORD_VARIABLE}).",
            show_default=False,
        ),
    ] = None,
    hours: Annotated[
        float,
        typer.Option(
            "--hours",
            min=0.1,
            max=168,
            envvar="CANDOR_SESSION_HOURS",
            help="How long the session lasts.",
        ),
    ] = 8,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Log in; the session is kept in the workspace for this OS user."""
    password = _secret(password_file, PASSWORD_VARIABLE, "--password-file", as_json)
    earlier: str | None = None
    with reported_errors(as_json), _workflow(home, as_json) as workflow:
        workspace_home = workflow.workspace.home
        with contextlib.suppress(NotAuthenticatedError):
            earlier = read_token(workspace_home)
        result = login(workflow, user, password, lifetime=timedelta(hours=hours))
        view = session_view(workflow, result.token)
        path = save_token(workspace_home, result.token)
        # A session replaced by a new login is ended, not left open until it expires.
        with contextlib.suppress(NotAuthenticatedError):
            logout(workflow, earlier)
    if as_json:
        emit_json(
            {
                "ok": True,
                "username": result.username,
                "roles": _ordered(view.actor.roles),
                "expires_at": result.expires_at,
                "certificate_valid": view.actor.certificate_valid,
                "reset_pending": view.actor.must_change_password,
            }
        )
        return
    stdout.print(
        f"Logged in as {result.username} ({_roles_text(view.actor.roles)}) until "
        f"{result.expires_at.isoformat(timespec='minutes')}; session saved in {path}."
    )
    if not view.actor.certificate_valid:
        stdout.print("Your training certificate has expired: no search, verify or review.")
    if view.actor.must_change_password:
        stdout.print(
            "An admin reset your password: choose a new one now with `candor user password "
            "--password-file FILE`; nothing else is allowed until you do."
        )


def logout_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """End your session in this workspace and remove the saved token."""
    with reported_errors(as_json), _workflow(home, as_json) as workflow:
        workspace_home = workflow.workspace.home
        try:
            actor: Actor | None = logout(workflow, read_token(workspace_home))
        except NotAuthenticatedError:
            actor = None
        removed = forget_token(workspace_home)
    if actor is None and not removed:
        fail("not logged in to this workspace", as_json=as_json)
    if as_json:
        emit_json({"ok": True, "username": None if actor is None else actor.username})
        return
    stdout.print(
        f"Logged out {actor.username}." if actor else "Removed an ended or expired session."
    )


def whoami_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Who you are logged in as here, your roles, certificate and session expiry."""
    with reported_errors(as_json), _workflow(home, as_json) as workflow:
        view = session_view(workflow, read_token(workflow.workspace.home))
    actor = view.actor
    if as_json:
        emit_json(
            {
                "ok": True,
                "user_id": actor.user_id,
                "username": actor.username,
                "unit": actor.unit,
                "roles": _ordered(actor.roles),
                "certificate_valid": actor.certificate_valid,
                "expires_at": view.expires_at,
            }
        )
        return
    certificate = "valid" if actor.certificate_valid else "EXPIRED"
    stdout.print(
        f"{actor.username} ({actor.unit}): {_roles_text(actor.roles)}; training certificate "
        f"{certificate}; session until {view.expires_at.isoformat(timespec='minutes')}."
    )


# user ------------------------------------------------------------------------------------


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Lower-case username.")],
    unit: Annotated[str, typer.Option("--unit", help="The user's unit.")],
    role: Annotated[list[str], typer.Option("--role", help=f"Repeatable: {', '.join(ROLES)}.")],
    certificate_ref: Annotated[
        str, typer.Option("--certificate-ref", help="The training certificate's reference.")
    ],
    certificate_expires: Annotated[
        str, typer.Option("--certificate-expires", help="Its expiry date (YYYY-MM-DD).")
    ],
    password_file: PasswordFileOption = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Full name (default: username).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a new user; they exist once another admin confirms."""
    new = NewUser(
        username=username,
        unit=unit,
        certificate_ref=certificate_ref,
        certificate_expires=_date(certificate_expires, "--certificate-expires", as_json),
        password=_secret(password_file, NEW_PASSWORD_VARIABLE, "--password-file", as_json),
        display_name=display_name,
        roles=tuple(role),
    )
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = request_user(workflow, actor, new)
    _report_change(change, as_json)


@user_app.command("grant")
def user_grant(
    username: Annotated[str, typer.Argument(help="The user.")],
    role: RoleArgument,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a role for a user; it takes effect once another admin confirms."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = request_role_grant(workflow, actor, username, role)
    _report_change(change, as_json)


@user_app.command("revoke")
def user_revoke(
    username: Annotated[str, typer.Argument(help="The user.")],
    role: RoleArgument,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request taking a role from a user; it takes effect once another admin confirms."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = request_role_revoke(workflow, actor, username, role)
    _report_change(change, as_json)


@user_app.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument(help="The user.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Disable a user at once and end their sessions (no second admin needed)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = disable_user(workflow, actor, username)
    if as_json:
        emit_json({"ok": True, "user": info})
        return
    stdout.print(f"Disabled {info.username}; their sessions have ended.")


@user_app.command("enable")
def user_enable(
    username: Annotated[str, typer.Argument(help="The user.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request enabling a disabled user; it takes effect once another admin confirms."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = request_enable(workflow, actor, username)
    _report_change(change, as_json)


@user_app.command("certificate")
def user_certificate(
    username: Annotated[str, typer.Argument(help="The user.")],
    ref: Annotated[str, typer.Option("--ref", help="The new certificate's reference.")],
    expires: Annotated[str, typer.Option("--expires", help="Its expiry date (YYYY-MM-DD).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a user's training certificate (takes effect at once)."""
    expiry = _date(expires, "--expires", as_json)
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = update_certificate(workflow, actor, username, ref, expiry)
    if as_json:
        emit_json({"ok": True, "user": info})
        return
    stdout.print(
        f"{info.username}'s certificate is now {info.certificate_ref}, valid until "
        f"{info.certificate_expires.isoformat()}."
    )


@user_app.command("list")
def user_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Every user with roles, unit, certificate and state (admins and auditors)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        users = list_user_infos(workflow, actor)
    if as_json:
        emit_json({"ok": True, "users": users})
        return
    stdout.print(_users_table(users))


def _users_table(users: list[UserInfo]) -> Table:
    table = Table(title="Users")
    for column in ("username", "name", "unit", "roles", "certificate", "state"):
        table.add_column(column)
    for user in users:
        certificate = f"{user.certificate_ref} until {user.certificate_expires.isoformat()}"
        add_literal_row(
            table,
            user.username,
            user.display_name,
            user.unit,
            _roles_text(user.roles),
            certificate if user.certificate_valid else f"{certificate} (expired)",
            "disabled" if user.disabled else "enabled",
        )
    return table


@user_app.command("password")
def user_password(
    password_file: PasswordFileOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change your own password (the one thing allowed after an admin reset it)."""
    password = _secret(password_file, NEW_PASSWORD_VARIABLE, "--password-file", as_json)
    with reported_errors(as_json), _workflow(home, as_json) as workflow:
        actor = authenticate(
            workflow, read_token(workflow.workspace.home), password_change_pending=True
        )
        change_password(workflow, actor, password)
    if as_json:
        emit_json({"ok": True, "username": actor.username})
        return
    stdout.print(f"Changed the password of {actor.username}.")


@user_app.command("reset-password")
def user_reset_password(
    username: Annotated[str, typer.Argument(help="Whose password (not your own).")],
    password_file: PasswordFileOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set another user's password; they must choose a new one at their next login."""
    password = _secret(password_file, NEW_PASSWORD_VARIABLE, "--password-file", as_json)
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        user = reset_password(workflow, actor, username, password)
    if as_json:
        emit_json({"ok": True, "user": user})
        return
    stdout.print(
        f"Reset the password of {user.username}; their sessions are ended and they must "
        "choose a new one at their next login."
    )


# admin -----------------------------------------------------------------------------------


@admin_app.command("pending")
def admin_pending(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Admin changes waiting for a second admin, oldest first."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        changes = pending_change_infos(workflow, actor)
    if as_json:
        emit_json({"ok": True, "changes": changes})
        return
    if not changes:
        stdout.print("No admin changes are waiting.")
    for change in changes:
        stdout.print(_change_line(change))


@admin_app.command("confirm")
def admin_confirm(
    change_id: Annotated[int, typer.Argument(help="The change's number.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Confirm another admin's change; it takes effect now."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = confirm_change(workflow, actor, change_id)
    if change.remaining:
        fail(
            f"confirmed {_change_line(change)}, but not every file is finished: "
            f"{'; '.join(change.remaining)}",
            as_json=as_json,
            change=change,
        )
    if as_json:
        emit_json({"ok": True, "change": change})
        return
    stdout.print(f"Confirmed {_change_line(change)}; it is in effect.")


@admin_app.command("reject")
def admin_reject(
    change_id: Annotated[int, typer.Argument(help="The change's number.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is rejected.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending change (the requester may withdraw their own), with a reason."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = reject_change(workflow, actor, change_id, reason)
    if as_json:
        emit_json({"ok": True, "change": change})
        return
    stdout.print(f"Rejected {_change_line(change)}.")


def _report_change(change: ChangeInfo, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, "change": change})
        return
    stdout.print(_pending_note(change))


# policy ----------------------------------------------------------------------------------


@policy_app.command("set")
def policy_set(
    file: Annotated[Path, typer.Argument(help="The policy file (TOML).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a policy file and request it; it is in force once another admin confirms."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = request_policy_change(workflow, actor, file)
    _report_change(change, as_json)


@policy_app.command("show")
def policy_show(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The policy in force: name, version, hash, who set it, and its text."""
    with reported_errors(as_json), _workflow(home, as_json) as workflow:
        info = active_policy_info(workflow)
    if info is None:
        fail(
            "no policy is in force; an admin sets one with `candor policy set FILE` "
            "and another confirms it",
            as_json=as_json,
        )
    if as_json:
        emit_json({"ok": True, "policy": info})
        return
    stdout.print(
        f"Policy {info.name} version {info.version} (sha256 {info.sha256}), in force since "
        f"{info.activated_at.isoformat(timespec='seconds')}; requested by {info.added_by}, "
        f"confirmed by {info.confirmed_by}.\n"
    )
    stdout.print(info.source, markup=False, highlight=False)
