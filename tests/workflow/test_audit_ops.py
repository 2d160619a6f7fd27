"""The audit log as an auditor meets it: verify, prove, checkpoint, export, outside check."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from candor.audit import ProofError, verify_inclusion
from candor.workflow import PermissionDeniedError
from candor.workflow.audit_ops import (
    checkpoint_now,
    export_log,
    prove_entry,
    verify_export_folder,
    verify_log,
)
from tests.agency import Agency, make_agency, new_user


@pytest.fixture
def agency(tmp_path: Path) -> Agency:
    made = make_agency(tmp_path)
    made.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    yield made
    made.workflow.close()


def test_only_auditors_read_the_log(agency: Agency) -> None:
    with pytest.raises(PermissionDeniedError):
        verify_log(agency.workflow, agency["ana"])
    assert verify_log(agency.workflow, agency["ada"]).ok


def test_export_is_audited_and_verifies_outside(agency: Agency, tmp_path: Path) -> None:
    info = export_log(agency.workflow, agency["ada"], tmp_path / "export")
    report = verify_export_folder(tmp_path / "export")
    assert report.ok, report.problem
    assert report.unchecked_tail == ()
    assert report.entries == info.tree_size
    last = (tmp_path / "export" / "entries.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["action"] == "audit.exported"
    assert json.loads(last)["actor"] == "ada"


def test_a_rewrite_before_a_held_checkpoint_is_detected(agency: Agency, tmp_path: Path) -> None:
    held = export_log(agency.workflow, agency["ada"], tmp_path / "first")
    held_note = tmp_path / "held.note"
    held_note.write_text(held.note)
    # Whoever holds the database rewrites entry 3 and every later link and checkpoint
    # would still be caught against the held note; here they change it in place.
    with agency.workflow.workspace.engine.begin() as connection:
        body = connection.execute(text("SELECT body FROM audit_entries WHERE seq = 3")).scalar_one()
        connection.execute(
            text("UPDATE audit_entries SET body = :body WHERE seq = 3"),
            {"body": bytes(body).replace(b'"admin', b'"admix', 1)},
        )
    report = verify_log(agency.workflow, agency["ada"], [held_note])
    assert not report.ok
    assert report.first_bad_seq == 3


def test_inclusion_proof_of_an_entry_checks_against_its_checkpoint(agency: Agency) -> None:
    checkpoint_now(agency.workflow, agency["admin1"])
    proof = prove_entry(agency.workflow, agency["ada"], 5)
    verify_inclusion(
        bytes.fromhex(proof.leaf_hash),
        proof.seq - 1,
        proof.tree_size,
        [bytes.fromhex(node) for node in proof.proof],
        bytes.fromhex(proof.root_hash),
    )
    forged = bytes.fromhex(proof.leaf_hash)[:-1] + b"\x00"
    with pytest.raises(ProofError):
        verify_inclusion(
            forged,
            proof.seq - 1,
            proof.tree_size,
            [bytes.fromhex(node) for node in proof.proof],
            bytes.fromhex(proof.root_hash),
        )


def test_checkpoints_follow_the_configured_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select

    from candor.store import AuditCheckpoint

    monkeypatch.setenv("CANDOR_CHECKPOINT_EVERY", "5")
    monkeypatch.setenv("CANDOR_CHECKPOINT_SECONDS", "3600")
    agency = make_agency(tmp_path)
    with agency.workflow.workspace.session() as session:
        sizes = list(session.scalars(select(AuditCheckpoint.tree_size)))
    agency.workflow.close()
    assert len(sizes) >= 4
    assert all(later - earlier <= 5 for earlier, later in itertools.pairwise(sizes))


def test_entries_rolled_back_leave_no_gap_in_the_chain(agency: Agency) -> None:
    from candor.workflow.audit_trail import record

    workflow = agency.workflow
    with workflow.workspace.session() as session:
        with session.begin():
            first = record(session, workflow, "ana", "test.kept", {}, {})
            assert record(session, workflow, "ana", "test.kept", {}, {}) == first + 1
        session.begin()
        record(session, workflow, "ana", "test.dropped", {}, {})
        session.rollback()
        with session.begin():
            savepoint = session.begin_nested()
            record(session, workflow, "ana", "test.dropped", {}, {})
            savepoint.rollback()
            assert record(session, workflow, "ana", "test.kept", {}, {}) == first + 2
            assert record(session, workflow, "ana", "test.kept", {}, {}) == first + 3
    assert verify_log(workflow, agency["ada"]).ok
