"""GalleryIndex: exact below the threshold, sign codes above it, the same answers from disk."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest

from candor.faces.registry import ModelId
from candor.index import GalleryIndex, IndexFolderBusyError, IndexFolderError, TemplateIndex
from candor.index.gallery import _ROW_NAMES, _row_arrays
from candor.index.sealed_rows import CHUNK_ROWS, SealedRows, chunk_bytes_of, chunk_context
from candor.index.signcodes import MIN_CANDIDATES
from candor.sealing import open_sealed, seal

MODEL = ModelId(name="synthetic", version="1", weights_sha256="0" * 64, dimension=32)
OTHER = ModelId(name="synthetic", version="2", weights_sha256="1" * 64, dimension=32)
# The index key of these tests (a workspace gives each model's index a random one).
KEY = bytes(range(32))


def clustered(count: int, seed: int = 3) -> np.ndarray:
    """Templates of count // 4 people, 4 each, about 0.7 cosine to their person's centre."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, count // 4), MODEL.dimension))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((count, MODEL.dimension))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (centres[np.arange(count) % len(centres)] * 1.4 + noise).astype(np.float32)


def unit_of(vector: np.ndarray) -> np.ndarray:
    """Normalised as the index does it (float64 norm, float32 result)."""
    return TemplateIndex(MODEL)._check_vectors(vector[np.newaxis, :], expected_rows=1)[0]


def code_of(index: GalleryIndex, vector: np.ndarray) -> bytes:
    coder = index._coder
    assert coder is not None, "the index has made no codes"
    return coder.encode(unit_of(vector)).tobytes()


def files_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def opened_bytes(folder: Path, key: bytes = KEY) -> bytes:
    """Every chunk of every sealed file of the folder, opened: what the key reads there."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    scratch = _row_arrays(CHUNK_ROWS, int(meta["dimension"]), int(meta["code_bits"]) // 8)
    opened: list[bytes] = []
    for name, array in zip(_ROW_NAMES, scratch, strict=True):
        rows = SealedRows(folder / name, meta["model"], chunk_bytes_of(array))
        for chunk in range(rows.chunks_on_disk()):
            rows.read_chunk(key, array, chunk)
            opened.append(array.tobytes())
    for name in ("centre.sealed", "planes.sealed"):
        if (folder / name).exists():
            context = chunk_context(meta["model"], name, 0)
            opened.append(open_sealed(key, (folder / name).read_bytes(), context))
    return b"".join(opened)


def test_exact_mode_gives_what_template_index_gives(tmp_path: Path) -> None:
    vectors = clustered(600)
    ids = list(range(1000, 1600))
    reference = TemplateIndex(MODEL)
    reference.add(ids, vectors)
    for folder in (None, tmp_path / "idx"):
        index = GalleryIndex(MODEL, folder, key=KEY)
        for start in range(0, 600, 50):  # several growths of the row files
            index.add(ids[start : start + 50], vectors[start : start + 50])
        assert not index.approximate
        removed = list(range(1000, 1300, 2))
        assert index.remove([*removed, 99]) == len(removed)
        if folder is None:
            reference.remove(removed)
        for query in clustered(5, seed=9):
            assert index.search(query, 12) == reference.search(query, 12)
        assert index.search(vectors[0], 0) == []
        with pytest.raises(ValueError, match="already in the index"):
            index.add([1001], vectors[:1])
        with pytest.raises(ValueError, match="NaN"):
            index.add([5], np.full((1, MODEL.dimension), np.nan))
        assert len(index) == 600 - len(removed)


def test_approximate_mode_finds_the_exact_neighbours_with_exact_scores(tmp_path: Path) -> None:
    count = 10 * MIN_CANDIDATES  # so that a search rescores a tenth of the rows
    vectors = clustered(count)
    index = GalleryIndex(MODEL, tmp_path / "idx", key=KEY, approximate_from=1000)
    index.add(list(range(999)), vectors[:999])
    assert not index.approximate
    index.add(list(range(999, count)), vectors[999:])
    assert index.approximate
    index.remove(range(0, count, 7))
    found = 0
    queries = clustered(40, seed=11)
    for query in queries:
        approximate = index.search(query, 10)
        exact = index.exact_search(query, 10)
        assert len(approximate) == 10
        found += len({i for i, _ in approximate} & {i for i, _ in exact})
        assert all(i % 7 for i, _ in approximate)  # no removed template comes back
        truth = dict(index.exact_search(query, count))
        for template_id, score in approximate:
            assert score == pytest.approx(truth[template_id], abs=1e-6)
    assert found / (10 * len(queries)) >= 0.95


def test_codes_are_made_once_centred_on_the_gallery_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    vectors = clustered(1200) + 3.0  # templates in a narrow cone, as face templates are
    index = GalleryIndex(MODEL, folder, key=KEY, approximate_from=1000)
    index.add(list(range(999)), vectors[:999])
    assert index._coder is None and not (folder / "centre.sealed").exists()
    index.add(list(range(999, 1200)), vectors[999:])
    assert index._coder is not None
    units = np.stack([unit_of(vector) for vector in vectors])
    centre = units[:1200].mean(axis=0)
    assert np.allclose(index._coder.centre, centre, atol=1e-6)
    index.add([5000], vectors[:1] * 0.5)  # added after: coded at once, same centre
    index.close()
    reopened = GalleryIndex.open(folder, MODEL, key=KEY, approximate_from=1000)
    stored = reopened._arrays[3][:1200]  # as read from the sealed codes file
    assert np.array_equal(stored, index._coder.encode(units))  # the first 999 too
    assert reopened._coder is not None
    assert np.array_equal(reopened._coder.centre, index._coder.centre)
    assert np.array_equal(reopened._coder.planes, index._coder.planes)
    assert reopened.search(vectors[0], 1)[0][0] in {0, 5000}
    reopened.close()
    # The hyperplanes are read from the folder, never drawn again from the seed.
    other = np.random.default_rng(7).standard_normal((MODEL.dimension, 512)).astype(np.float32)
    context = chunk_context(MODEL.key, "planes.sealed", 0)
    (folder / "planes.sealed").write_bytes(seal(KEY, other.tobytes(), context))
    coder = GalleryIndex.open(folder, MODEL, key=KEY)._coder
    assert coder is not None and np.array_equal(coder.planes, other)


def test_a_reopened_folder_answers_as_before(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    vectors = clustered(3 * MIN_CANDIDATES)
    index = GalleryIndex(MODEL, folder, key=KEY, approximate_from=500)
    index.add(list(range(1200)), vectors[:1200])
    index.remove([3, 4])
    index.add(list(range(1200, len(vectors))), vectors[1200:])
    queries = clustered(10, seed=5)
    before = [index.search(query, 10) for query in queries]
    del index  # a crash: never flushed, never closed (each change was sealed as made)
    gc.collect()
    reopened = GalleryIndex.open(folder, MODEL, key=KEY, approximate_from=500)
    assert reopened.approximate and len(reopened) == len(vectors) - 2
    assert [reopened.search(query, 10) for query in queries] == before
    reopened.close()
    with pytest.raises(IndexFolderError, match="not of"):
        GalleryIndex.open(folder, OTHER, key=KEY)
    assert len(GalleryIndex.open(tmp_path / "empty", MODEL, key=KEY)) == 0


def test_a_folder_of_other_codes_or_an_older_layout_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    index = GalleryIndex(MODEL, folder, key=KEY)
    index.add([1, 2], clustered(2))
    index.close()
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    (folder / "meta.json").write_text(json.dumps({**meta, "code_seed": 1}), encoding="utf-8")
    with pytest.raises(IndexFolderError, match="sign codes"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    # The layout before sign codes (format 1) kept an HNSW graph file with float16 copies:
    # scrubbing such a folder erases it whole, since it cannot be zeroed row by row.
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 1}), encoding="utf-8")
    with pytest.raises(IndexFolderError, match="format 1"):
        GalleryIndex.open(folder, MODEL, key=KEY)
    assert GalleryIndex.scrub(folder, [1], lambda _: KEY) == 0
    assert not folder.exists()


@pytest.mark.parametrize("approximate_from", [10_000, 100])
def test_a_removed_template_survives_in_no_file(tmp_path: Path, approximate_from: int) -> None:
    folder = tmp_path / "idx"
    vectors = clustered(700)
    index = GalleryIndex(MODEL, folder, key=KEY, approximate_from=approximate_from)
    for start in range(0, 700, 100):
        index.add(list(range(start, start + 100)), vectors[start : start + 100])
    index.flush()
    target = 5
    unit = unit_of(vectors[target])
    encodings = {
        "float32": unit.astype(np.float32).tobytes(),
        "float16": unit.astype(np.float16).tobytes(),
        "raw float32": vectors[target].tobytes(),
        "float64": unit.astype(np.float64).tobytes(),
    }
    if index.approximate:
        encodings["sign code"] = code_of(index, vectors[target])
    held = opened_bytes(folder)
    assert all(encodings[name] in held for name in ("float32", "sign code") if name in encodings)
    assert not any(encoded in files_bytes(folder) for encoded in encodings.values())
    index.remove([target])
    index.close()
    held = opened_bytes(folder) + files_bytes(folder)  # even under the index's key
    for name, encoded in encodings.items():
        assert encoded not in held, f"{name} copy of the removed template is still on disk"
    assert target not in {i for i, _ in index.search(vectors[target], 50)}
    reopened = GalleryIndex.open(folder, MODEL, key=KEY, approximate_from=approximate_from)
    assert target not in reopened and len(reopened) == 699


def test_a_held_folder_is_busy_and_can_still_be_scrubbed(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    vectors = clustered(400)
    holder = GalleryIndex(MODEL, folder, key=KEY, approximate_from=100)
    holder.add(list(range(400)), vectors)
    holder.flush()
    with pytest.raises(IndexFolderBusyError):
        GalleryIndex.open(folder, MODEL, key=KEY)
    target = 17
    unit = unit_of(vectors[target])
    copies = (unit.tobytes(), code_of(holder, vectors[target]))
    assert all(copy in opened_bytes(folder) for copy in copies)
    # Expungement by a process that does not hold the folder: zeroed in its sealed chunk.
    assert GalleryIndex.scrub(folder, [target, 9999], lambda _: KEY) == 1
    for encoded in copies:
        assert encoded not in opened_bytes(folder)
    # The holder's rows are its own memory: it drops the template before its next write,
    # so that write does not bring the copy back (and its next catch-up would drop it).
    holder.add([400], vectors[:1] + 0.01)
    assert target not in {i for i, _ in holder.search(vectors[target], 30)}
    for encoded in copies:
        assert encoded not in opened_bytes(folder)
    holder.add([target], vectors[target : target + 1])  # a stale catch-up: forgotten
    assert target not in holder
    holder.close()
    reopened = GalleryIndex.open(folder, MODEL, key=KEY, approximate_from=100)
    assert target not in reopened and len(reopened) == 400
    reopened.close()
