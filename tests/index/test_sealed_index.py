"""The gallery index on disk: sealed chunks under the index's key, plaintext only in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from candor.index import GalleryIndex, IndexFileError, IndexFolderError, TemplateIndex
from candor.index.sealed_rows import CHUNK_ROWS, chunks_for
from candor.sealing import SEAL_OVERHEAD, new_data_key
from candor.store import Workspace
from candor.workflow import EnrolmentRequest, EnrolmentStatus, Workflow, enrol_files
from candor.workflow.demo_photos import probe_variants, save_photos
from tests.agency import Agency, make_agency
from tests.index.test_gallery_index import KEY, MODEL, clustered, files_bytes, opened_bytes
from tests.support import evaluation_provenance

ROWS = 2 * CHUNK_ROWS + 500  # three chunks per row file, the last one part full
SLOT = SEAL_OVERHEAD + CHUNK_ROWS * MODEL.dimension * 4  # one sealed chunk of vectors


def units(vectors: np.ndarray) -> np.ndarray:
    checker = TemplateIndex(MODEL)
    return checker._check_vectors(vectors, expected_rows=len(vectors))


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered(ROWS + 600, seed=21)


@pytest.fixture
def built(tmp_path: Path, vectors: np.ndarray) -> Iterator[tuple[Path, GalleryIndex]]:
    folder = tmp_path / "idx"
    index = GalleryIndex(MODEL, folder, key=KEY, approximate_from=4000)
    index.add(list(range(1, ROWS + 1)), vectors[:ROWS])
    yield folder, index
    if index._holder is not None:  # not closed, nor let go by the test
        index.close()


def test_no_file_holds_a_template_or_its_code_in_the_clear(
    built: tuple[Path, GalleryIndex], vectors: np.ndarray
) -> None:
    folder, index = built
    assert index.approximate  # codes, centre and planes are on disk too
    index.flush()
    held = files_bytes(folder)
    coder = index._coder
    assert coder is not None
    rows = units(vectors[:ROWS])
    codes = coder.encode(rows)
    for row in range(0, ROWS, 97):
        assert rows[row].tobytes() not in held, f"template {row + 1} in the clear"
        assert codes[row].tobytes() not in held, f"sign code of template {row + 1}"
    assert coder.centre.tobytes() not in held and coder.planes[:, :4].tobytes() not in held
    # ...while the key reads every one of them back.
    opened = opened_bytes(folder)
    assert rows[ROWS - 1].tobytes() in opened and codes[0].tobytes() in opened
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["format"] == 3 and meta["count"] == ROWS and meta["chunk_rows"] == CHUNK_ROWS
    assert (folder / "vectors.sealed").stat().st_size == 3 * SLOT


def test_files_opened_with_another_key_are_refused_naming_them(
    built: tuple[Path, GalleryIndex], tmp_path: Path, vectors: np.ndarray
) -> None:
    folder, index = built
    index.close()
    with pytest.raises(IndexFileError, match=f"{folder}.*sealed under another index key"):
        GalleryIndex.open(folder, MODEL, key=new_data_key())
    # One file of another index (same model, another key) put in place of this one's.
    other = GalleryIndex(MODEL, tmp_path / "other", key=new_data_key())
    other.add(list(range(1, ROWS + 1)), vectors[:ROWS])
    other.close()
    (folder / "ids.sealed").write_bytes((tmp_path / "other" / "ids.sealed").read_bytes())
    with pytest.raises(IndexFileError, match=r"ids\.sealed chunk 0 does not open"):
        GalleryIndex.open(folder, MODEL, key=KEY)


def test_a_damaged_moved_or_missing_chunk_is_refused_naming_file_and_chunk(
    built: tuple[Path, GalleryIndex],
) -> None:
    folder, index = built
    index.close()
    path = folder / "vectors.sealed"
    original = path.read_bytes()
    slot = len(original) // 3
    damaged = bytearray(original)
    damaged[slot + 1000] ^= 0x01  # one bit in chunk 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(IndexFileError, match=r"vectors\.sealed chunk 1 does not open"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    # Chunks 0 and 1 swapped: each is sealed for its place, so neither opens elsewhere.
    path.write_bytes(original[slot : 2 * slot] + original[:slot] + original[2 * slot :])
    with pytest.raises(IndexFileError, match=r"vectors\.sealed chunk 0 does not open"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    path.write_bytes(original[: 2 * slot])  # the last chunk lost
    with pytest.raises(IndexFileError, match=r"vectors\.sealed holds fewer chunks"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    path.write_bytes(original[:-7])
    with pytest.raises(IndexFileError, match="not a whole number"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    path.write_bytes(original)
    assert len(GalleryIndex.open(folder, MODEL, key=KEY)) == ROWS


def test_append_remove_compaction_reopen_agree_with_exact_search(
    built: tuple[Path, GalleryIndex], vectors: np.ndarray
) -> None:
    folder, index = built
    reference = TemplateIndex(MODEL)
    reference.add(list(range(1, ROWS + 1)), vectors[:ROWS])
    queries = clustered(12, seed=4)

    def agree(candidate: GalleryIndex) -> None:
        for query in queries:
            assert candidate.exact_search(query, 15) == reference.search(query, 15)

    # A removal in the first chunk, then appends that fill the last chunk and open a new one.
    index.remove([3, 9000])
    reference.remove([3, 9000])
    extra = list(range(ROWS + 1, ROWS + 601))
    index.add(extra[:300], vectors[ROWS : ROWS + 300])
    index.add(extra[300:], vectors[ROWS + 300 :])
    reference.add(extra, vectors[ROWS:])
    agree(index)
    assert index._holder is not None
    index._holder()  # a crash: the folder let go, never flushed nor closed
    index._holder = None
    reopened = GalleryIndex.open(folder, MODEL, key=KEY, approximate_from=4000)
    agree(reopened)
    # Enough removals to compact: the rows move down and the files are cut short.
    gone = list(range(1, ROWS + 1, 2))
    reopened.remove(gone)
    reference.remove(gone)
    assert reopened._count == len(reference)  # compacted
    agree(reopened)
    assert (folder / "vectors.sealed").stat().st_size == chunks_for(len(reference)) * SLOT
    reopened.close()
    again = GalleryIndex.open(folder, MODEL, key=KEY, approximate_from=4000)
    agree(again)
    removed = units(vectors[2:3])[0].tobytes()  # template 3
    assert 3 not in again and removed not in opened_bytes(folder)
    assert units(vectors[1:2])[0].tobytes() in opened_bytes(folder)  # template 2 stays
    again.close()


def test_reseal_puts_every_file_under_the_new_key(built: tuple[Path, GalleryIndex]) -> None:
    folder, index = built
    before = files_bytes(folder)
    new_key = new_data_key()
    index.reseal(new_key)
    index.close()
    with pytest.raises(IndexFileError, match="another index key"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    assert opened_bytes(folder, new_key) and files_bytes(folder) != before
    reopened = GalleryIndex.open(folder, MODEL, key=new_key, approximate_from=4000)
    assert len(reopened) == ROWS and reopened._coder is not None
    reopened.close()
    with pytest.raises(IndexFileError, match="chunk 0 does not open"):
        opened_bytes(folder, KEY)  # no chunk is left sealed under the old key


def test_a_plaintext_folder_of_an_older_release_is_refused_and_scrubbed_whole(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    plain = units(vectors[:10])
    plain.tofile(folder / "vectors.f32")
    meta = {"format": 2, "model": MODEL.key, "dimension": MODEL.dimension, "count": 10}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(IndexFolderError, match="format 2"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    index = GalleryIndex(MODEL, folder, key=KEY)  # as the workflow makes it anew
    assert not (folder / "vectors.f32").exists()
    index.add([1], vectors[:1])
    index.close()
    assert plain[0].tobytes() not in files_bytes(folder)


# ---- through the workflow ---------------------------------------------------------------


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    yield made
    made.workflow.close()


@pytest.mark.xdist_group("workflow")
def test_the_workflow_seals_rebuilds_an_old_folder_and_reseals_on_rotation(
    agency: Agency, tmp_path: Path
) -> None:
    photos = save_photos(probe_variants(2), tmp_path / "photos")
    requests = [EnrolmentRequest(photo, f"P{n}") for n, photo in enumerate(photos.values())]
    summary = enrol_files(agency.workflow, agency["admin1"], requests, evaluation_provenance())
    assert all(o.status is EnrolmentStatus.ENROLLED for o in summary.outcomes)
    workflow = agency.workflow
    model = workflow.engine.model
    folder = workflow.index_folder(model)
    home = workflow.workspace.home
    assert len(workflow.index) == 2 and workflow.index.folder == folder
    vector = workflow.index.vectors_of([summary.outcomes[0].template_id or 0])[0]
    workflow.index.flush()
    assert vector.tobytes() not in files_bytes(folder)
    with workflow.workspace.session() as session:
        key = workflow.workspace.keys.index_key(session, model.key)
    assert vector.tobytes() in opened_bytes(folder, key)

    # KEK rotation: the index gets a new key, its files are resealed under it.
    with workflow.workspace.session() as session, session.begin():
        workflow.reseal_index(session)
    with workflow.workspace.session() as session:
        new_key = workflow.workspace.keys.index_key(session, model.key)
    assert new_key != key and vector.tobytes() in opened_bytes(folder, new_key)
    with pytest.raises(IndexFileError):
        opened_bytes(folder, key)
    workflow.close()
    reopened = Workflow(Workspace.open(home))
    assert reopened.index.folder == folder and len(reopened.index) == 2
    reopened.close()

    # A plaintext folder of a release before sealing: erased (zeroed) and rebuilt sealed.
    GalleryIndex.erase_folder(folder)
    folder.mkdir(mode=0o700)
    np.stack([vector, vector]).tofile(folder / "vectors.f32")
    meta = {"format": 2, "model": model.key, "count": 2, "capacity": 2, "change_seq": 1}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    agency.workflow = rebuilt = Workflow(Workspace.open(home))
    assert rebuilt.index.folder == folder and len(rebuilt.index) == 2
    assert not (folder / "vectors.f32").exists() and (folder / "vectors.sealed").exists()
    rebuilt.index.flush()
    assert vector.tobytes() not in files_bytes(folder)


@pytest.mark.parametrize("window", [1, 2])
def test_chunks_opened_a_window_at_a_time_land_in_their_rows(
    built: tuple[Path, GalleryIndex], monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    folder, index = built
    index.close()
    whole = GalleryIndex.open(folder, MODEL, key=KEY)
    expected = [array[: whole._count].copy() for array in whole._arrays]
    whole.close()
    monkeypatch.setattr("candor.index.sealed_rows._WINDOW_CHUNKS", window)
    reopened = GalleryIndex.open(folder, MODEL, key=KEY)
    for array, wanted in zip(reopened._arrays, expected, strict=True):
        assert np.array_equal(array[: reopened._count], wanted)
    reopened.close()
