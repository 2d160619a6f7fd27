"""Two processes write to one workspace at once: each waits its turn, none fails.

Each case runs `enrol_files` in spawned processes, as `candor enrol` does: photos are
read first, then enrolled one transaction after another, so the two processes'
transactions interleave closely.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from candor.store import SearchRequest, Workspace
from candor.workflow import (
    Actor,
    EnrolmentRequest,
    Workflow,
    audit_ops,
    enrol_files,
    governed,
    reconciliation,
    request_search,
    request_verify,
)
from candor.workflow.demo_photos import probe_variants, save_photos
from tests.agency import Agency, make_agency
from tests.workflow.test_governed import FORM, PROVENANCE

pytestmark = pytest.mark.xdist_group("workflow")

PHOTOS_PER_PROCESS = 12


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


def enrol_in_own_process(home: Path, actor: Actor, photos: list[Path], prefix: str) -> list[str]:
    """What `candor enrol` does in its own process; returns each photo's status."""
    with Workflow(Workspace.open(home)) as workflow:
        requests = [
            EnrolmentRequest(photo, f"{prefix}-{number}") for number, photo in enumerate(photos)
        ]
        summary = enrol_files(workflow, actor, requests, PROVENANCE, workers=1)
    return [outcome.status.value for outcome in summary.outcomes]


def photo_batches(folder: Path, batches: int) -> list[list[Path]]:
    pictures = probe_variants(PHOTOS_PER_PROCESS * batches, seed=7)
    paths = sorted(save_photos(pictures, folder).values())
    return [paths[start::batches] for start in range(batches)]


def test_two_enrolments_at_once_both_complete(agency: Agency, tmp_path: Path) -> None:
    home = agency.workflow.workspace.home
    first, second = photo_batches(tmp_path / "photos", 2)
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        runs = [
            pool.submit(enrol_in_own_process, home, agency["admin1"], first, "FIRST"),
            pool.submit(enrol_in_own_process, home, agency["admin2"], second, "SECOND"),
        ]
        statuses = [run.result() for run in runs]
    assert statuses == [["enrolled"] * PHOTOS_PER_PROCESS] * 2


def test_searches_while_another_process_enrols_all_complete(agency: Agency, tmp_path: Path) -> None:
    home = agency.workflow.workspace.home
    enrolled, probes = photo_batches(tmp_path / "photos", 2)
    searches = 0
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        run = pool.submit(enrol_in_own_process, home, agency["admin1"], enrolled, "GALLERY")
        while not run.done():
            # Any outcome will do (a probe searched before waits for approval); what may
            # not happen is an error.
            request_search(agency.workflow, agency["ana"], probes[searches % len(probes)], FORM)
            searches += 1
        assert run.result() == ["enrolled"] * PHOTOS_PER_PROCESS
    assert searches > 0


def others_may_write(database: Path) -> None:
    """Fail at once (no waiting: timeout=0) if any connection holds the write lock."""
    other = sqlite3.connect(database, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


@pytest.mark.sqlite_only(reason="SQLite's write lock (BEGIN IMMEDIATE)")
def test_a_verify_compares_its_photos_while_others_may_write(
    agency: Agency, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = save_photos(probe_variants(2, seed=3), tmp_path / "photos")
    compare = governed._compare_photos

    def while_another_process_writes(
        workflow: Workflow, session: Session, row: SearchRequest
    ) -> governed._Comparison:
        others_may_write(workflow.workspace.database_path)
        return compare(workflow, session, row)

    monkeypatch.setattr(governed, "_compare_photos", while_another_process_writes)
    outcome = request_verify(
        agency.workflow, agency["ana"], photos["collins-00.jpg"], photos["hopper-01.jpg"], FORM
    )
    assert outcome.status == "completed"
    assert outcome.verification is not None


@pytest.mark.sqlite_only(reason="SQLite's write lock (BEGIN IMMEDIATE)")
def test_audit_verification_reads_while_others_may_write(
    agency: Agency, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = agency.workflow.workspace.database_path
    check_log, read_rows = audit_ops.check_stored_log, reconciliation.read_reconciled_rows

    def checking_the_log(session: Session, *args: Any) -> Any:
        others_may_write(database)
        return check_log(session, *args)

    def reading_the_rows(session: Session) -> Any:
        others_may_write(database)
        return read_rows(session)

    monkeypatch.setattr(audit_ops, "check_stored_log", checking_the_log)
    monkeypatch.setattr(reconciliation, "read_reconciled_rows", reading_the_rows)
    assert audit_ops.verify_log(agency.workflow, agency["sam"]).ok
