"""Issue 12, fault 2: the log never signs a tree that does not extend the last one it signed.

The attacker of the issue held the database (sqlite3, or a PostgreSQL client) but not the
key folder: they rewrote an entry and re-linked the rest, or cut the last 30 entries, and
deleted the checkpoint rows that would have given them away. Each test checks `audit verify`,
`audit export` (which signed a new checkpoint over the forgery), the automatic
checkpoints, and the outside verifier on an export written by hand from the database.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.audit.verifier import main as outside_verifier
from candor.store import AuditCheckpoint
from candor.workflow import WorkflowError
from candor.workflow.audit_ops import checkpoint_now, export_log, verify_export_folder, verify_log
from candor.workflow.audit_trail import make_checkpoint, record
from tests.support import raw_sql

from .conftest import Log
from .tamper import cut_log, delete_checkpoints, export_by_hand, rewrite_and_relink


def witness_size(log: Log) -> int:
    note = json.loads(log.witness.read_text())["checkpoint"]
    return int(note.split("\n")[1])


def refused_everywhere(log: Log, tmp_path: Path) -> None:
    """verify fails, export and checkpoints refuse, and a hand-made export fails outside."""
    report = verify_log(log.workflow, log["ada"])
    assert not report.ok
    with pytest.raises(WorkflowError, match="does not verify"):
        export_log(log.workflow, log["ada"], tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(WorkflowError, match="does not verify"):
        checkpoint_now(log.workflow, log["admin1"])
    # The automatic checkpoint (due every 5 entries) refuses too, and its action with it.
    with pytest.raises(WorkflowError, match="nothing more is signed"):
        log.add_entries(6)
    by_hand = export_by_hand(log.home, log.key, tmp_path / "by-hand")
    assert outside_verifier([str(by_hand)]) == 1
    assert not verify_export_folder(by_hand).ok


def test_a_rewritten_entry_relinked_with_every_checkpoint_deleted_is_refused(
    log: Log, tmp_path: Path
) -> None:
    log.workflow.workspace.close()
    rewrite_and_relink(log.home, 3)
    assert delete_checkpoints(log.home) > 10
    report = verify_log(log.workflow, log["ada"])
    assert "witness" in (report.problem or "")
    refused_everywhere(log, tmp_path)


def test_the_last_30_entries_cut_with_their_checkpoints_are_refused(
    log: Log, tmp_path: Path
) -> None:
    with log.workflow.workspace.session() as session:
        signed = max(session.scalars(select(AuditCheckpoint.tree_size)))
    log.workflow.workspace.close()
    left = cut_log(log.home, 30)
    assert left < signed
    report = verify_log(log.workflow, log["ada"])
    assert report.first_bad_seq == left + 1
    assert f"entries {left + 1}..{signed} were removed" in (report.problem or "")
    refused_everywhere(log, tmp_path)


def test_checkpoint_rows_deleted_alone_fail_verification(log: Log) -> None:
    log.workflow.workspace.close()
    delete_checkpoints(log.home)
    report = verify_log(log.workflow, log["ada"])
    assert not report.ok
    assert f"no checkpoint of size {witness_size(log)}" in (report.problem or "")


def test_an_old_checkpoint_row_deleted_is_noticed(log: Log) -> None:
    log.workflow.workspace.close()
    raw_sql(
        log.home,
        "DELETE FROM audit_checkpoints WHERE tree_size = "
        "(SELECT tree_size FROM audit_checkpoints ORDER BY tree_size LIMIT 1 OFFSET 2)",
    )
    report = verify_log(log.workflow, log["ada"])
    assert not report.ok and "checkpoints were removed" in (report.problem or "")
    with pytest.raises(WorkflowError, match="checkpoint rows were removed"):
        log.add_entries(6)


def test_a_log_that_already_fails_is_not_exported_nor_signed_again(
    log: Log, tmp_path: Path
) -> None:
    # An entry edited in place (no re-linking): the chain breaks, checkpoints stay.
    log.workflow.workspace.close()
    ((body,),) = raw_sql(log.home, "SELECT body FROM audit_entries WHERE seq = 4")[1]
    raw_sql(
        log.home,
        "UPDATE audit_entries SET body = ? WHERE seq = 4",
        bytes(body).replace(b'"admin', b'"admix', 1),  # type: ignore[call-overload]
    )
    before = raw_sql(log.home, "SELECT count(*) FROM audit_checkpoints")[1]
    with pytest.raises(WorkflowError, match="does not verify"):
        export_log(log.workflow, log["ada"], tmp_path / "export")
    with pytest.raises(WorkflowError, match="does not verify"):
        checkpoint_now(log.workflow, log["ada"])
    assert raw_sql(log.home, "SELECT count(*) FROM audit_checkpoints")[1] == before


def test_the_witness_follows_every_signed_checkpoint_and_goes_in_every_export(
    log: Log, tmp_path: Path
) -> None:
    info = export_log(log.workflow, log["ada"], tmp_path / "export")
    assert witness_size(log) == info.tree_size
    exported = (tmp_path / "export" / "witness.note").read_text(encoding="utf-8")
    assert exported == json.loads(log.witness.read_text())["checkpoint"] == info.note
    report = verify_export_folder(tmp_path / "export")
    assert report.ok, report.problem
    assert report.witness_size == info.tree_size
    log.add_entries(12)
    assert witness_size(log) > info.tree_size
    # The witness is written whole or not at all, and only its owner may read it.
    assert log.witness.stat().st_mode & 0o077 == 0
    assert not [p for p in log.witness.parent.iterdir() if p.name.startswith(".witness-")]


def test_the_outside_verifier_needs_the_exported_witness(log: Log, tmp_path: Path) -> None:
    export_log(log.workflow, log["ada"], tmp_path / "export")
    assert outside_verifier([str(tmp_path / "export")]) == 0
    (tmp_path / "export" / "witness.note").unlink()
    assert outside_verifier([str(tmp_path / "export")]) == 1


def test_a_missing_witness_is_an_error_never_a_fresh_start(log: Log, tmp_path: Path) -> None:
    log.witness.unlink()
    with pytest.raises(WorkflowError, match=f"witness {log.witness} is missing"):
        checkpoint_now(log.workflow, log["admin1"])
    with pytest.raises(WorkflowError, match="is missing"):
        verify_log(log.workflow, log["ada"])
    with pytest.raises(WorkflowError, match="is missing"):
        export_log(log.workflow, log["ada"], tmp_path / "export")
    assert not log.witness.exists()


def test_a_checkpoint_rolled_back_leaves_the_witness_where_it_was(log: Log) -> None:
    workflow = log.workflow
    before = log.witness.read_bytes()
    with workflow.workspace.session() as session:
        session.begin()
        record(session, workflow, "ana", "test.dropped", {}, {})
        assert make_checkpoint(session, workflow) is not None
        session.rollback()
        with session.begin():
            savepoint = session.begin_nested()
            record(session, workflow, "ana", "test.dropped", {}, {})
            assert make_checkpoint(session, workflow) is not None
            savepoint.rollback()
    assert log.witness.read_bytes() == before
    with workflow.workspace.session() as session, session.begin():
        record(session, workflow, "ana", "test.kept", {}, {})
        row = make_checkpoint(session, workflow)
        assert row is not None
        size = row.tree_size
    assert witness_size(log) == size
    assert verify_log(workflow, log["ada"]).ok


def test_a_witness_left_behind_by_a_crash_catches_up(log: Log) -> None:
    # A copy of the witness from before the last checkpoints: as if the process died
    # between committing them and writing the witness.
    stale = log.witness.read_bytes()
    log.add_entries(11)
    newer = witness_size(log)
    log.witness.write_bytes(stale)
    assert verify_log(log.workflow, log["ada"]).ok
    log.add_entries(5)
    assert witness_size(log) > newer
    with log.workflow.workspace.session() as session:
        sizes = list(session.scalars(select(AuditCheckpoint.tree_size)))
    assert witness_size(log) == max(sizes)


def test_the_witness_lives_beside_a_key_kept_outside_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candor.workflow.workspaces import create_workspace

    outside = tmp_path / "secure"
    monkeypatch.setenv("CANDOR_AUDIT_KEY", str(outside / "unit.key"))
    workspace = create_workspace(tmp_path / "ws", purpose="evaluation")
    workspace.close()
    assert sorted(path.name for path in outside.iterdir()) == ["unit.key", "unit.key.witness"]
    assert not (tmp_path / "ws" / "keys").exists()
    witness = json.loads((outside / "unit.key.witness").read_text())
    assert witness["checkpoint"] is None and len(witness["keys"]) == 1
    # A second workspace may not take over the first one's key and witness.
    with pytest.raises(WorkflowError, match="already exists"):
        create_workspace(tmp_path / "ws2", purpose="evaluation")
    assert not (tmp_path / "ws2").exists()
    shutil.rmtree(outside)


def test_a_witness_that_cannot_be_written_stops_the_next_signature(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candor.workflow import audit_trail

    before = witness_size(log)

    def disk_full(path: Path, data: bytes, prefix: str, *, replace: bool = True) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(audit_trail, "write_file_atomic", disk_full)
        # The checkpoint commits (the witness lags, which is safe) ...
        log.add_entries(5)
        assert witness_size(log) == before
        # ... but the next one will not sign past a witness it cannot bring up to date.
        with pytest.raises(WorkflowError, match="No space left on device"):
            log.add_entries(5)
    log.add_entries(5)
    with log.workflow.workspace.session() as session:
        sizes = list(session.scalars(select(AuditCheckpoint.tree_size)))
    assert witness_size(log) == max(sizes)
    assert verify_log(log.workflow, log["ada"]).ok
