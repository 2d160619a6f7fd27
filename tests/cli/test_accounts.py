"""Account commands through the command line: one-line errors, --json, no prompts."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import typer
from argon2 import PasswordHasher, Type
from typer.testing import CliRunner

from candor.cli.accounts import register
from candor.cli.session import token_path
from candor.policy import example_policy_path
from candor.workflow import accounts as accounts_module
from candor.workflow.workspaces import create_workspace

runner = CliRunner()
PASSWORDS = {
    "alice": "alice-correct-horse-1",
    "bob": "bob-battery-staple-22",
    "carol": "carol-analyst-pass-333",
}


def make_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    return app


APP = make_app()


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accounts_module,
        "PASSWORD_HASHER",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    create_workspace(tmp_path / "ws").close()
    return tmp_path / "ws"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name, password in PASSWORDS.items():
        (folder / name).write_text(password + "\n", encoding="utf-8")
    return folder


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(APP, list(args), env={"CANDOR_HOME": str(home), **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def run_json(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, out, err = run(home, *args, "--json", env=env)
    assert code == 0, err
    payload = json.loads(out)
    assert isinstance(payload, dict)
    return payload


def bootstrap_args(secrets_dir: Path) -> list[str]:
    return [
        "bootstrap",
        "--first",
        "alice",
        "--first-unit",
        "IT",
        "--first-certificate-ref",
        "FR-1",
        "--first-certificate-expires",
        "2030-01-01",
        "--first-password-file",
        str(secrets_dir / "alice"),
        "--second",
        "bob",
        "--second-unit",
        "Legal",
        "--second-certificate-ref",
        "FR-2",
        "--second-certificate-expires",
        "2030-01-01",
    ]


def log_in(home: Path, secrets_dir: Path, name: str) -> dict[str, Any]:
    return run_json(home, "login", "--user", name, "--password-file", str(secrets_dir / name))


@pytest.fixture
def bootstrapped(home: Path, secrets_dir: Path) -> Path:
    run_json(
        home, *bootstrap_args(secrets_dir), env={"CANDOR_BOOTSTRAP_PASSWORD_2": PASSWORDS["bob"]}
    )
    return home


def test_bootstrap_then_login_whoami_logout(home: Path, secrets_dir: Path) -> None:
    created = run_json(
        home, *bootstrap_args(secrets_dir), env={"CANDOR_BOOTSTRAP_PASSWORD_2": PASSWORDS["bob"]}
    )
    assert [user["username"] for user in created["users"]] == ["alice", "bob"]
    assert all(user["roles"] == ["admin"] for user in created["users"])
    assert "password" not in json.dumps(created)

    code, _, err = run(
        home, *bootstrap_args(secrets_dir), env={"CANDOR_BOOTSTRAP_PASSWORD_2": PASSWORDS["bob"]}
    )
    assert code == 1
    assert err.strip().count("\n") == 0
    assert "already has users" in err

    login = log_in(home, secrets_dir, "alice")
    assert login["username"] == "alice"
    assert login["roles"] == ["admin"]
    assert "token" not in login
    path = token_path(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = path.read_text(encoding="utf-8").strip()
    assert token not in json.dumps(login)

    whoami = run_json(home, "whoami")
    assert (whoami["username"], whoami["unit"], whoami["roles"]) == ("alice", "IT", ["admin"])
    assert whoami["certificate_valid"] is True

    code, out, _ = run(home, "whoami")
    assert code == 0
    assert out.startswith("alice (IT): admin")

    assert run_json(home, "logout") == {"ok": True, "username": "alice"}
    assert not path.exists()
    code, out, err = run(home, "whoami", "--json")
    assert code == 1
    assert "candor login" in json.loads(out)["error"]
    code, _, err = run(home, "logout")
    assert code == 1
    assert "not logged in" in err


def test_a_second_admin_confirms_a_new_user_and_a_policy(
    bootstrapped: Path, secrets_dir: Path
) -> None:
    home = bootstrapped
    log_in(home, secrets_dir, "alice")
    requested = run_json(
        home,
        "user",
        "add",
        "carol",
        "--unit",
        "Robbery",
        "--role",
        "analyst",
        "--role",
        "examiner",
        "--certificate-ref",
        "FR-3",
        "--certificate-expires",
        "2030-06-30",
        "--password-file",
        str(secrets_dir / "carol"),
        "--display-name",
        "Carol Example",
    )
    change = requested["change"]
    assert (change["kind"], change["state"]) == ("create_user", "pending")
    assert "password_hash" not in change["payload"]
    pending = run_json(home, "admin", "pending")
    assert [item["id"] for item in pending["changes"]] == [change["id"]]

    code, _, err = run(home, "admin", "confirm", str(change["id"]))
    assert code == 1
    assert "cannot confirm it" in err

    code, _, err = run(
        home, "login", "--user", "carol", "--password-file", str(secrets_dir / "carol")
    )
    assert code == 1
    assert "wrong username or password" in err

    log_in(home, secrets_dir, "bob")
    confirmed = run_json(home, "admin", "confirm", str(change["id"]))
    assert confirmed["change"]["decided_by"] == "bob"
    users = {user["username"]: user for user in run_json(home, "user", "list")["users"]}
    assert users["carol"]["roles"] == ["analyst", "examiner"]
    assert users["carol"]["display_name"] == "Carol Example"

    code, out, err = run(home, "policy", "show")
    assert code == 1
    assert "no policy is in force" in err
    policy_change = run_json(home, "policy", "set", str(example_policy_path("moratorium")))
    code, _, _ = run(home, "policy", "show")
    assert code == 1

    log_in(home, secrets_dir, "alice")
    run_json(home, "admin", "confirm", str(policy_change["change"]["id"]))
    shown = run_json(home, "policy", "show")["policy"]
    assert shown["sha256"] == policy_change["change"]["payload"]["sha256"]
    assert (shown["added_by"], shown["confirmed_by"]) == ("bob", "alice")
    code, out, _ = run(home, "policy", "show")
    assert code == 0
    assert "confirmed by alice" in out
    assert "[meta]" in out


def test_roles_change_through_requests(bootstrapped: Path, secrets_dir: Path) -> None:
    home = bootstrapped
    log_in(home, secrets_dir, "alice")
    code, _, err = run(
        home,
        "user",
        "add",
        "dave",
        "--unit",
        "Audit",
        "--role",
        "auditor",
        "--role",
        "analyst",
        "--certificate-ref",
        "FR-4",
        "--certificate-expires",
        "2030-01-01",
        env={"CANDOR_NEW_PASSWORD": "dave-long-password-4"},
    )
    assert code == 1
    assert "auditor role may not be held together" in err

    change = run_json(home, "user", "grant", "bob", "supervisor")["change"]
    code, out, _ = run(home, "admin", "pending")
    assert f"change {change['id']}: grant_role bob supervisor" in out
    rejected = run_json(home, "admin", "reject", str(change["id"]), "--reason", "not needed")
    assert rejected["change"]["state"] == "rejected"

    grant = run_json(home, "user", "grant", "bob", "examiner")["change"]
    log_in(home, secrets_dir, "bob")
    code, _, err = run(home, "user", "revoke", "bob", "examiner")
    assert code == 1
    assert "does not hold the examiner role" in err
    run_json(home, "admin", "confirm", str(grant["id"]))
    assert run_json(home, "whoami")["roles"] == ["examiner", "admin"]
    revoke = run_json(home, "user", "revoke", "bob", "examiner")["change"]
    log_in(home, secrets_dir, "alice")
    run_json(home, "admin", "confirm", str(revoke["id"]))
    users = {user["username"]: user for user in run_json(home, "user", "list")["users"]}
    assert users["bob"]["roles"] == ["admin"]


def test_disable_enable_certificate_and_password(
    bootstrapped: Path, secrets_dir: Path, tmp_path: Path
) -> None:
    home = bootstrapped
    log_in(home, secrets_dir, "alice")
    code, _, err = run(home, "user", "disable", "bob")
    assert code == 1
    assert "add another admin first" in err

    certificate = run_json(
        home, "user", "certificate", "bob", "--ref", "FR-2b", "--expires", "2020-01-01"
    )
    assert certificate["user"]["certificate_valid"] is False
    code, _, err = run(home, "user", "certificate", "bob", "--ref", "x", "--expires", "soon")
    assert code == 1
    assert "--expires 'soon' is not a date" in err

    new_password = tmp_path / "new"
    new_password.write_text("alice-brand-new-password\n", encoding="utf-8")
    assert run_json(home, "user", "password", "--password-file", str(new_password))["ok"]
    code, _, err = run(
        home, "login", "--user", "alice", "--password-file", str(secrets_dir / "alice")
    )
    assert code == 1
    assert run_json(home, "login", "--user", "alice", "--password-file", str(new_password))["ok"]


def test_errors_are_one_line_and_nothing_prompts(bootstrapped: Path, tmp_path: Path) -> None:
    home = bootstrapped
    code, out, err = run(home, "user", "list")
    assert code == 1
    assert out == ""
    assert err == "candor: error: not logged in; run `candor login --user NAME`\n"

    code, out, err = run(home, "login", "--user", "alice", "--json")
    assert code == 1
    assert "--password-file FILE or set CANDOR_PASSWORD" in json.loads(out)["error"]

    code, _, err = run(home, "login", "--user", "alice", env={"CANDOR_PASSWORD": "wrong-one-xx"})
    assert code == 1
    assert err == "candor: error: wrong username or password\n"

    run(home, "login", "--user", "alice", env={"CANDOR_PASSWORD": PASSWORDS["alice"]})
    broken = tmp_path / "broken.toml"
    broken.write_text("[meta\n", encoding="utf-8")
    code, out, err = run(home, "policy", "set", str(broken), "--json")
    assert code == 1
    assert json.loads(out)["error"].startswith(f"{broken}: ")
    assert err.count("\n") == 1

    code, _, err = run(home, "admin", "confirm", "999")
    assert (code, err) == (1, "candor: error: no admin change 999\n")


def test_a_token_file_left_by_a_disabled_user_is_refused(
    bootstrapped: Path, secrets_dir: Path
) -> None:
    home = bootstrapped
    log_in(home, secrets_dir, "alice")
    code, _, err = run(
        home,
        "user",
        "add",
        "carol",
        "--unit",
        "Robbery",
        "--role",
        "analyst",
        "--certificate-ref",
        "FR-3",
        "--certificate-expires",
        "2030-06-30",
        "--password-file",
        str(secrets_dir / "carol"),
    )
    assert code == 0, err
    log_in(home, secrets_dir, "bob")
    run_json(home, "admin", "confirm", "1")
    log_in(home, secrets_dir, "carol")
    carol_token = token_path(home).read_text(encoding="utf-8")
    log_in(home, secrets_dir, "alice")
    run_json(home, "user", "disable", "carol")
    token_path(home).write_text(carol_token, encoding="utf-8")
    code, _, err = run(home, "whoami")
    assert code == 1
    assert "the session was ended" in err


def test_an_admin_resets_a_password_and_the_cli_asks_for_a_new_one_first(
    bootstrapped: Path, secrets_dir: Path
) -> None:
    home = bootstrapped
    temporary, chosen = secrets_dir / "temporary", secrets_dir / "chosen"
    temporary.write_text("temporary-from-alice\n", encoding="utf-8")
    chosen.write_text("bob-chose-this-himself\n", encoding="utf-8")
    log_in(home, secrets_dir, "alice")
    code, _, err = run(home, "user", "reset-password", "alice", "--password-file", str(temporary))
    assert code == 1 and "own password" in err
    reset = run_json(home, "user", "reset-password", "bob", "--password-file", str(temporary))
    assert reset["user"]["username"] == "bob" and reset["user"]["reset_pending"] is True

    code, out, _ = run(home, "login", "--user", "bob", "--password-file", str(temporary))
    assert code == 0 and "An admin reset your password" in out
    code, _, err = run(home, "user", "list")
    assert code == 1 and "reset the password of bob" in err
    assert run_json(home, "user", "password", "--password-file", str(chosen))["ok"] is True
    assert run_json(home, "user", "list")["ok"] is True
