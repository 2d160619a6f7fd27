"""`candor check` finds vault files that no record names, and removes them with --fix;
and (issue 15) files not sealed or not opening under their key, probe keys nothing uses,
an index that disagrees with the database, a log that does not verify.

Issue 12, fault 8: a kill -9 during enrolment left image and crop files with no row,
and nothing ever found them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from candor.cli.app import app
from candor.sealing import new_data_key, seal
from candor.simulation.synthetic import noise_png
from candor.store import Workspace
from candor.store.governance import AuditEntry
from candor.store.models import FaceTemplate, GalleryImage
from candor.workflow import Workflow
from candor.workflow.synthetic import SyntheticSubject, enrol_synthetic_subjects
from tests.agency import make_agency

runner = CliRunner()
# The kill harness's test runs only when asked: it takes minutes (bench/kill_harness.py).
KILL_HARNESS_VARIABLE = "CANDOR_KILL_HARNESS"
SHA = hashlib.sha256(b"a photo whose row never committed").hexdigest()


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args], env={"CANDOR_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def _plant_orphans(home: Path) -> list[Path]:
    """Files as an enrolment killed before its commit leaves them, with no record of them
    (a workspace made before Candor kept such records)."""
    planted = []
    for folder, data in (("images", b"photo"), ("crops", b"crop"), ("probes", b"probe")):
        path = home / folder / SHA[:2] / SHA[2:4] / SHA
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        planted.append(path)
    return planted


def test_check_reports_files_no_record_names_and_fix_erases_them(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert run(home, "init", "--purpose", "evaluation")[0] == 0
    planted = _plant_orphans(home)

    code, out, err = run(home, "check", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["found"]["orphan_images"] == [SHA]
    assert report["found"]["orphan_probes"] == [SHA]
    assert "candor check --fix" in err
    assert all(path.exists() for path in planted)  # only reported

    code, out, err = run(home, "check", "--fix", "--json")
    assert code == 0, err
    assert json.loads(out)["fixed"] is True
    assert not any(path.exists() for path in planted)
    for folder in ("images", "crops", "probes"):
        assert list((home / folder).iterdir()) == []

    code, out, _ = run(home, "check")
    assert code == 0
    assert "nothing is left over" in out


def test_check_fix_leaves_files_alone_while_another_process_has_the_workspace(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ws"
    run(home, "init")
    planted = _plant_orphans(home)
    with Workspace.open(home):
        code, out, err = run(home, "check", "--fix", "--json")
    assert code == 1
    assert json.loads(out)["fixed"] is False
    assert "another process has this workspace open" in err
    assert all(path.exists() for path in planted)


# -- what the check sees beyond the vault's files (issue 15) -------------------------------


def _gallery(tmp_path: Path, subjects: int = 2) -> tuple[Path, list[str]]:
    """A simulation workspace with synthetic subjects (one picture each), closed again;
    returns its home and the pictures' content addresses."""
    agency = make_agency(tmp_path, purpose="simulation")
    rng = np.random.default_rng(7)
    batch = [
        SyntheticSubject(
            f"SYN-{number:06d}",
            (noise_png(rng),),
            rng.standard_normal((1, 128)).astype(np.float32),
        )
        for number in range(1, subjects + 1)
    ]
    enrol_synthetic_subjects(
        agency.workflow,
        agency["admin1"],
        [batch],
        first_ref=batch[0].ref,
        last_ref=batch[-1].ref,
        source_ref="test_check",
        seed=7,
    )
    home = agency.workflow.workspace.home
    with agency.workflow.workspace.session() as session:
        hashes = sorted(session.scalars(select(GalleryImage.sha256)))
    agency.workflow.close()
    return home, hashes


def _check(home: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(home, "check", "--json", *extra)
    return code, json.loads(out), err


def test_check_finds_a_plaintext_and_an_undecryptable_file_and_leaves_them(
    tmp_path: Path,
) -> None:
    home, (plain, broken) = _gallery(tmp_path)
    with Workspace.open(home) as workspace:
        vault = workspace.vault
        vault.image_path(plain).write_bytes(b"\x89PNG\r\n\x1a\n as if never sealed")
        # Sealed, but under a key that is no subject's: a file restored from another
        # workspace, or one whose subject's key was destroyed.
        vault.image_path(broken).write_bytes(seal(new_data_key(), b"x", f"image:{broken}"))
        with workspace.session() as session, session.begin():
            template_id = session.scalars(select(FaceTemplate.id).limit(1)).one()
            session.execute(
                update(FaceTemplate)
                .where(FaceTemplate.id == template_id)
                .values(vector=seal(new_data_key(), bytes(512), "template:elsewhere"))
            )

    code, report, err = _check(home)
    assert code == 1
    assert f"images/{plain}" in report["found"]["plaintext"]
    assert f"images/{broken}" in report["found"]["undecryptable"]
    assert f"images/{broken}" not in report["found"]["plaintext"]
    assert f"templates/{template_id}" in report["found"]["undecryptable"]
    assert "candor upgrade" in err
    assert "do not open under their key" in err

    code, report, _ = _check(home, "--fix")
    assert code == 1  # a person must restore or expunge: the fix leaves them
    assert f"images/{broken}" in report["left"]["undecryptable"]
    assert vault.image_path(broken).exists()


def test_check_finds_an_orphan_probe_key_and_fix_destroys_it(tmp_path: Path) -> None:
    home, _ = _gallery(tmp_path, subjects=1)
    with Workspace.open(home) as workspace, workspace.session() as session, session.begin():
        workspace.keys.probe_key(session, SHA, create=True)  # a probe never stored

    code, report, err = _check(home)
    assert code == 1
    assert report["found"]["orphan_probe_keys"] == [SHA]
    assert "probe key(s) nothing uses" in err

    code, report, _ = _check(home, "--fix")
    assert report["fixed"] is True
    assert report["left"]["orphan_probe_keys"] == []
    with Workspace.open(home) as workspace, workspace.session() as session:
        assert SHA not in workspace.keys.probe_owners(session)


def test_check_finds_an_index_that_disagrees_and_fix_rebuilds_it(tmp_path: Path) -> None:
    home, _ = _gallery(tmp_path)
    workflow = Workflow(Workspace.open(home))
    try:
        index = workflow.index
        stored = set(index.live_ids)
        # A template the database never held (an expunged one a crash left in the files).
        index.add([999_999], np.ones((1, 128), np.float32))
        index.flush()
    finally:
        workflow.close()

    code, report, err = _check(home)
    assert code == 1
    assert report["index"]["extra"] == 1
    assert report["index"]["missing"] == 0
    assert "gallery index holds 1 template(s) the database does not" in err

    code, report, _ = _check(home, "--fix")
    assert report["index_found"]["extra"] == 1
    assert report["index"]["extra"] == 0
    assert report["index"]["held"] == len(stored)
    workflow = Workflow(Workspace.open(home))
    try:
        assert set(workflow.index.live_ids) == stored
    finally:
        workflow.close()


def test_check_reports_a_log_that_does_not_verify(tmp_path: Path) -> None:
    home, _ = _gallery(tmp_path, subjects=1)
    with Workspace.open(home) as workspace, workspace.session() as session, session.begin():
        session.execute(
            update(AuditEntry).where(AuditEntry.seq == 2).values(body=b'{"tampered": true}')
        )

    code, report, err = _check(home)
    assert code == 1
    assert report["audit"]["ok"] is False
    assert "candor audit verify" in err


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.sqlite_only("the harness makes its own workspace; its PostgreSQL run is the bench's")
@pytest.mark.skipif(
    os.environ.get(KILL_HARNESS_VARIABLE) != "1",
    reason=f"minutes long: set {KILL_HARNESS_VARIABLE}=1 (the bench runs 50 a database)",
)
def test_kill_harness_three_kills_leave_nothing_inconsistent(faces_dir: Path) -> None:
    from bench.kill_harness import run_harness

    summary = run_harness(
        "sqlite", 3, seed=15, operations=("enrol", "expunge", "search"), progress=False
    )
    assert summary["kills"] == 3
    assert summary["failures"] == []
    assert summary["inconsistencies"] == 0
