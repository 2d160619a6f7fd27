"""Expunged biometric data leaves no bytes in any file of the workspace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from candor.store import (
    ScrubError,
    Workspace,
    add_template,
    database,
    delete_subject_cascade,
    find_subject,
)
from tests.store.support import FakeModel, enrol_image, image_bytes, make_subject, vector

pytestmark = pytest.mark.sqlite_only(reason="secure_delete and the SQLite file's write-ahead log")


MODEL = FakeModel(dimension=128)
SECRET_REF = "BOOKING-7F3A9C-EXPUNGE-ME"


def _needles(blob: bytes) -> list[bytes]:
    # Windows, not just the whole blob, so a partly surviving copy is caught too.
    return [blob[start : start + 16] for start in range(0, len(blob) - 15, 16)]


def _files_containing(home: Path, needles: list[bytes]) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(home.rglob("*")):
        if path.is_file():
            content = path.read_bytes()
            hits = sum(needle in content for needle in needles)
            if hits:
                found[str(path.relative_to(home))] = hits
    return found


def test_deleted_subject_leaves_no_bytes_in_any_workspace_file(workspace: Workspace) -> None:
    secret_vector = np.random.default_rng(2024).standard_normal(128).astype(np.float32)
    secret_template = secret_vector.astype("<f4").tobytes()
    secret_image = b"SECRET-IMAGE-BYTES" * 64
    secret_crop = b"SECRET-CROP-BYTES!" * 32
    with workspace.session() as session, session.begin():
        for number in range(50):
            keeper = make_subject(session, f"KEEP-{number:03d}")
            image = enrol_image(workspace, session, keeper, image_bytes(number))
            add_template(
                session,
                image,
                model=MODEL,
                detector_key="d",
                recipe="r",
                vector=vector(number, 128),
                vault=workspace.vault,
                keys=workspace.keys,
            )
        subject = make_subject(session, SECRET_REF)
        image = enrol_image(workspace, session, subject, secret_image)
        secret_sha = image.sha256
        key = workspace.keys.subject_key(session, subject.id)
        workspace.vault.put_crop(secret_sha, secret_crop, key)
        add_template(
            session,
            image,
            model=MODEL,
            detector_key="d",
            recipe="r",
            vector=secret_vector,
            vault=workspace.vault,
            keys=workspace.keys,
        )
    # The files hold the photo and crop sealed: their sealed bytes must go too.
    sealed_image = workspace.vault.image_path(secret_sha).read_bytes()
    sealed_crop = workspace.vault.crop_path(secret_sha).read_bytes()
    needles = [
        *_needles(secret_template),
        *_needles(secret_image),
        *_needles(secret_crop),
        *_needles(sealed_image),
        *_needles(sealed_crop),
        SECRET_REF.encode(),
        secret_sha.encode(),
    ]
    # The test can fail: before expungement the data is on disk.
    before = _files_containing(workspace.home, needles)
    assert any(name.startswith("candor.db") for name in before)
    assert any(name.startswith("images/") for name in before)
    assert any(name.startswith("crops/") for name in before)

    # An idle pooled connection, as a running application has, must not block the scrub.
    idle = workspace.engine.connect()
    idle.execute(text("SELECT count(*) FROM subjects")).scalar()
    idle.commit()
    with workspace.session() as session:
        with session.begin():
            found = find_subject(session, SECRET_REF)
            assert found is not None
            removed = delete_subject_cascade(session, found)
        for sha in removed.image_sha256s:
            workspace.vault.erase_image(sha)
        workspace.vault.scrub_database(session)
    idle.close()

    assert _files_containing(workspace.home, needles) == {}
    wal = workspace.home / "candor.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    with workspace.session() as session:
        assert session.execute(text("SELECT count(*) FROM subjects")).scalar() == 50
        assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_scrub_refuses_session_inside_transaction(workspace: Workspace) -> None:
    with workspace.session() as session, session.begin():
        make_subject(session, "B-1")
        with pytest.raises(ScrubError, match="commit"):
            workspace.vault.scrub_database(session)


def test_scrub_reports_a_reader_holding_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep the test quick: connections stop waiting for locks after 50 ms.
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)
    with Workspace.create(tmp_path) as ws:
        with ws.session() as session, session.begin():
            make_subject(session, "B-1")
        reader = ws.engine.connect()
        reader.begin()
        reader.execute(text("SELECT count(*) FROM subjects")).scalar()
        with ws.session() as session, session.begin():
            make_subject(session, "B-2")
        try:
            with pytest.raises(ScrubError, match="another connection"):
                ws.vault.scrub_database(ws.engine)
        finally:
            reader.close()
        ws.vault.scrub_database(ws.engine)
        assert (tmp_path / "candor.db-wal").stat().st_size == 0
