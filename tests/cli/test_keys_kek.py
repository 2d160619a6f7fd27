"""Issue 15, item 1: the key-encryption key (KEK) as an administrator meets it.

`candor init --kek-file` uses or makes the KEK and says to back it up apart from the
workspace; `candor keys show` names it, and says what is wrong when the workspace refuses
it; `candor keys rotate --kek NEW_FILE` re-wraps every data key under a new KEK (an admin's
audited action naming both fingerprints, never a key), refuses the current KEK, and
leaves the old file for the operator to destroy once older backups are gone.
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from candor.cli import demo
from candor.cli.app import app
from candor.cli.output import reported_errors
from candor.index import GalleryIndex, IndexFolderError
from candor.sealing import (
    KeyFileError,
    UndecryptableError,
    WrongKeyError,
    create_key_file,
    key_fingerprint,
    read_key_file,
)
from candor.simulation.synthetic import noise_png
from candor.store import Workspace
from candor.store.data_keys import KEK_FILE_VARIABLE, kek_record
from candor.store.governance import AuditEntry
from candor.workflow import Workflow
from candor.workflow.audit_ops import verify_stored_log
from candor.workflow.keys import rotate_kek
from candor.workflow.synthetic import SyntheticSubject, enrol_synthetic_subjects
from tests.agency import PASSWORD, make_agency
from tests.support import copy_workspace

runner = CliRunner()


def run(home: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    done = runner.invoke(app, [*args, "--home", str(home), "--json"])
    return done.exit_code, json.loads(done.stdout or "{}"), done.stderr


@pytest.fixture(autouse=True)
def _no_kek_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEK_FILE_VARIABLE, raising=False)


def test_init_makes_the_kek_file_owner_only_and_says_to_back_it_up(tmp_path: Path) -> None:
    kek = tmp_path / "secrets" / "ws.kek"
    done = runner.invoke(app, ["init", "--home", str(tmp_path / "ws"), "--kek-file", str(kek)])
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    assert str(kek) in done.stdout and "apart from the workspace" in done.stdout
    code, shown, _ = run(tmp_path / "ws", "keys", "show")
    assert code == 0
    entry = shown["key_encryption_key"]
    assert entry["path"] == str(kek) and entry["set_by"] == "workspace" and entry["exists"]
    assert entry["fingerprint"] == entry["file_fingerprint"] == key_fingerprint(read_key_file(kek))
    assert entry["problem"] is None
    assert entry["data_keys"] == {"subject": 0, "probe": 0, "index": 0}
    assert kek.read_text().strip() not in json.dumps(shown)


def test_init_uses_a_kek_file_that_exists(tmp_path: Path) -> None:
    key = create_key_file(tmp_path / "kept.kek")
    code, made, _ = run(tmp_path / "ws", "init", "--kek-file", str(tmp_path / "kept.kek"))
    assert code == 0
    assert made["key_encryption_key"] == {
        "path": str(tmp_path / "kept.kek"),
        "fingerprint": key_fingerprint(key),
    }
    assert read_key_file(tmp_path / "kept.kek") == key


def test_keys_show_says_what_is_wrong_when_the_kek_is_missing_or_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "ws"
    assert run(home, "init", "--kek-file", str(tmp_path / "kek"))[0] == 0
    assert run(tmp_path / "other", "init", "--kek-file", str(tmp_path / "other.kek"))[0] == 0
    (tmp_path / "kek").rename(tmp_path / "moved.kek")
    code, shown, _ = run(home, "keys", "show")
    assert code == 0
    entry = shown["key_encryption_key"]
    assert entry["path"] == str(tmp_path / "kek") and entry["exists"] is False
    assert "does not exist" in entry["problem"]
    assert KEK_FILE_VARIABLE in entry["problem"]

    monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "other.kek"))
    code, shown, _ = run(home, "keys", "show")
    entry = shown["key_encryption_key"]
    assert entry["set_by"] == KEK_FILE_VARIABLE and entry["exists"] is True
    assert entry["file_fingerprint"] != entry["fingerprint"]
    assert "is not the workspace's" in entry["problem"]
    text = runner.invoke(app, ["keys", "show", "--home", str(home)])
    assert text.exit_code == 0 and "problem:" in text.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An agency's workspace with a few data keys, admin1 and ana's passwords in files."""
    folder = tmp_path_factory.mktemp("kek-agency")
    agency = make_agency(folder)
    workspace = agency.workflow.workspace
    with workspace.session() as session, session.begin():
        for n in range(3):
            workspace.keys.probe_key(session, f"{n:064x}", create=True)
        workspace.keys.index_key(session, "model-a")
    agency.workflow.close()
    (folder / "password").write_text(PASSWORD)
    return folder


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Iterator[Path]:
    home = copy_workspace(template / "ws", tmp_path / "ws")
    yield home


def _login(home: Path, template: Path, name: str) -> None:
    password = str(template / "password")
    code, _, err = run(home, "login", "--user", name, "--password-file", password)
    assert code == 0, err


def test_an_admin_rotates_the_kek_and_the_old_file_stays_for_the_operator(
    home: Path, template: Path, tmp_path: Path
) -> None:
    _login(home, template, "admin1")
    with Workspace.open(home) as ws, ws.session() as session:
        old_path, old_fingerprint = ws.keys.kek_path, ws.keys.kek_fingerprint
        before = {f"{n:064x}": ws.keys.probe_key(session, f"{n:064x}") for n in range(3)}
    new = tmp_path / "rotated" / "new.kek"
    code, rotated, err = run(home, "keys", "rotate", "--kek", str(new))
    assert code == 0, err
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert rotated["made_file"] is True and rotated["data_keys"] == 4
    assert rotated["previous_fingerprint"] == old_fingerprint
    assert rotated["fingerprint"] == key_fingerprint(read_key_file(new))
    assert "destroy the old KEK file" in rotated["next"]
    assert old_path.exists()  # left for the operator

    with Workspace.open(home) as ws, ws.session() as session:
        assert ws.keys.kek_path == new
        assert {sha: ws.keys.probe_key(session, sha) for sha in before} == before
        assert ws.keys.check_all(session) == []
        entry = session.query(AuditEntry).filter_by(action="keys.kek_rotated").one()
    body = entry.body.decode()
    assert old_fingerprint in body and rotated["fingerprint"] in body
    assert new.read_text().strip() not in body and old_path.read_text().strip() not in body
    code, shown, _ = run(home, "keys", "show")
    assert shown["key_encryption_key"]["path"] == str(new)
    assert shown["key_encryption_key"]["problem"] is None
    with Workflow(Workspace.open(home)) as workflow:
        report = verify_stored_log(workflow)
    assert report.ok, report.problem


def test_a_rotation_to_the_current_kek_is_refused(
    home: Path, template: Path, tmp_path: Path
) -> None:
    _login(home, template, "admin1")
    with Workspace.open(home) as ws:
        current = ws.keys.kek_path
    copy = tmp_path / "copy.kek"
    copy.write_text(current.read_text())
    copy.chmod(0o600)
    for named in (current, copy):
        code, refused, _ = run(home, "keys", "rotate", "--kek", str(named))
        assert code == 1 and "current key-encryption key" in refused["error"]
    with Workspace.open(home) as ws, ws.session() as session:
        record = kek_record(session)
        assert record is not None and record.path == current


def test_only_an_admin_rotates_the_kek_and_a_refusal_makes_no_file(
    home: Path, template: Path, tmp_path: Path
) -> None:
    _login(home, template, "ana")
    code, refused, _ = run(home, "keys", "rotate", "--kek", str(tmp_path / "new.kek"))
    assert code == 1 and "may not policy.manage" in refused["error"]
    assert not (tmp_path / "new.kek").exists()


def test_keys_rotate_says_which_key(home: Path, tmp_path: Path) -> None:
    code, refused, _ = run(home, "keys", "rotate")
    assert code == 1 and "--kek NEW_FILE" in refused["error"] and "--yes" in refused["error"]
    code, refused, _ = run(home, "keys", "rotate", "--kek", str(tmp_path / "k"), "--yes")
    assert code == 1 and "one key at a time" in refused["error"]
    assert not (tmp_path / "k").exists()
    helped = runner.invoke(app, ["keys", "rotate", "--help"])
    assert "key-encryption key" in helped.stdout and "signing key" in helped.stdout


def test_a_rerun_of_the_demo_replaces_its_kek_with_its_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert demo.KEK == demo.DEMO_ROOT / "secrets" / "kek"
    kek = tmp_path / "secrets" / "kek"
    monkeypatch.setattr(demo, "WORKSPACE", tmp_path / "workspace")
    monkeypatch.setattr(demo, "EXPORT", tmp_path / "audit-export")
    monkeypatch.setattr(demo, "KEK", kek)
    assert run(tmp_path / "workspace", "init", "--purpose", "demo", "--kek-file", str(kek))[0] == 0
    demo.fresh_workspace()
    assert not (tmp_path / "workspace").exists() and not kek.exists()
    # Not a demo workspace: neither it nor the KEK is touched.
    code, _, _ = run(
        tmp_path / "workspace", "init", "--purpose", "evaluation", "--kek-file", str(kek)
    )
    assert code == 0
    with pytest.raises(SystemExit, match="not a demo workspace"):
        demo.fresh_workspace()
    assert kek.exists() and (tmp_path / "workspace").exists()


def test_a_kek_rotation_gives_the_index_a_new_key_and_the_old_files_no_longer_open(
    tmp_path: Path,
) -> None:
    agency = make_agency(tmp_path, purpose="simulation")
    rng = np.random.default_rng(15)
    batch = [
        SyntheticSubject(
            f"SYN-{n:06d}", (noise_png(rng),), rng.standard_normal((1, 128)).astype(np.float32)
        )
        for n in range(1, 4)
    ]
    enrol_synthetic_subjects(
        agency.workflow,
        agency["admin1"],
        [batch],
        first_ref=batch[0].ref,
        last_ref=batch[-1].ref,
        source_ref="test_keys_kek",
        seed=15,
    )
    workflow = agency.workflow
    index = workflow.index
    query = batch[0].vectors[0]
    found = index.search(query, 3)
    model = index.model
    folder = workflow.index_folder(model)
    with workflow.workspace.session() as session:
        old_key = workflow.workspace.keys.index_key(session, model.key)
    old_files = tmp_path / "old-index"
    shutil.copytree(folder, old_files)  # a backup made before the rotation

    rotate_kek(workflow, agency["admin1"], tmp_path / "new.kek")

    with workflow.workspace.session() as session:
        new_key = workflow.workspace.keys.index_key(session, model.key)
    assert new_key != old_key
    assert workflow.index.search(query, 3) == found
    workflow.close()
    with pytest.raises(IndexFolderError):
        GalleryIndex.open(old_files, model, key=new_key)
    with Workflow(Workspace.open(tmp_path / "ws")) as reopened:
        assert reopened.index.search(query, 3) == found
        assert reopened.index_folder(model) == folder


@pytest.mark.parametrize(
    "error",
    [
        WrongKeyError("the wrapped key of subject 3 does not unwrap under this KEK"),
        UndecryptableError("image:ab does not open under its key"),
        KeyFileError("the key-encryption key /x/ws.kek does not exist"),
    ],
)
def test_a_key_or_sealed_file_that_does_not_open_is_one_line_not_a_traceback(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    # A tampered data_keys row or vault file reached the command line as a traceback.
    with pytest.raises(typer.Exit) as exited, reported_errors(as_json=False):
        raise error
    assert exited.value.exit_code == 1
    assert str(error) in " ".join(capsys.readouterr().err.split())
