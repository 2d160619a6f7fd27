"""`candor backup` and `candor restore` in the workflow: a backup of a live workspace
while searches run, restored into a fresh folder, holds the same log and answers the
same searches; an altered backup is refused before anything is written; the backup never
holds the KEK or the signing key; a restore never brings an expunged subject back."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from candor.sealing import read_key_file
from candor.store import find_subject
from candor.workflow import (
    EnrolmentRequest,
    authenticate,
    expunge_subject,
    request_search,
    view_candidates,
)
from candor.workflow import backup as backup_module
from candor.workflow import enrol_files as governed_enrol
from candor.workflow.accounts import login
from candor.workflow.audit_ops import export_log, verify_stored_log
from candor.workflow.audit_trail import signing_key_path, stored_log
from candor.workflow.backup import (
    BACKUP_ACTION,
    MANIFEST_NAME,
    RESTORE_ACTION,
    BackupError,
    BackupInfo,
    RestoreInfo,
    back_up,
    restore_backup,
)
from candor.workflow.context import Workflow
from candor.workflow.upkeep import check_workspace
from candor.workflow.workspaces import open_workflow
from tests.agency import PASSWORD, Agency, make_agency, new_user
from tests.support import evaluation_provenance, people_with_photos, photos_of
from tests.workflow.test_governed import FORM

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Agency]:
    """An agency with three people enrolled and an auditor."""
    made = make_agency(tmp_path_factory.mktemp("backup-live"))
    people = people_with_photos(faces_dir, 3)
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    summary = governed_enrol(made.workflow, made["admin1"], requests, evaluation_provenance())
    assert all(outcome.image_id is not None for outcome in summary.outcomes)
    made.add_user(new_user("aud", "auditor"))
    made.add_user(new_user("al", "analyst"))
    made.people = people  # type: ignore[attr-defined]
    yield made
    made.workflow.close()


def _candidates(workflow: Workflow, probe: Path) -> list[tuple[str | None, float]]:
    """A governed search's candidates (reference, score), as examiner eve sees them."""
    ana = authenticate(workflow, login(workflow, "ana", PASSWORD).token)
    eve = authenticate(workflow, login(workflow, "eve", PASSWORD).token)
    searched = request_search(workflow, ana, probe, FORM)
    review = view_candidates(workflow, eve, searched.search_id)
    return [(c.subject_ref, round(c.score, 6)) for c in review.candidates]


@pytest.fixture
def restore(request: pytest.FixtureRequest) -> Callable[..., RestoreInfo]:
    """restore_backup, into a new empty database when the backup holds a PostgreSQL dump
    (CANDOR_TEST_DATABASE=postgres), else as given; without a later export it states
    there is none (no_later_log), which these tests do not care about unless they say."""

    def restoring(backup: Path, home: Path, **options: Any) -> RestoreInfo:
        options.setdefault("no_later_log", "expunged_export" not in options)
        manifest = json.loads((backup / MANIFEST_NAME).read_text())
        if manifest.get("database") == "postgresql":
            cluster = request.getfixturevalue("postgres_cluster")
            options.setdefault("database_url", cluster.new_database())
        return restore_backup(backup, home, **options)

    return restoring


def _log(workflow: Workflow) -> tuple[list[bytes], list[str]]:
    with workflow.workspace.session() as session:
        return stored_log(session)


def test_a_backup_taken_during_searches_restores_the_same_log_and_results(
    live: Agency, tmp_path: Path, restore: Callable[..., RestoreInfo]
) -> None:
    workflow = live.workflow
    probe = photos_of(live.people[1])[1]  # type: ignore[attr-defined]
    failures: list[BaseException] = []

    def search_a_few() -> None:
        try:
            for _ in range(3):
                request_search(workflow, live["al"], probe, FORM)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    searcher = threading.Thread(target=search_a_few)
    searcher.start()
    info = back_up(workflow, live["admin1"], tmp_path / "backup")
    searcher.join()
    assert failures == []

    names = {
        p.relative_to(tmp_path / "backup").as_posix() for p in (tmp_path / "backup").rglob("*")
    }
    assert {MANIFEST_NAME, info_database(info), "candor-workspace.json"} <= names
    assert not any(name.startswith("index") for name in names)
    entries, notes = _log(workflow)
    assert json.loads(entries[info.audit_seq - 1])["action"] == BACKUP_ACTION

    restored = restore(
        tmp_path / "backup", tmp_path / "restored", signing_key=signing_key_path(workflow.workspace)
    )
    assert restored.checked and restored.check_ok and restored.audit_ok, restored
    assert not (tmp_path / "restored" / "index").exists() or restored.check_ok

    # Another person's photo: the same probe again would be a repeat search (approval).
    other = photos_of(live.people[2])[1]  # type: ignore[attr-defined]
    with open_workflow(tmp_path / "restored") as copy:
        copy_entries, copy_notes = _log(copy)
        # The same entries and checkpoints, up to the backup's snapshot, then the restore's.
        assert copy_entries[:-1] == entries[: info.log_size]
        assert restored.restore_seq == len(copy_entries) == info.log_size + 1
        assert copy_notes == [note for note in notes if note in copy_notes]
        assert copy_notes and copy_notes[-1] == restored_note(notes, info.tree_size)
        assert verify_stored_log(copy).ok
        assert not check_workspace(copy, fix=False).needs_attention
        restored_results = _candidates(copy, other)
    assert restored_results == _candidates(workflow, other)
    assert restored_results[0][0] == live.people[2].name  # type: ignore[attr-defined]


def info_database(info: BackupInfo) -> str:
    return "candor.db" if info.database == "sqlite" else "candor.dump"


def restored_note(notes: list[str], tree_size: int) -> str:
    """The live log's checkpoint note of that tree size (the backup's newest)."""
    (found,) = [note for note in notes if f"\n{tree_size}\n" in note]
    return found


def test_the_backup_holds_neither_the_kek_nor_the_private_signing_key(
    live: Agency, tmp_path: Path
) -> None:
    workspace = live.workflow.workspace
    back_up(live.workflow, live["admin1"], tmp_path / "backup")
    kek = read_key_file(workspace.keys.kek_path, "the KEK")
    key_file = signing_key_path(workspace).read_bytes()
    secrets = [kek, kek.hex().encode(), kek.hex().upper().encode(), key_file]
    secrets += [line for line in key_file.splitlines() if len(line) >= 16]
    # The walk can fail: a copy of the key file among the backup's files is found.
    canary = tmp_path / "backup" / "keys" / "canary"
    canary.write_bytes(key_file)
    held = [p for p in (tmp_path / "backup").rglob("*") if p.is_file()]
    assert [p for p in held if any(s in p.read_bytes() for s in secrets)] == [canary]
    canary.unlink()
    for path in (tmp_path / "backup").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), path
            assert path.stat().st_mode & 0o077 == 0, path


def test_a_destination_inside_the_workspace_or_not_empty_is_refused(
    live: Agency, tmp_path: Path
) -> None:
    home = live.workflow.workspace.home
    with pytest.raises(BackupError, match="inside the workspace"):
        back_up(live.workflow, live["admin1"], home / "tmp" / "backup")
    assert not (home / "tmp" / "backup").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        back_up(live.workflow, live["admin1"], tmp_path / "full")


@pytest.fixture(scope="module")
def backup(live: Agency, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backup-made") / "backup"
    back_up(live.workflow, live["admin1"], folder)
    return folder


def _altered(backup: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "altered"
    shutil.copytree(backup, copy)
    return copy


def test_an_altered_file_is_refused_by_name_and_nothing_is_written(
    backup: Path, tmp_path: Path, restore: Callable[..., RestoreInfo]
) -> None:
    copy = _altered(backup, tmp_path)
    image = next(p for p in (copy / "images").rglob("*") if p.is_file())
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1
    image.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=f"{image.name} does not match its SHA-256"):
        restore(copy, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_truncated_database_or_an_extra_file_is_refused(
    backup: Path, tmp_path: Path, restore: Callable[..., RestoreInfo]
) -> None:
    copy = _altered(backup, tmp_path)
    name = json.loads((copy / MANIFEST_NAME).read_text())["database_file"]
    database = copy / name
    database.write_bytes(database.read_bytes()[:1000])
    with pytest.raises(BackupError, match=f"{name} is 1000 bytes"):
        restore(copy, tmp_path / "restored")
    shutil.copy2(backup / name, database)
    (copy / "images" / "stray").write_bytes(b"x")
    with pytest.raises(BackupError, match="stray is not listed in the manifest"):
        restore(copy, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_tampered_manifest_is_refused(
    backup: Path, tmp_path: Path, restore: Callable[..., RestoreInfo]
) -> None:
    copy = _altered(backup, tmp_path)
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    name = next(iter(n for n in manifest["files"] if n.startswith("crops/")))
    manifest["files"][name]["sha256"] = "0" * 64
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(BackupError, match="does not match its SHA-256"):
        restore(copy, target)
    assert list(target.iterdir()) == []


def test_a_private_key_put_into_a_backup_is_never_restored(
    live: Agency, backup: Path, tmp_path: Path, restore: Callable[..., RestoreInfo]
) -> None:
    copy = _altered(backup, tmp_path)
    key = signing_key_path(live.workflow.workspace).read_bytes()
    (copy / "keys" / "audit-signing.key").write_bytes(key)
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    manifest["files"]["keys/audit-signing.key"] = {
        "sha256": hashlib.sha256(key).hexdigest(),
        "size": len(key),
    }
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match=r"unexpected file 'keys/audit-signing\.key'"):
        restore(copy, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_restore_never_brings_an_expunged_subject_back(
    tmp_path: Path, faces_dir: Path, restore: Callable[..., RestoreInfo]
) -> None:
    agency = make_agency(tmp_path / "agency")
    try:
        workflow = agency.workflow
        people = people_with_photos(faces_dir, 3)
        requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
        governed_enrol(workflow, agency["admin1"], requests, evaluation_provenance())
        agency.add_user(new_user("aud", "auditor"))
        back_up(workflow, agency["admin1"], tmp_path / "backup")
        victim = people[1].name
        expunge_subject(workflow, agency["admin1"], victim)
        export_log(workflow, agency["aud"], tmp_path / "export")
        key = signing_key_path(workflow.workspace)
        probe = photos_of(people[1])[1]

        # Stated with no_later_log, the restore holds the victim again (the test can fail),
        # warns naming the backup's date and the KEK rotation, and its audit entry says so.
        plain = restore(tmp_path / "backup", tmp_path / "plain", signing_key=key, no_later_log=True)
        made_at = json.loads((tmp_path / "backup" / MANIFEST_NAME).read_text())["made_at"]
        assert plain.later_log is False and plain.made_at == made_at
        (warning,) = plain.warnings
        assert made_at in warning and "candor keys rotate --kek" in warning
        with open_workflow(tmp_path / "plain") as copy:
            with copy.workspace.session() as session:
                assert find_subject(session, victim) is not None
            entry = json.loads(_log(copy)[0][-1])
            assert (entry["action"], entry["seq"]) == (RESTORE_ACTION, plain.restore_seq)
            assert entry["details"]["later_log"] is False
            assert entry["details"]["made_at"] == made_at
            assert victim in [ref for ref, _ in _candidates(copy, probe)]

        with pytest.raises(BackupError, match=r"needs the key-encryption key .* --signing-key"):
            restore(tmp_path / "backup", tmp_path / "refused", expunged_export=tmp_path / "export")
        assert not (tmp_path / "refused").exists()

        restored = restore(
            tmp_path / "backup",
            tmp_path / "restored",
            signing_key=key,
            expunged_export=tmp_path / "export",
        )
        assert len(restored.expunged_again) == 1
        assert restored.check_ok and restored.audit_ok, restored
        assert restored.later_log and restored.warnings == ()
        with open_workflow(tmp_path / "restored") as copy:
            with copy.workspace.session() as session:
                assert find_subject(session, victim) is None
            entry = json.loads(_log(copy)[0][-1])
            assert entry["action"] == RESTORE_ACTION
            assert entry["details"]["later_log"] is True
            assert entry["details"]["expunged_again"] == 1
            outcome = check_workspace(copy, fix=False)
            assert not outcome.needs_attention, outcome.left
            assert victim not in [ref for ref, _ in _candidates(copy, probe)]
    finally:
        agency.workflow.close()


def test_a_restore_saying_nothing_of_a_later_log_is_refused_and_writes_nothing(
    backup: Path, tmp_path: Path
) -> None:
    # Neither an export nor --no-later-log: it would bring back, unsaid, anyone expunged
    # after the backup (the base restored them silently).
    with pytest.raises(BackupError, match=r"--expunged-since EXPORT .* --no-later-log"):
        restore_backup(backup, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackupError, match="contradict"):
        restore_backup(
            backup, tmp_path / "empty", expunged_export=tmp_path / "export", no_later_log=True
        )
    assert list((tmp_path / "empty").iterdir()) == []


def test_an_export_of_another_log_is_refused(
    live: Agency, backup: Path, tmp_path: Path, faces_dir: Path, restore: Callable[..., RestoreInfo]
) -> None:
    other = make_agency(tmp_path / "other")
    try:
        other.add_user(new_user("aud", "auditor"))
        export_log(other.workflow, other["aud"], tmp_path / "export")
    finally:
        other.workflow.close()
    with pytest.raises(BackupError, match="export"):
        restore(
            backup,
            tmp_path / "restored",
            signing_key=signing_key_path(live.workflow.workspace),
            expunged_export=tmp_path / "export",
        )
    assert not (tmp_path / "restored").exists()


def test_a_photo_erased_under_the_copy_sends_the_backup_to_a_newer_snapshot(
    tmp_path: Path,
    faces_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore: Callable[..., RestoreInfo],
) -> None:
    agency = make_agency(tmp_path / "agency")
    try:
        workflow = agency.workflow
        people = people_with_photos(faces_dir, 2)
        requests = [EnrolmentRequest(photos_of(p)[0], p.name) for p in people]
        governed_enrol(workflow, agency["admin1"], requests, evaluation_provenance())
        victim = people[0].name
        with workflow.workspace.session() as session:
            subject = find_subject(session, victim)
            assert subject is not None
            (sha256,) = [image.sha256 for image in subject.images]
        copy_file = backup_module._copy_file
        expunged: list[str] = []

        def copy_then_expunge(source: Path, target: Path) -> tuple[str, int]:
            copied = copy_file(source, target)
            # The victim's photo is copied whole, then expunged (zeroes, unlink) before
            # the backup is done: the snapshot that named it no longer stands.
            if source.name == sha256 and not expunged:
                expunge_subject(workflow, agency["admin1"], victim)
                expunged.append(victim)
            return copied

        monkeypatch.setattr(backup_module, "_copy_file", copy_then_expunge)
        info = back_up(workflow, agency["admin1"], tmp_path / "backup")
        assert expunged == [victim]  # the test can fail: the first snapshot named the photo
        listed = json.loads((tmp_path / "backup" / MANIFEST_NAME).read_text())["files"]
        assert not [name for name in listed if sha256 in name]
        assert info.files == len(listed)
        monkeypatch.undo()

        restored = restore(tmp_path / "backup", tmp_path / "restored")
        assert restored.check_ok and restored.audit_ok, restored
        with open_workflow(tmp_path / "restored") as copy, copy.workspace.session() as session:
            assert find_subject(session, victim) is None
    finally:
        agency.workflow.close()
