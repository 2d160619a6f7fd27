"""`candor model` through the command line: add, confirm by another admin, list, show;
refusals are one line on stderr (and one JSON object with --json), never a traceback."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
from argon2 import PasswordHasher, Type
from typer.testing import CliRunner

from candor.cli import accounts, models
from candor.cli.accounts import save_token
from candor.store import Workspace
from candor.workflow import Workflow
from candor.workflow import accounts as accounts_module
from candor.workflow.accounts import NewUser, bootstrap, login
from candor.workflow.workspaces import create_workspace
from tests.faces.test_onnx_models import arcface_file

PASSWORD = "correct horse battery staple"
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    accounts.register(app)
    models.register(app)
    return app


APP = _app()


def _admin(name: str) -> NewUser:
    return NewUser(
        username=name,
        unit="Records",
        certificate_ref=f"FR-{name}",
        certificate_expires=date(2030, 1, 1),
        password=PASSWORD,
        roles=("admin",),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(
        accounts_module,
        "PASSWORD_HASHER",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
    )
    with Workflow(create_workspace(tmp_path / "ws")) as workflow:
        bootstrap(workflow, _admin("alice"), _admin("bob"))
    return tmp_path / "ws"


def _as(home: Path, name: str) -> None:
    with Workflow(Workspace.open(home)) as workflow:
        save_token(home, login(workflow, name, PASSWORD).token)


def _run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(APP, list(args), env={"CANDOR_HOME": str(home), "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _json(home: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = _run(home, *args, "--json")
    return code, json.loads(out)


def test_add_confirm_list_show(home: Path, tmp_path: Path) -> None:
    model = tmp_path / "vendor.onnx"
    arcface_file(model, 64)
    _as(home, "alice")
    code, added = _json(
        home, "model", "add", str(model), "--name", "vendor",
        "--licence", "agency contract 17", "--source", "Vendor X",
    )  # fmt: skip
    assert code == 0 and added["model"]["state"] == "pending"
    assert added["model"]["dimension"] == 64

    code, refused = _json(home, "model", "confirm", "vendor")
    assert code == 1 and refused["ok"] is False
    assert "another admin must" in refused["error"]

    _as(home, "bob")
    code, confirmed = _json(home, "model", "confirm", "vendor")
    assert code == 0 and confirmed["model"]["decided_by"] == "bob"

    code, listed = _json(home, "model", "list")
    assert code == 0
    assert [(m["name"], m["state"]) for m in listed["models"]] == [
        ("dlib", "built in"),
        ("vendor", "confirmed"),
    ]
    assert listed["models"][0]["active"] is True
    code, out, _ = _run(home, "model", "list")
    assert code == 0 and "vendor" in out and "dlib" in out and "unchanged" in out

    code, shown = _json(home, "model", "show", "vendor")
    assert code == 0 and shown["model"]["added_by"] == "alice"
    assert shown["model"]["file_check"] == "unchanged"
    code, out, _ = _run(home, "model", "show", "vendor")
    assert code == 0 and "agency contract 17" in out and "confirmed" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--layout", "NWCH"), "input layout 'NWCH' is not known"),
        (("--name", "dlib"), "built-in model's name"),
        (("--licence", " "), "licence is blank"),
    ],
)
def test_refusals_are_one_line(
    home: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    model = tmp_path / "vendor.onnx"
    arcface_file(model, 64)
    _as(home, "alice")
    options = {"--name": "vendor", "--licence": "contract", "--source": "vendor"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in options.items() for item in pair]
    code, out, err = _run(home, "model", "add", str(model), *flat)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("candor: error: ") and message in err
    assert "Traceback" not in err


def test_a_file_that_is_not_a_model_is_refused(home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    _as(home, "alice")
    code, _, err = _run(
        home, "model", "add", str(text), "--name", "notes", "--licence", "x", "--source", "y"
    )
    assert code == 1 and "not an ONNX model" in err and err.count("\n") == 1
    code, listed = _json(home, "model", "list")
    assert [m["name"] for m in listed["models"]] == ["dlib"]
