"""Expungement and failed searches leave nothing behind, even beside a busy reader.

Issue 12, fault 7: with another connection holding a read transaction, `candor expunge`
deleted the rows, said only that the WAL could not be truncated, and the template's
bytes stayed in candor.db. Fault 8: the evaluation cache kept an expunged person's
template; a failed search left its probe photo in the vault.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.evaluation.cache import extract_photos
from candor.store import FaceTemplate
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    Workflow,
    enrol_files,
    expunge_subject,
    gallery_subject,
    governed,
    request_search,
)
from candor.workflow import expunge as expunge_module
from candor.workflow.accounts import login
from tests.agency import PASSWORD, Agency, make_agency
from tests.support import evaluation_provenance, files_containing, people_with_photos, photos_of
from tests.workflow.test_governed import FORM

pytestmark = [
    pytest.mark.faces,
    pytest.mark.xdist_group("workflow"),
    pytest.mark.sqlite_only(reason="the bytes of candor.db and its WAL"),
]


@pytest.fixture
def agency(tmp_path: Path) -> Agency:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def _enrol(agency: Agency, people: list[Path]) -> None:
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    summary = enrol_files(agency.workflow, agency["admin1"], requests, evaluation_provenance())
    assert summary.count(EnrolmentStatus.ENROLLED) == len(people), summary.outcomes


def _template_bytes(workflow: Workflow, agency: Agency, subject_ref: str) -> bytes:
    detail = gallery_subject(workflow, agency["admin1"], subject_ref)
    with workflow.workspace.session() as session:
        row = session.get(FaceTemplate, detail.images[0].templates[0].id)
        assert row is not None
        return row.vector


def _database_files_holding(home: Path, blob: bytes) -> list[str]:
    windows = [blob[start : start + 16] for start in range(0, len(blob) - 15, 16)]
    return sorted(
        {path.name for window in windows for path in files_containing(home, window)}
        & {"candor.db", "candor.db-wal"}
    )


def test_expunge_beside_an_open_reader_says_what_remains_and_scrub_finishes_it(
    agency: Agency, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The expungement waits this long for the reader before it leaves the scrub owed.
    monkeypatch.setattr(expunge_module, "SCRUB_WAIT_MS", 100, raising=False)
    workflow = agency.workflow
    home = workflow.workspace.home
    people = people_with_photos(faces_dir, 3)
    _enrol(agency, people)
    victim = people[1].name
    blob = _template_bytes(workflow, agency, victim)
    workflow.workspace.vault.scrub_database(workflow.workspace.engine)
    assert _database_files_holding(home, blob) == ["candor.db"]
    save_token(home, login(workflow, "admin1", PASSWORD).token)
    runner = CliRunner()
    environment = {"CANDOR_HOME": str(home)}
    # One admin asks (issue 14: with a reason), another confirms: the confirmation expunges.
    asked = runner.invoke(
        app, ["expunge", victim, "--yes", "--reason", "court order", "--json"], env=environment
    )
    assert asked.exit_code == 0, asked.stderr
    change = json.loads(asked.stdout)["change"]["id"]
    save_token(home, login(workflow, "admin2", PASSWORD).token)

    # Another program reads the database and keeps its transaction open.
    reader = sqlite3.connect(home / "candor.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM subjects").fetchone()
    result = runner.invoke(app, ["admin", "confirm", str(change), "--json"], env=environment)

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    # Exactly what remains, and what finishes it.
    assert "remain in candor.db and candor.db-wal" in payload["error"]
    assert "candor scrub" in payload["error"]
    assert payload["change"]["state"] == "confirmed"
    assert len(payload["change"]["remaining"]) == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"candor: error: confirmed change {change}")
    assert _database_files_holding(home, blob) == ["candor.db"]

    reader.rollback()
    # The reader's connection stays open: SQLite would checkpoint by itself when the
    # last connection closed, and `candor scrub` must not depend on that.
    result = runner.invoke(app, ["scrub", "--json"], env=environment)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["scrubbed"] is True
    assert _database_files_holding(home, blob) == []
    reader.close()


def test_expunge_erases_the_photos_evaluation_cache_entries(
    agency: Agency, faces_dir: Path
) -> None:
    people = people_with_photos(faces_dir, 2)
    _enrol(agency, people)
    victim, keeper = (photos_of(person)[0] for person in people)
    # The same photos were evaluated too: the cache holds their templates.
    extract_photos([victim, keeper])
    assert [outcome.cached for outcome in extract_photos([victim, keeper])] == [True, True]

    expunge_subject(agency.workflow, agency["admin1"], people[0].name)

    assert [outcome.cached for outcome in extract_photos([victim, keeper])] == [False, True]


def test_a_search_that_fails_leaves_no_probe_photo(
    agency: Agency, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = people_with_photos(faces_dir, 2)
    _enrol(agency, people)
    probes = agency.workflow.workspace.home / "probes"

    def failing_record(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(governed, "record", failing_record)
    with pytest.raises(RuntimeError, match="disk filled up"):
        request_search(agency.workflow, agency["ana"], photos_of(people[0])[1], FORM)
    assert [path for path in probes.rglob("*") if path.is_file()] == []
    assert list(probes.iterdir()) == []
