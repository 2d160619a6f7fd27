"""A small agency's workspace with a few hundred log entries and frequent checkpoints,
made once and copied for each test that tampers with it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from candor.store import Workspace
from candor.workflow import Actor, Workflow
from candor.workflow.audit_trail import record
from tests.agency import make_agency, new_user
from tests.support import copy_workspace

EVERY = "5"


@dataclass
class Log:
    """A copy of the template workspace, open, with its people."""

    workflow: Workflow
    actors: dict[str, Actor]
    home: Path

    @property
    def key(self) -> Path:
        return self.home / "keys" / "audit-signing.key"

    @property
    def witness(self) -> Path:
        return self.home / "keys" / "audit-signing.key.witness"

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    def add_entries(self, count: int) -> None:
        """`count` entries of routine activity, in one transaction each."""
        for _ in range(count):
            with self.workflow.workspace.session() as session, session.begin():
                record(session, self.workflow, "ana", "test.routine", {}, {})


def _schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_CHECKPOINT_EVERY", EVERY)
    monkeypatch.setenv("CANDOR_CHECKPOINT_SECONDS", "3600")
    monkeypatch.delenv("CANDOR_AUDIT_KEY", raising=False)


@pytest.fixture(scope="session")
def template_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Actor]]:
    home = tmp_path_factory.mktemp("audit-template")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _schedule(monkeypatch)
        agency = make_agency(home)
        agency.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
        log = Log(agency.workflow, agency.actors, home / "ws")
        log.add_entries(60)
        agency.workflow.close()
    return home / "ws", dict(agency.actors)


@pytest.fixture
def log(
    template_log: tuple[Path, dict[str, Actor]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Log]:
    _schedule(monkeypatch)
    source, actors = template_log
    home = tmp_path / "ws"
    copy_workspace(source, home)
    with Workflow(Workspace.open(home)) as workflow:
        yield Log(workflow, actors, home)
