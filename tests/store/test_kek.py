"""Issue 15, item 1: the workspace's key-encryption key (KEK) as the store meets it.

A missing, wrong or too-open KEK is a clear refusal that says where it was looked for and
how to point at it, never a new key; a workspace copied without its KEK does not open; a
rotation commits with its new record or not at all (a kill before the commit leaves the
old KEK working); and a second process holding the old KEK follows a rotation, or refuses,
but never wraps a key under a retired KEK.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from candor.sealing import create_key_file, key_fingerprint, read_key_file, unwrap_key
from candor.store import Workspace
from candor.store.data_keys import KEK_FILE_VARIABLE, DataKey, KeyEncryptionKeyError, kek_record
from tests.support import copy_workspace

PROBES = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(5)]


@pytest.fixture(autouse=True)
def _no_kek_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEK_FILE_VARIABLE, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A workspace holding a few probe keys and an index key, closed; its KEK in tmp_path."""
    with (
        Workspace.create(tmp_path / "ws", "evaluation", kek_file=tmp_path / "kek") as ws,
        ws.session() as session,
        session.begin(),
    ):
        for sha in PROBES:
            ws.keys.probe_key(session, sha, create=True)
        ws.keys.index_key(session, "model-a")
    yield tmp_path / "ws"


def _refusal(home: Path) -> str:
    with pytest.raises(KeyEncryptionKeyError) as refused:
        Workspace.open(home)
    return str(refused.value)


def _all_keys(ws: Workspace) -> dict[str, bytes]:
    with ws.session() as session:
        return {sha: ws.keys.probe_key(session, sha) for sha in PROBES}


def test_a_missing_kek_is_refused_saying_where_it_was_expected_and_how_to_point_at_it(
    home: Path, tmp_path: Path
) -> None:
    (tmp_path / "kek").rename(tmp_path / "moved.kek")
    message = _refusal(home)
    assert str(tmp_path / "kek") in message and "does not exist" in message
    assert f"point {KEK_FILE_VARIABLE} at it" in message
    assert not (tmp_path / "kek").exists()  # never made again


def test_a_kek_file_named_by_the_variable_opens_the_workspace_and_a_missing_one_is_refused(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kek").rename(tmp_path / "moved.kek")
    monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "moved.kek"))
    with Workspace.open(home) as ws:
        assert ws.keys.kek_path == tmp_path / "moved.kek"
        assert len(_all_keys(ws)) == len(PROBES)
    monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "nowhere.kek"))
    message = _refusal(home)
    assert str(tmp_path / "nowhere.kek") in message and KEK_FILE_VARIABLE in message
    assert not (tmp_path / "nowhere.kek").exists()


def test_another_workspaces_kek_is_refused_and_no_key_is_made(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Workspace.create(tmp_path / "other", "evaluation", kek_file=tmp_path / "other.kek").close()
    before = sorted(tmp_path.iterdir())
    monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "other.kek"))
    message = _refusal(home)
    assert "is not the workspace's" in message
    assert key_fingerprint(read_key_file(tmp_path / "other.kek")) in message
    assert sorted(tmp_path.iterdir()) == before


def test_a_kek_others_can_read_is_refused(home: Path, tmp_path: Path) -> None:
    (tmp_path / "kek").chmod(0o640)
    message = _refusal(home)
    assert "readable by others" in message and "chmod 600" in message


def test_a_workspace_copied_without_its_kek_cannot_be_opened(home: Path, tmp_path: Path) -> None:
    copy = copy_workspace(home, tmp_path / "elsewhere" / "ws")
    # Another machine: the recorded path holds no KEK there.
    shutil.move(tmp_path / "kek", tmp_path / "kept-apart.kek")
    assert "does not exist" in _refusal(copy)


def test_a_rotation_rolled_back_leaves_the_old_kek_working(home: Path, tmp_path: Path) -> None:
    new_kek = create_key_file(tmp_path / "new.kek")
    with Workspace.open(home) as ws:
        old_fingerprint = ws.keys.kek_fingerprint
        before = _all_keys(ws)
        with pytest.raises(RuntimeError), ws.session() as session, session.begin():
            for _ in ws.keys.rewrap_all(session, new_kek, tmp_path / "new.kek"):
                pass
            raise RuntimeError("killed before the commit")
        # The same object follows the record back to the old KEK.
        assert _all_keys(ws) == before
        assert ws.keys.kek_fingerprint == old_fingerprint
    with Workspace.open(home) as ws:
        assert _all_keys(ws) == before
        with ws.session() as session:
            assert ws.keys.check_all(session) == []


KILL_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from candor.sealing import read_key_file
    from candor.store import Workspace

    ws = Workspace.open(Path(sys.argv[1]))
    new = Path(sys.argv[2])
    with ws.session() as session, session.begin():
        for _ in ws.keys.rewrap_all(session, read_key_file(new), new):
            pass
        session.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_kill_between_the_rewrap_and_its_commit_leaves_the_old_kek_working(
    home: Path, tmp_path: Path
) -> None:
    create_key_file(tmp_path / "new.kek")
    with Workspace.open(home) as ws:
        before = _all_keys(ws)
        old_fingerprint = ws.keys.kek_fingerprint
    killed = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_COMMIT, str(home), str(tmp_path / "new.kek")],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Workspace.open(home) as ws:
        assert ws.keys.kek_fingerprint == old_fingerprint
        assert _all_keys(ws) == before
        with ws.session() as session:
            assert ws.keys.check_all(session) == []


def test_a_second_process_follows_a_rotation_and_never_wraps_under_the_old_kek(
    home: Path, tmp_path: Path
) -> None:
    with Workspace.open(home) as rotating, Workspace.open(home) as other:
        before = _all_keys(other)
        new_kek = create_key_file(tmp_path / "new.kek")
        with rotating.session() as session, session.begin():
            for _ in rotating.keys.rewrap_all(session, new_kek, tmp_path / "new.kek"):
                pass
        # `other` still holds the old KEK: it reads the re-wrapped keys...
        assert _all_keys(other) == before
        # ...and a key it adds now is wrapped under the new KEK.
        with other.session() as session, session.begin():
            added = other.keys.probe_key(session, "f" * 64, create=True)
        assert other.keys.kek_fingerprint == key_fingerprint(new_kek)
        with rotating.session() as session:
            wrapped = session.query(DataKey).filter_by(owner="f" * 64).one().wrapped
            assert unwrap_key(new_kek, wrapped, "the added key") == added
            assert rotating.keys.check_all(session) == []


def test_a_second_process_that_cannot_read_the_new_kek_refuses_to_add_a_key(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.open(home) as rotating, Workspace.open(home) as other:
        new_kek = create_key_file(tmp_path / "new.kek")
        with rotating.session() as session, session.begin():
            for _ in rotating.keys.rewrap_all(session, new_kek, tmp_path / "new.kek"):
                pass
        # This node's deployment still points at the old file.
        monkeypatch.setenv(KEK_FILE_VARIABLE, str(tmp_path / "kek"))
        with (
            pytest.raises(KeyEncryptionKeyError, match="was rotated") as refused,
            other.session() as session,
            session.begin(),
        ):
            other.keys.probe_key(session, "f" * 64, create=True)
        assert key_fingerprint(new_kek) in str(refused.value)
        with rotating.session() as session:
            assert session.query(DataKey).filter_by(owner="f" * 64).count() == 0
            record = kek_record(session)
            assert record is not None and record.fingerprint == key_fingerprint(new_kek)
