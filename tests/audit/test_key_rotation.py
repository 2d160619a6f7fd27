"""Issue 12, fault 3: a key changes only by an audited rotation, whose old public key
stays with the log so that what it signed still verifies; a workspace made before
witnesses gets its first one only from a log that verifies; item 11, `candor keys show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.audit import KeyRing, SigningKey, open_checkpoint
from candor.audit.verifier import main as outside_verifier
from candor.cli.app import app
from candor.store import Workspace
from candor.workflow import PermissionDeniedError, Workflow, WorkflowError
from candor.workflow.audit_ops import (
    KeyRotation,
    checkpoint_now,
    export_log,
    rotate_signing_key,
    verify_export_folder,
    verify_log,
)

from .conftest import Log
from .tamper import delete_checkpoints, rewrite_and_relink

runner = CliRunner()


def test_only_an_admin_rotates_the_key(log: Log) -> None:
    for name in ("ada", "ana"):
        with pytest.raises(PermissionDeniedError):
            _rotate(log, name)


def _rotate(log: Log, name: str = "admin1") -> KeyRotation:
    return rotate_signing_key(log.workflow, log[name])


def test_after_a_rotation_old_checkpoints_still_verify(log: Log, tmp_path: Path) -> None:
    before = export_log(log.workflow, log["ada"], tmp_path / "before")
    held = tmp_path / "held.note"
    held.write_text(before.note, encoding="utf-8")
    old_public = SigningKey.load(log.key).verifier_key()

    rotation = _rotate(log)
    new_public = SigningKey.load(log.key).verifier_key()
    assert new_public != old_public
    assert (rotation.previous_key, rotation.key) == (old_public, new_public)
    assert rotation.previous_key_signed
    assert not log.key.with_name(log.key.name + ".new").exists()
    # The hand-over checkpoint carries both signatures.
    handover = rotation.note
    assert open_checkpoint(handover, old_public).size == open_checkpoint(handover, new_public).size
    log.add_entries(12)  # automatic checkpoints, now signed by the new key alone
    report = verify_log(log.workflow, log["ada"], [held])
    assert report.ok, report.problem

    export_log(log.workflow, log["ada"], tmp_path / "after")
    keys = KeyRing.parse((tmp_path / "after" / "audit.keys").read_text())
    assert [str(span.key) for span in keys.spans] == [old_public, new_public]
    assert keys.spans[0].last_size == keys.spans[1].first_size == rotation.tree_size
    assert (tmp_path / "after" / "audit.vkey").read_text() == new_public + "\n"
    assert verify_export_folder(tmp_path / "after", [held]).ok
    assert outside_verifier([str(tmp_path / "after"), "--against", str(held)]) == 0
    entries = (tmp_path / "after" / "entries.jsonl").read_text().splitlines()
    rotated = [json.loads(line) for line in entries if '"audit.key_rotated"' in line]
    assert [entry["actor"] for entry in rotated] == ["admin1"]
    assert rotated[0]["details"]["previous_key"] == old_public


def test_a_lost_key_is_replaced_only_by_a_rotation(log: Log, tmp_path: Path) -> None:
    log.key.unlink()
    rotation = _rotate(log)
    assert not rotation.previous_key_signed
    assert log.key.exists()
    checkpoint_now(log.workflow, log["admin1"])
    assert verify_log(log.workflow, log["ada"]).ok
    export_log(log.workflow, log["ada"], tmp_path / "export")
    assert verify_export_folder(tmp_path / "export").ok


def test_a_rotation_cut_short_before_it_committed_leaves_the_old_key(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candor.workflow import audit_ops

    old_public = SigningKey.load(log.key).verifier_key()

    def disk_full(*args: object, **kwargs: object) -> object:
        raise WorkflowError("the disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(audit_ops, "make_checkpoint", disk_full)
        with pytest.raises(WorkflowError, match="disk is full"):
            _rotate(log)
    assert SigningKey.load(log.key).verifier_key() == old_public
    assert not log.key.with_name(log.key.name + ".new").exists()
    checkpoint_now(log.workflow, log["admin1"])
    assert verify_log(log.workflow, log["ada"]).ok


def test_a_rotation_committed_but_not_moved_into_place_finishes_later(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candor.workflow import audit_trail

    with monkeypatch.context() as patched:
        # As if the process died between the commit and moving the new key into place.
        patched.setattr(audit_trail, "_move_key_into_place", lambda source, target: None)
        rotation = _rotate(log)
    pending = log.key.with_name(log.key.name + ".new")
    assert pending.exists()
    log.add_entries(6)  # signs with the pending key, then moves it into place
    assert not pending.exists()
    assert SigningKey.load(log.key).verifier_key() == rotation.key
    assert verify_log(log.workflow, log["ada"]).ok


def _old_release(log: Log) -> None:
    """Make the copy look like a workspace of the release before witnesses existed."""
    marker = log.home / "candor-workspace.json"
    content = json.loads(marker.read_text())
    content.pop("audit_witness")
    marker.write_text(json.dumps(content))
    log.witness.unlink()


def test_a_workspace_from_before_witnesses_gets_one_on_first_use(log: Log) -> None:
    log.workflow.close()
    _old_release(log)
    with Workflow(Workspace.open(log.home)) as workflow:
        assert verify_log(workflow, log["ada"]).ok
        witness = json.loads(log.witness.read_text())
        assert witness["started"].startswith("trust on first use")
        checkpoint_now(workflow, log["admin1"])
    assert json.loads((log.home / "candor-workspace.json").read_text())["audit_witness"] is True
    log.witness.unlink()  # from now on, a missing witness is an error
    with (
        Workflow(Workspace.open(log.home)) as workflow,
        pytest.raises(WorkflowError, match="is missing"),
    ):
        checkpoint_now(workflow, log["admin1"])


def test_no_witness_is_made_from_a_log_that_does_not_verify(log: Log) -> None:
    log.workflow.close()
    _old_release(log)
    rewrite_and_relink(log.home, 3)
    delete_checkpoints(log.home, 40)
    with (
        Workflow(Workspace.open(log.home)) as workflow,
        pytest.raises(WorkflowError, match="none is made from a log that does not verify"),
    ):
        checkpoint_now(workflow, log["admin1"])
    assert not log.witness.exists()


def test_keys_show_says_where_each_key_lives_and_nothing_secret(log: Log) -> None:
    done = runner.invoke(app, ["keys", "show", "--json", "--home", str(log.home)])
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert shown["signing_key"]["path"] == str(log.key)
    assert shown["signing_key"]["verifier_key"] == SigningKey.load(log.key).verifier_key()
    assert shown["witness"]["path"] == str(log.witness)
    assert shown["witness"]["tree_size"] > 0
    assert shown["key_encryption_key"]["path"] == str(log.workflow.workspace.keys.kek_path)
    assert shown["key_encryption_key"]["problem"] is None
    secret = log.key.read_text().strip().rsplit("+", 1)[1]
    assert "PRIVATE" not in done.stdout and secret not in done.stdout
    log.key.unlink()
    done = runner.invoke(app, ["keys", "show", "--json", "--home", str(log.home)])
    assert json.loads(done.stdout)["signing_key"]["exists"] is False
