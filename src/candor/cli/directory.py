"""`candor directory`: roles from directory groups under Candor's rules (map a group to a
role, a second admin confirms; confirm a directory admin or auditor; list; check the
settings by looking a person up). Admin actions, audited; listing is for admins and
auditors. docs/directory.md is the guide."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import add_literal_row, emit_json, reported_errors, stdout, to_jsonable
from candor.cli.session import logged_in
from candor.workflow.directory import (
    MappingInfo,
    PersonConfirmationInfo,
    check_person,
    confirm_mapping,
    confirm_person,
    list_mappings,
    person_confirmations,
    reject_mapping,
    reject_person,
    request_mapping,
    withdraw_mapping,
)

directory_app = typer.Typer(
    help="Roles from directory groups: map a group to a role (a second admin confirms), "
    "confirm directory admins and auditors, list, and test the settings."
)

MappingArgument = Annotated[
    int, typer.Argument(help="The mapping's id (see `candor directory list`).")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


def register(app: typer.Typer) -> None:
    """Add `candor directory ...` to the app."""
    app.add_typer(directory_app, name="directory")


def _mapping_line(info: MappingInfo) -> str:
    return f"mapping {info.id}: members of {info.group_dn} hold {info.role} ({info.state})"


def _report_mapping(info: MappingInfo, as_json: bool, line: str) -> None:
    if as_json:
        emit_json({"ok": True, "mapping": to_jsonable(info)})
        return
    stdout.print(line, markup=False)


@directory_app.command("map")
def map_group(
    group_dn: Annotated[
        str, typer.Argument(help="The group's DN, e.g. cn=analysts,ou=groups,dc=example,dc=org.")
    ],
    role: Annotated[str, typer.Argument(help="The Candor role its members hold.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask that members of a directory group hold a role (admin, audited); it takes effect
    when another admin runs `candor directory confirm ID`."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = request_mapping(workflow, actor, group_dn, role)
    _report_mapping(
        info,
        as_json,
        f"Requested {_mapping_line(info)}; another admin confirms it with "
        f"`candor directory confirm {info.id}`.",
    )


@directory_app.command("confirm")
def confirm(
    mapping_id: MappingArgument, home: HomeOption = None, as_json: JsonOption = False
) -> None:
    """Confirm a mapping another admin requested (admin, audited); members hold the role
    from their next request."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = confirm_mapping(workflow, actor, mapping_id)
    _report_mapping(info, as_json, f"Confirmed {_mapping_line(info)}.")


@directory_app.command("reject")
def reject(
    mapping_id: MappingArgument,
    reason: ReasonOption,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending mapping (admin, audited)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = reject_mapping(workflow, actor, mapping_id, reason)
    _report_mapping(info, as_json, f"Rejected {_mapping_line(info)}.")


@directory_app.command("withdraw")
def withdraw(
    mapping_id: MappingArgument,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the audit log).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a pending or confirmed mapping at once (admin, audited; no second admin:
    stopping access must be fast). Its members lose the role at their next request."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = withdraw_mapping(workflow, actor, mapping_id, reason)
    _report_mapping(info, as_json, f"Withdrew {_mapping_line(info)}.")


@directory_app.command("confirm-person")
def confirm_person_command(
    user: Annotated[str, typer.Argument(help="The directory account's username.")],
    role: Annotated[str, typer.Argument(help="admin or auditor.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let a directory person hold the admin or auditor role their groups give (admin,
    audited; not for yourself). In force from their next request."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = confirm_person(workflow, actor, user, role)
    _report_person(info, as_json, f"Confirmed {info.username} as {info.role}.")


@directory_app.command("reject-person")
def reject_person_command(
    user: Annotated[str, typer.Argument(help="The directory account's username.")],
    role: Annotated[str, typer.Argument(help="admin or auditor.")],
    reason: ReasonOption,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refuse a directory person the admin or auditor role their groups give (admin,
    audited). Their groups must stop giving it and give it again to ask anew."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        info = reject_person(workflow, actor, user, role, reason)
    _report_person(info, as_json, f"Refused {info.username} the {info.role} role.")


def _report_person(info: PersonConfirmationInfo, as_json: bool, line: str) -> None:
    if as_json:
        emit_json({"ok": True, "confirmation": to_jsonable(info)})
        return
    stdout.print(line, markup=False)


@directory_app.command("list")
def list_command(
    all_mappings: Annotated[
        bool, typer.Option("--all", help="Rejected and withdrawn mappings too.")
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mappings in force or waiting, and directory persons waiting for a second admin to
    confirm their admin or auditor role (admins and auditors)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        mappings = list_mappings(workflow, actor, include_ended=all_mappings)
        waiting = person_confirmations(workflow, actor)
    if as_json:
        emit_json({"ok": True, "mappings": to_jsonable(mappings), "persons": to_jsonable(waiting)})
        return
    table = Table(title="Directory group mappings")
    for column in ("id", "group", "role", "state", "requested by", "decided by"):
        table.add_column(column)
    for info in mappings:
        add_literal_row(
            table,
            str(info.id),
            info.group_dn,
            info.role,
            info.state,
            info.requested_by,
            info.withdrawn_by or info.decided_by or "",
        )
    stdout.print(table)
    persons = Table(title="Directory persons waiting for confirmation")
    for column in ("user", "role", "noticed"):
        persons.add_column(column)
    for person in waiting:
        add_literal_row(
            persons, person.username, person.role, person.noticed_at.isoformat(timespec="seconds")
        )
    stdout.print(persons)


@directory_app.command("test")
def test_command(
    user: Annotated[str, typer.Argument(help="A username in the directory.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Look a person up with the service account and show their groups and the roles
    Candor would give them (admin; changes nothing): checks directory.toml."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        check = check_person(workflow, actor, user)
    if as_json:
        emit_json({"ok": True, "person": to_jsonable(check)})
        return
    table = Table(title=f"Directory person {check.username}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    add_literal_row(table, "dn", check.dn)
    add_literal_row(table, "display name", check.display_name)
    add_literal_row(table, "disabled", "yes" if check.disabled else "no")
    add_literal_row(table, "groups", "\n".join(check.groups) or "none")
    add_literal_row(table, "roles from groups", ", ".join(check.mapped_roles) or "none")
    add_literal_row(table, "waiting for confirmation", ", ".join(check.waiting) or "none")
    add_literal_row(table, "roles in force", ", ".join(check.roles_in_force) or "none")
    if check.conflict is not None:
        add_literal_row(table, "conflict", check.conflict)
    add_literal_row(table, "account in Candor", "yes" if check.has_account else "not yet")
    stdout.print(table)
