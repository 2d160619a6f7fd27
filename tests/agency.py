"""A small agency for workflow tests: admins, an analyst, examiners, a supervisor, a policy.

Users are made the way an agency makes them: bootstrap creates the first two admins,
every other user is requested by one admin and confirmed by the other, and the policy is
set the same way. Each test gets its actors by logging in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from candor.policy import example_policy_path
from candor.workflow import Actor, Workflow, authenticate
from candor.workflow.accounts import (
    NewUser,
    bootstrap,
    confirm_change,
    login,
    request_policy_change,
    request_user,
)
from candor.workflow.workspaces import create_workspace

PASSWORD = "correct horse battery staple"
HOME_AGENCY_LINE = 'home_agency = "Example City Police Department"'


def policy_file(folder: Path, example: str, *, source_type: str, **replacements: str) -> Path:
    """An example policy with its gallery source types set to `source_type`.

    `replacements` map a line's key to the new whole line, e.g. reviewers_to_release="...".
    """
    text = example_policy_path(example).read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "source_types":
            line = f'source_types = ["{source_type}"]'
        elif key in replacements:
            line = replacements[key]
        lines.append(line)
    path = folder / f"{example}-{source_type}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def new_user(name: str, *roles: str, expires: date | None = None, unit: str = "Robbery") -> NewUser:
    return NewUser(
        username=name,
        unit=unit,
        certificate_ref=f"FRT-{name}",
        certificate_expires=expires or date.today() + timedelta(days=365),
        password=PASSWORD,
        roles=roles,
    )


@dataclass
class Agency:
    """A workspace with its people, logged in."""

    workflow: Workflow
    actors: dict[str, Actor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    def add_user(self, user: NewUser) -> Actor:
        change = request_user(self.workflow, self.actors["admin1"], user)
        confirm_change(self.workflow, self.actors["admin2"], change.id)
        return self.log_in(user.username)

    def log_in(self, name: str) -> Actor:
        token = login(self.workflow, name, PASSWORD).token
        self.actors[name] = authenticate(self.workflow, token)
        return self.actors[name]

    def set_policy(self, path: Path) -> None:
        change = request_policy_change(self.workflow, self.actors["admin1"], path)
        confirm_change(self.workflow, self.actors["admin2"], change.id)


def make_agency(
    home: Path,
    *,
    purpose: str = "evaluation",
    example: str = "two-reviewers",
    database_url: str | None = None,
) -> Agency:
    """Workspace, two admins, the example policy (for `purpose` data) and the usual staff.

    database_url: a PostgreSQL database for the workspace (default: its own SQLite file).
    """
    workspace = create_workspace(home / "ws", purpose=purpose, database_url=database_url)
    agency = Agency(Workflow(workspace))
    bootstrap(
        agency.workflow,
        new_user("admin1", "admin", unit="Records"),
        new_user("admin2", "admin", unit="Records"),
    )
    agency.log_in("admin1")
    agency.log_in("admin2")
    agency.set_policy(policy_file(home, example, source_type=purpose))
    agency.add_user(new_user("ana", "analyst"))
    agency.add_user(new_user("sam", "supervisor"))
    agency.add_user(new_user("eve", "examiner"))
    agency.add_user(new_user("eli", "examiner"))
    return agency
