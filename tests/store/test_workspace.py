"""Creating, opening and refusing workspaces."""

from __future__ import annotations

import json
import stat
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from candor.store import (
    OPERATIONAL_SOURCES,
    PURPOSES,
    CannotCreateWorkspaceError,
    NotAWorkspaceError,
    Workspace,
    WorkspaceError,
    WorkspaceHomeUnsetError,
    workspace_home_from_env,
)
from candor.store import workspace as workspace_module


@pytest.mark.sqlite_only(reason="the candor.db file and its mode")
def test_create_in_missing_folder_writes_marker_database_and_vault(tmp_path: Path) -> None:
    home = tmp_path / "a" / "ws"
    with Workspace.create(home, purpose="evaluation", timezone="Europe/Berlin") as ws:
        assert ws.home == home
        assert (ws.purpose, ws.timezone) == ("evaluation", "Europe/Berlin")
    marker = json.loads((home / "candor-workspace.json").read_text())
    assert marker["format_version"] == 1
    assert marker["purpose"] == "evaluation"
    assert marker["timezone"] == "Europe/Berlin"
    assert str(uuid.UUID(marker["workspace_id"])) == marker["workspace_id"]
    assert datetime.fromisoformat(marker["created_at"]).utcoffset() is not None
    for folder in ("images", "crops", "tmp"):
        assert (home / folder).is_dir()
    assert (home / "candor.db").is_file()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "candor.db").stat().st_mode) == 0o600


def test_create_in_empty_folder(tmp_path: Path) -> None:
    with Workspace.create(tmp_path) as ws:
        assert ws.purpose == "operational"
        assert ws.timezone == "UTC"


def test_create_refuses_non_empty_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CannotCreateWorkspaceError, match="not empty"):
        Workspace.create(tmp_path)
    assert [entry.name for entry in tmp_path.iterdir()] == ["notes.txt"]


def test_create_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(CannotCreateWorkspaceError, match="not a folder"):
        Workspace.create(target)


def test_create_refuses_an_existing_workspace(workspace: Workspace) -> None:
    with pytest.raises(CannotCreateWorkspaceError):
        Workspace.create(workspace.home)


@pytest.mark.parametrize(
    ("purpose", "timezone", "message"),
    [
        ("production", "UTC", "unknown purpose"),
        ("", "UTC", "unknown purpose"),
        ("operational", "Mars/Olympus", "unknown time zone"),
        ("operational", "../etc/passwd", "unknown time zone"),
    ],
)
def test_create_refuses_bad_settings_without_touching_disk(
    tmp_path: Path, purpose: str, timezone: str, message: str
) -> None:
    home = tmp_path / "ws"
    with pytest.raises(WorkspaceError, match=message):
        Workspace.create(home, purpose=purpose, timezone=timezone)
    assert not home.exists()


def test_failed_create_removes_what_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(workspace_module, "_write_json_atomic", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        Workspace.create(tmp_path / "ws")
    assert not (tmp_path / "ws").exists()
    with pytest.raises(RuntimeError, match="disk full"):
        Workspace.create(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_open_round_trips_settings(tmp_path: Path) -> None:
    with Workspace.create(tmp_path / "ws", purpose="demo", timezone="America/Chicago") as made:
        workspace_id = made.workspace_id
    with Workspace.open(tmp_path / "ws") as ws:
        assert (ws.purpose, ws.timezone, ws.workspace_id) == (
            "demo",
            "America/Chicago",
            workspace_id,
        )
        assert ws.created_at == made.created_at


@pytest.mark.parametrize("kind", ["missing", "empty", "other files"])
def test_open_refuses_non_workspace_and_creates_nothing(tmp_path: Path, kind: str) -> None:
    home = tmp_path / "folder"
    if kind != "missing":
        home.mkdir()
    if kind == "other files":
        (home / "photo.jpg").write_bytes(b"x")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(NotAWorkspaceError) as caught:
        Workspace.open(home)
    assert str(home) in str(caught.value)
    assert "candor init" in str(caught.value)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.sqlite_only(reason="a SQLite file removed from the folder")
def test_open_refuses_workspace_without_database(workspace: Workspace) -> None:
    workspace.close()
    for name in ("candor.db", "candor.db-wal", "candor.db-shm"):
        (workspace.home / name).unlink(missing_ok=True)
    with pytest.raises(WorkspaceError, match="no database"):
        Workspace.open(workspace.home)
    assert not (workspace.home / "candor.db").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format_version", 2, "format version"),
        ("purpose", "casework", "unknown purpose"),
        ("timezone", "Nowhere/Land", "unknown time zone"),
        ("workspace_id", None, "lacks the field"),
    ],
)
def test_open_refuses_bad_marker(
    workspace: Workspace, field: str, value: object, message: str
) -> None:
    marker_path = workspace.home / "candor-workspace.json"
    marker = json.loads(marker_path.read_text())
    marker[field] = value
    marker_path.write_text(json.dumps(marker))
    with pytest.raises(WorkspaceError, match=message):
        Workspace.open(workspace.home)


def test_open_refuses_marker_whose_purpose_was_edited(tmp_path: Path) -> None:
    Workspace.create(tmp_path, purpose="demo").close()
    marker_path = tmp_path / "candor-workspace.json"
    marker = json.loads(marker_path.read_text())
    marker["purpose"] = "operational"
    marker_path.write_text(json.dumps(marker))
    with pytest.raises(WorkspaceError, match="altered"):
        Workspace.open(tmp_path)


@pytest.mark.sqlite_only(reason="a SQLite file moved between folders")
def test_open_refuses_database_of_another_workspace(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "one").close()
    Workspace.create(tmp_path / "two").close()
    (tmp_path / "one" / "candor.db").replace(tmp_path / "two" / "candor.db")
    with pytest.raises(WorkspaceError, match="another workspace"):
        Workspace.open(tmp_path / "two")


def test_open_refuses_unreadable_marker(workspace: Workspace) -> None:
    (workspace.home / "candor-workspace.json").write_text("{not json")
    with pytest.raises(WorkspaceError, match="cannot be read"):
        Workspace.open(workspace.home)


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        ("operational", OPERATIONAL_SOURCES),
        ("evaluation", ("evaluation",)),
        ("demo", ("demo",)),
        ("benchmark", ("benchmark",)),
        ("simulation", ("simulation",)),
    ],
)
def test_allowed_source_types(tmp_path: Path, purpose: str, expected: tuple[str, ...]) -> None:
    assert purpose in PURPOSES
    with Workspace.create(tmp_path, purpose=purpose) as ws:
        assert ws.allowed_source_types() == expected


def test_home_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANDOR_HOME", str(tmp_path))
    assert workspace_home_from_env() == tmp_path
    monkeypatch.setenv("CANDOR_HOME", "  ")
    with pytest.raises(WorkspaceHomeUnsetError, match="candor init"):
        workspace_home_from_env()
    monkeypatch.delenv("CANDOR_HOME")
    with pytest.raises(WorkspaceHomeUnsetError, match="CANDOR_HOME is not set"):
        workspace_home_from_env()
