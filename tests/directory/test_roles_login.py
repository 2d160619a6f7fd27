"""Issue 17's done-when for directory sign-on, against a real slapd: a person in the test
directory logs in to the web pages and the CLI with her directory password and acts with
the roles of her groups; taking her out of a group takes the role at her next request.
Mappings and directory admins need a second admin (through `candor directory`), an empty
password is refused, and every change of her roles is an audit entry the log verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from candor.cli.app import app
from candor.server.app import create_app
from candor.store import AuditEntry
from candor.workflow import accounts as accounts_module
from candor.workflow.audit_ops import verify_stored_log
from tests.agency import PASSWORD, Agency, make_agency
from tests.server.test_api import csrf_of
from tests.support_slapd import ThrowawaySlapd

DIRECTORY_PASSWORD = "her-directory-password-7"
runner = CliRunner()


@pytest.fixture
def agency(
    tmp_path: Path, slapd: ThrowawaySlapd, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Agency]:
    monkeypatch.setattr(
        accounts_module,
        "PASSWORD_HASHER",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
    )
    made = make_agency(tmp_path)
    slapd.write_settings(made.workflow.workspace.home)
    try:
        yield made
    finally:
        made.workflow.close()


def cli(agency: Agency, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        app,
        [*args, "--json"],
        env={"CANDOR_HOME": str(agency.workflow.workspace.home), "CANDOR_PASSWORD": ""},
    )
    text = result.stdout.strip() or result.stderr.strip()
    return result.exit_code, json.loads(text.splitlines()[-1] if text else "{}")


def cli_login(agency: Agency, tmp_path: Path, username: str, password: str) -> dict[str, Any]:
    secret = tmp_path / f"{username}.password"
    secret.write_text(password + "\n", encoding="utf-8")
    code, answer = cli(agency, "login", "--user", username, "--password-file", str(secret))
    assert code == 0, answer
    return answer


def whoami_roles(agency: Agency) -> list[str]:
    code, answer = cli(agency, "whoami")
    assert code == 0, answer
    roles: list[str] = answer["roles"]
    return roles


def as_admin(agency: Agency, tmp_path: Path, admin: str, *args: str) -> dict[str, Any]:
    cli_login(agency, tmp_path, admin, PASSWORD)
    code, answer = cli(agency, *args)
    assert code == 0, answer
    return answer


def web_login(agency: Agency, username: str, password: str) -> TestClient:
    client = TestClient(create_app(agency.workflow))
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


def role_changes(agency: Agency, username: str) -> list[dict[str, Any]]:
    with agency.workflow.workspace.session() as session:
        bodies = [entry.body for entry in session.query(AuditEntry).order_by(AuditEntry.seq)]
    entries = [json.loads(body) for body in bodies]
    return [
        entry["details"]
        for entry in entries
        if entry["action"] == "directory.roles_changed" and entry["details"]["username"] == username
    ]


def test_directory_person_logs_in_to_web_and_cli_and_acts_with_her_groups(
    agency: Agency, slapd: ThrowawaySlapd, tmp_path: Path
) -> None:
    carol = slapd.unique("carol")
    carol_dn = slapd.add_person(carol, DIRECTORY_PASSWORD, display_name="Carol Day")
    analysts = slapd.add_group(slapd.unique("analysts"), (carol_dn,))

    # A mapping takes two admins: the requester cannot confirm it.
    mapping = as_admin(agency, tmp_path, "admin1", "directory", "map", analysts, "analyst")
    mapping_id = str(mapping["mapping"]["id"])
    code, refused = cli(agency, "directory", "confirm", mapping_id)
    assert code != 0 and "another admin must" in refused["error"]
    as_admin(agency, tmp_path, "admin2", "directory", "confirm", mapping_id)

    # The CLI: `candor login --user` as for any account; an empty password is refused.
    empty = tmp_path / "empty.password"
    empty.write_text("\n", encoding="utf-8")
    code, refused = cli(agency, "login", "--user", carol, "--password-file", str(empty))
    assert code != 0
    cli_login(agency, tmp_path, carol, DIRECTORY_PASSWORD)
    assert whoami_roles(agency) == ["analyst"]

    # The web pages: the login form, then a page for analysts.
    client = web_login(agency, carol, DIRECTORY_PASSWORD)
    home = client.get("/home")
    assert home.status_code == 200 and "analyst" in home.text
    assert client.get("/search").status_code == 200
    wrong = TestClient(create_app(agency.workflow))
    page = wrong.get("/login")
    refused_page = wrong.post(
        "/login",
        data={"username": carol, "password": "", "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert refused_page.status_code != 303

    # Out of the group: the role is gone at her next request, on the web and in the CLI.
    slapd.remove_member(analysts, carol_dn)
    assert client.get("/search", follow_redirects=False).status_code == 403
    assert whoami_roles(agency) == []
    changes = role_changes(agency, carol)
    assert [(change["granted"], change["removed"]) for change in changes] == [
        (["analyst"], []),
        ([], ["analyst"]),
    ]
    assert changes[0]["groups"] == {"analyst": [analysts]}
    assert verify_stored_log(agency.workflow).ok


def test_directory_admin_needs_a_second_admin_to_confirm_the_person(
    agency: Agency, slapd: ThrowawaySlapd, tmp_path: Path
) -> None:
    dave = slapd.unique("dave")
    dave_dn = slapd.add_person(dave, DIRECTORY_PASSWORD)
    admins = slapd.add_group(slapd.unique("admins"), (dave_dn,))
    mapping = as_admin(agency, tmp_path, "admin1", "directory", "map", admins, "admin")
    as_admin(agency, tmp_path, "admin2", "directory", "confirm", str(mapping["mapping"]["id"]))

    cli_login(agency, tmp_path, dave, DIRECTORY_PASSWORD)
    assert whoami_roles(agency) == []  # his groups give admin; nobody confirmed him yet
    listed = as_admin(agency, tmp_path, "admin1", "directory", "list")
    assert [(p["username"], p["role"]) for p in listed["persons"]] == [(dave, "admin")]
    page = web_login(agency, "admin2", PASSWORD).get("/directory")
    assert page.status_code == 200 and admins in page.text and dave in page.text
    as_admin(agency, tmp_path, "admin1", "directory", "confirm-person", dave, "admin")
    cli_login(agency, tmp_path, dave, DIRECTORY_PASSWORD)
    assert whoami_roles(agency) == ["admin"]
    tested = as_admin(agency, tmp_path, "admin2", "directory", "test", dave)
    assert tested["person"]["roles_in_force"] == ["admin"]
    assert verify_stored_log(agency.workflow).ok
