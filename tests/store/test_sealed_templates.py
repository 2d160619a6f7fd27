"""Templates sealed in the database: under the subject's key (gallery) or the probe's key (a
request's probe template), bound to their row, shredded with the key, and sealed by the
upgrade when an older workspace kept them in the clear."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from candor.sealing import SEAL_OVERHEAD, UndecryptableError, is_sealed, open_sealed
from candor.store import (
    BiometricIntegrityError,
    FaceTemplate,
    SearchRequest,
    TemplateFormatError,
    User,
    Workspace,
    add_gallery_image,
    add_template,
    delete_subject_cascade,
    get_or_create_subject,
    plaintext_template_count,
    seal_plaintext_templates,
    templates_for_model,
)
from candor.store.changes import template_vectors
from candor.store.data_keys import DataKey
from candor.store.requests import recent_request_probes
from candor.store.vault import probe_template_context, template_context
from tests.conftest import test_database as database_in_use
from tests.store.support import FakeModel, booking_provenance, vector

MODEL = FakeModel(dimension=16)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _enrol(ws: Workspace, session: Session, reference: str, seed: int) -> FaceTemplate:
    """A subject with one image (no file: the store does not need it) and its template."""
    subject, _ = get_or_create_subject(session, reference, "officer.lee")
    image = add_gallery_image(
        session,
        subject,
        sha256=hashlib.sha256(f"photo {seed}".encode()).hexdigest(),
        image_format="JPEG",
        width=640,
        height=480,
        byte_size=1000,
        provenance=booking_provenance(),
        allowed_source_types=ws.allowed_source_types(),
        today=date(2025, 1, 1),
        enrolled_by="officer.lee",
        face_choice="largest-central",
        face_box=(100, 80, 300, 320),
        quality={},
    )
    return add_template(
        session,
        image,
        model=MODEL,
        detector_key="d",
        recipe="r",
        vector=vector(seed, MODEL.dimension),
        vault=ws.vault,
        keys=ws.keys,
    )


def _vectors(ws: Workspace) -> dict[int, np.ndarray]:
    with ws.session() as session:
        rows = templates_for_model(session, MODEL.key, ws.vault, ws.keys, batch_size=2)
        return {template_id: found for template_id, _, _, found in rows}


def _workspace_bytes(home: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(home.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


@pytest.fixture
def gallery(workspace: Workspace) -> dict[int, int]:
    """Three subjects, one template each: {seed: template id}."""
    with workspace.session() as session, session.begin():
        return {seed: _enrol(workspace, session, f"S-{seed}", seed).id for seed in (1, 2, 3)}


def test_stored_templates_are_sealed_and_open_in_bulk(
    workspace: Workspace, gallery: dict[int, int]
) -> None:
    with workspace.session() as session:
        rows = session.execute(select(FaceTemplate.id, FaceTemplate.vector)).all()
    assert len(rows) == 3
    for template_id, blob in rows:
        assert is_sealed(blob) and len(blob) == 4 * MODEL.dimension + SEAL_OVERHEAD
        seed = next(s for s, t in gallery.items() if t == template_id)
        assert vector(seed, MODEL.dimension).tobytes() not in blob
    opened = _vectors(workspace)
    for seed, template_id in gallery.items():
        np.testing.assert_array_equal(opened[template_id], vector(seed, MODEL.dimension))
    with workspace.session() as session:
        by_id = template_vectors(
            session, gallery.values(), MODEL.key, workspace.vault, workspace.keys
        )
    assert {k: v.tobytes() for k, v in by_id.items()} == {k: v.tobytes() for k, v in opened.items()}
    if database_in_use() == "sqlite":
        # Nowhere in the workspace's files (the database, its write-ahead log): not even a
        # quarter of a vector.
        for path, data in _workspace_bytes(workspace.home):
            for seed in gallery:
                plain = vector(seed, MODEL.dimension).tobytes()
                assert plain[:16] not in data, f"template {seed} in the clear in {path}"


def test_a_template_moved_to_another_row_does_not_open(
    workspace: Workspace, gallery: dict[int, int]
) -> None:
    with workspace.session() as session, session.begin():
        # The same subject's key, another image: the context (image, model) tells them apart.
        subject_id = session.get(FaceTemplate, gallery[1]).subject_id  # type: ignore[union-attr]
        second = _enrol(workspace, session, "S-1", 4)
        assert second.subject_id == subject_id
        first_blob = session.get(FaceTemplate, gallery[1]).vector  # type: ignore[union-attr]
        session.execute(
            update(FaceTemplate).where(FaceTemplate.id == second.id).values(vector=first_blob)
        )
    with pytest.raises(BiometricIntegrityError, match="does not open"):
        _vectors(workspace)
    with workspace.session() as session, session.begin():
        session.execute(delete(FaceTemplate).where(FaceTemplate.id == second.id))
        # Another subject's row: another key.
        blob = session.get(FaceTemplate, gallery[1]).vector  # type: ignore[union-attr]
        session.execute(
            update(FaceTemplate).where(FaceTemplate.id == gallery[2]).values(vector=blob)
        )
    with pytest.raises(BiometricIntegrityError, match="does not open"):
        _vectors(workspace)


def _all_keys(ws: Workspace, session: Session) -> list[bytes]:
    """Every subject and probe key the workspace holds, unwrapped."""
    subjects = session.scalars(select(DataKey.subject_id).where(DataKey.kind == "subject"))
    probes = ws.keys.probe_owners(session)
    return [
        *ws.keys.subject_keys(session, [s for s in subjects if s is not None]).values(),
        *ws.keys.probe_keys(session, probes).values(),
    ]


def test_after_expunge_a_backup_of_the_template_opens_under_no_live_key(
    workspace: Workspace, gallery: dict[int, int], tmp_path: Path
) -> None:
    with workspace.session() as session:
        row = session.get(FaceTemplate, gallery[2])
        assert row is not None
        subject_id = row.subject_id
        sha256 = row.image.sha256
        live_blob = row.vector
    if database_in_use() == "sqlite":
        backup = tmp_path / "backup.db"
        with sqlite3.connect(workspace.database_path) as source, sqlite3.connect(backup) as copy:
            source.backup(copy)
        with sqlite3.connect(backup) as copy:
            (blob,) = copy.execute(
                "SELECT vector FROM face_templates WHERE id = ?", (gallery[2],)
            ).fetchone()
        assert blob == live_blob
    else:  # the row as a backup of the cluster would hold it
        blob = live_blob
    context = template_context(sha256, MODEL.key)
    with workspace.session() as session, session.begin():
        key = workspace.keys.subject_key(session, subject_id)
        assert open_sealed(key, blob, context)  # opens while the subject's key exists
        subject = session.get(FaceTemplate, gallery[2]).subject  # type: ignore[union-attr]
        delete_subject_cascade(session, subject)
    with workspace.session() as session:
        assert workspace.keys.subject_keys(session, [subject_id]) == {}
        held = _all_keys(workspace, session)
        assert len(held) == 2  # the two other subjects'
        for other in held:
            with pytest.raises(UndecryptableError):
                open_sealed(other, blob, context)
    assert sorted(_vectors(workspace)) == [gallery[1], gallery[3]]


def _add_request(ws: Workspace, session: Session, probe_sha256: str, blob: bytes | None) -> int:
    user = session.scalar(select(User).where(User.username == "ana"))
    if user is None:
        user = User(
            username="ana",
            display_name="Ana",
            unit="Robbery",
            password_hash="$argon2id$not-a-real-hash",
            certificate_ref="FR-1",
            certificate_expires=date(2027, 6, 30),
            disabled=False,
            created_at=NOW,
            created_by="bootstrap",
        )
        session.add(user)
        session.flush()
    request = SearchRequest(
        kind="search",
        requester_id=user.id,
        case_number="2026-000123",
        offence_category="robbery",
        purpose="investigative_lead",
        requesting_agency="Home PD",
        requesting_unit="Robbery",
        probe_kind="still_photo",
        probe_edited=False,
        requested_top=10,
        status="completed",
        decision={"outcome": "allow", "reasons": []},
        policy_sha256="ab" * 32,
        probe_sha256=probe_sha256,
        probe_model_key=MODEL.key,
        probe_template=blob,
        created_at=NOW,
        ran_at=NOW,
    )
    session.add(request)
    session.flush()
    return request.id


def test_the_upgrade_seals_plaintext_templates_once(
    workspace: Workspace, gallery: dict[int, int]
) -> None:
    probe = "cd" * 32
    plain_probe = vector(9, MODEL.dimension)
    with workspace.session() as session, session.begin():
        # As an older workspace holds them: plain float32, and no subject key for one of them.
        for seed, template_id in gallery.items():
            session.execute(
                update(FaceTemplate)
                .where(FaceTemplate.id == template_id)
                .values(vector=vector(seed, MODEL.dimension).tobytes())
            )
        subject_id = session.get(FaceTemplate, gallery[3]).subject_id  # type: ignore[union-attr]
        workspace.keys.destroy_subject_key(session, subject_id)
        _add_request(workspace, session, probe, plain_probe.tobytes())
        _add_request(workspace, session, "ef" * 32, None)  # purged: nothing to seal
    with pytest.raises(TemplateFormatError, match="candor upgrade"):
        _vectors(workspace)
    with workspace.session() as session:
        assert plaintext_template_count(session) == 4
    sealed: list[int] = []
    while True:
        with workspace.session() as session, session.begin():
            done = seal_plaintext_templates(session, workspace.keys, workspace.vault, batch_size=2)
        if not done:
            break
        sealed.append(done)
    assert sealed == [2, 1, 1]
    with workspace.session() as session:
        assert plaintext_template_count(session) == 0
        before = session.execute(select(FaceTemplate.id, FaceTemplate.vector)).all()
        requests = recent_request_probes(session, "search", NOW, ("completed",))
        blobs = {sha256: blob for _, sha256, _, blob in requests}
        blob = blobs[probe]
        assert blobs["ef" * 32] is None and blob is not None
        key = workspace.keys.probe_key(session, probe)
        opened = open_sealed(key, blob, probe_template_context(probe, MODEL.key))
        assert opened == plain_probe.tobytes()
    opened_gallery = _vectors(workspace)
    for seed, template_id in gallery.items():
        np.testing.assert_array_equal(opened_gallery[template_id], vector(seed, MODEL.dimension))
    # Idempotent: nothing left, nothing sealed twice.
    with workspace.session() as session, session.begin():
        assert seal_plaintext_templates(session, workspace.keys, workspace.vault) == 0
    with workspace.session() as session:
        assert session.execute(select(FaceTemplate.id, FaceTemplate.vector)).all() == before
