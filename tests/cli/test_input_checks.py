"""Bad input on the command line: one line saying what and where, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from typer.testing import CliRunner

from candor.cli.app import app
from candor.workflow import VERDICTS, limits
from candor.workflow import accounts as accounts_module
from tests.agency import PASSWORD, make_agency
from tests.server.support import CASE, demo_photos

runner = CliRunner()


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accounts_module,
        "PASSWORD_HASHER",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    agency = make_agency(tmp_path, purpose="demo")
    agency.workflow.close()
    return agency.workflow.workspace.home


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"CANDOR_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def log_in(home: Path, username: str) -> None:
    result = runner.invoke(
        app,
        ["login", "--user", username],
        env={"CANDOR_HOME": str(home), "CANDOR_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.stderr


def case_options(**changes: str) -> list[str]:
    values = {**CASE, **changes}
    return [
        "--case",
        values["case_number"],
        "--offence",
        values["offence_category"],
        "--purpose",
        values["purpose"],
        "--agency",
        values["requesting_agency"],
        "--unit",
        values["requesting_unit"],
    ]


def test_a_policy_nested_thousands_deep_is_a_one_line_error(home: Path, tmp_path: Path) -> None:
    log_in(home, "admin1")
    deep = tmp_path / "deep.toml"
    deep.write_text("[meta]\nname = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    code, out, err = run(home, "policy", "set", str(deep), "--json")
    assert code == 1
    error = json.loads(out)["error"]
    assert error.startswith(f"{deep}: ") and "nested too deeply" in error
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_case_number_over_the_limit_is_refused_naming_field_and_limit(
    home: Path, tmp_path: Path
) -> None:
    log_in(home, "ana")
    photo = demo_photos(tmp_path / "photos")["collins-probe.jpg"]
    code, out, err = run(home, "search", str(photo), *case_options(case_number="7" * 100_000))
    assert code == 1
    assert out == ""
    assert err == (
        "candor: error: the case number (case_number) has 100,000 characters; "
        f"at most {limits.CASE_NUMBER.max_length} are allowed\n"
    )
    code, out, _ = run(
        home, "verify", str(photo), str(photo), *case_options(requesting_unit="u" * 201), "--json"
    )
    assert code == 1
    assert "requesting unit (requesting_unit) has 201 characters" in json.loads(out)["error"]


def test_an_unknown_verdict_is_refused_listing_the_verdicts(home: Path) -> None:
    log_in(home, "eve")
    code, _, err = run(
        home, "review", "1", "--candidate", "1", "--verdict", "maybe", "--rationale", "eyes"
    )
    assert code == 2  # refused while reading the command line, before any request is read
    assert "'maybe'" in err
    assert all(verdict in err for verdict in VERDICTS)
    shown = runner.invoke(app, ["review", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "|".join(VERDICTS) in shown.stdout  # the choices, in the help
