"""The logged-in user of this workspace, from the session token `candor login` left."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from candor.cli.output import fail
from candor.workflow import Actor, Workflow, authenticate, open_workflow

SESSIONS_FOLDER = "sessions"


def token_path(home: Path) -> Path:
    """Where this login name's session token lives in the workspace (mode 0600)."""
    return home / SESSIONS_FOLDER / f"{getpass.getuser()}.token"


def read_token(home: Path) -> str | None:
    """The saved session token, or None when nobody is logged in here."""
    path = token_path(home)
    return path.read_text().strip() if path.is_file() else None


@contextmanager
def logged_in(home: Path | None, as_json: bool) -> Iterator[tuple[Workflow, Actor]]:
    """The workspace's workflow and the logged-in actor; refuses with how to log in."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with open_workflow(home) as workflow:
        actor = authenticate(workflow, read_token(workflow.workspace.home))
        yield workflow, actor
