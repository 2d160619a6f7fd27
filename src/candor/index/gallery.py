"""GalleryIndex: exact search for small galleries, sign codes for large ones, sealed on disk.

The rows (one L2-normalised float32 vector per template, its id, whether it is still
live, and its 512-bit sign code) are the truth. They live in memory (anonymous pages,
never a mapped file) and, when the workflow gives a folder, in files sealed under the
index's data key (`candor.index.sealed_rows`): chunks of rows, each sealed with
AES-256-GCM on its own and rewritten in place when a row of it changes. Opening a
folder reads and opens every chunk (about a second per million templates). From
`approximate_from` live templates a search scans the sign codes
(`candor.index.signcodes`) for its candidates and rescores them with their float32
rows, so the scores returned are the exact cosines of the candidates found; below it
every search is an exact scan, as `TemplateIndex` does. `exact_search` is always exact:
it is the check. The codes are made when the gallery first reaches `approximate_from`
(every row at once, about a second per million), centred on the mean of its templates
then, and for each template added after.

Expungement: `remove` zeroes the row's float32 vector, its code, its id and its live
bit in memory and reseals the chunks that held them in place before it returns, so no
file of the folder holds a removed template, even sealed. What a file system or SSD
keeps of an overwritten chunk's blocks is ciphertext under the index key, which
`reseal` (key rotation) replaces. Chunks no longer needed after a compaction are zeroed
before the files are cut short, and files of an index replaced or erased are zeroed
before they are unlinked.

Files in the folder (all owned by this module): vectors.sealed, ids.sealed,
live.sealed and codes.sealed (row arrays, one sealed chunk per CHUNK_ROWS rows);
centre.sealed and planes.sealed (the codes' centre and hyperplanes, once there are
codes, each one sealed blob); meta.json (model key, dimension, row count, the codes'
bits and seed, whether the codes are made, the fingerprint of the key the files are
sealed under, the last gallery change the rows reflect: nothing derived from a
template). The centre is a mean over at least `approximate_from` templates; an
expunged template's share of it is not removed. Folders of an older layout (format 2:
plaintext memory-mapped rows) are refused as IndexFolderError, and the workflow erases
them (zeroing every file) and rebuilds the index from the store, which holds the truth.

Thread safe: searches (and the other reads) share a lock that `add`, `remove`, `flush`
and `close` take alone, so a search scores the rows as they were between two changes,
never a half-appended batch, a compaction in progress or row arrays being replaced.
Each thread searches with scratch space of its own. An `add` of an id already held with
the same vector is a replay (two threads applying one logged change) and is skipped.
"""

from __future__ import annotations

import fcntl
import json
import operator
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from candor.index.exact import TemplateIndex, _as_id
from candor.index.sealed_rows import (
    CHUNK_ROWS,
    IndexFileError,
    IndexFolderBusyError,
    IndexFolderError,
    SealedRows,
    chunk_bytes_of,
    chunk_context,
    chunks_for,
)
from candor.index.signcodes import (
    CODE_BITS,
    CODE_SEED,
    SignCoder,
    candidate_rows,
    candidates_for,
)
from candor.sealing import UndecryptableError, key_fingerprint, open_sealed, seal

if TYPE_CHECKING:
    from candor.faces.registry import ModelId

__all__ = [
    "APPROXIMATE_FROM",
    "GalleryIndex",
    "IndexFileError",
    "IndexFolderBusyError",
    "IndexFolderError",
]

# From bench/index_scale.py (docs/performance.md): an exact scan takes about 3 ms (5 ms
# p99) at 200,000 templates and grows linearly (20 ms at 1M), while a scan of sign codes
# with rescoring takes 1.4 ms there with recall@20 0.998. Candidate lists stay exact
# while exact search answers well within the 10 ms target.
APPROXIMATE_FROM: Final = 200_000
_FORMAT: Final = 3
_ENCODE_BATCH: Final = 100_000
_CODE_SIZE: Final = CODE_BITS // 8
_INITIAL_CAPACITY: Final = 1024
_ZERO_CHUNK: Final = 1 << 20
# Files of the layouts before sealing (format 2), erased when a folder is made anew.
_PLAIN_FILES: Final = ("vectors.f32", "ids.i64", "live.u8", "codes.u8", "centre.f32", "planes.f32")
_CENTRE: Final = "centre.sealed"
# Ids another process scrubbed from a held folder (ids only), for the holder to drop too.
_SCRUBBED: Final = "scrubbed.ids"
_PLANES: Final = "planes.sealed"


def _hold(folder: Path) -> int:
    """Take the folder's holder lock (one open index per folder); the descriptor keeps it."""
    handle = os.open(folder / "holder.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise IndexFolderBusyError(f"{folder} is held by another open index") from None
    return handle


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Serialise writes to the folder's files between the holder and `scrub`."""
    handle = os.open(folder / "write.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock


class SharedLock:
    """Many readers or one writer; a waiting writer goes before readers who come later.

    Searches run side by side (NumPy and FAISS release the GIL while they scan), and a
    steady stream of them never keeps an enrolment waiting.
    """

    def __init__(self) -> None:
        self._state = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock with other readers."""
        with self._state:
            while self._writing or self._writers_waiting:
                self._state.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._state:
                self._readers -= 1
                if not self._readers:
                    self._state.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._state:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._state.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._state:
                self._writing = False
                self._state.notify_all()


class GalleryIndex:
    """Nearest neighbours by cosine over one model's templates, in memory or in a folder.

    Args:
        model: the face model of every template here.
        folder: where the sealed files live; None keeps everything in memory only.
        key: the index's data key (32 bytes), which seals the folder's files; required
            with a folder.
        approximate_from: live templates from which searches scan sign codes for
            candidates instead of scanning every float32 row.

    Use `GalleryIndex.open(folder, model, key=...)` to load a folder written before.
    """

    # Closes the folder's holder lock when the index is closed or collected.
    _holder: weakref.finalize[[int], GalleryIndex] | None

    def __init__(
        self,
        model: ModelId,
        folder: Path | None = None,
        *,
        key: bytes | None = None,
        approximate_from: int = APPROXIMATE_FROM,
    ) -> None:
        if model.dimension < 1:
            raise ValueError(f"model {model.key} has dimension {model.dimension}; need >= 1")
        self._setup(model, folder, key, approximate_from)
        self._arrays = self._allocate(_INITIAL_CAPACITY)
        if folder is not None:
            _make_private_folder(folder)
            self._holder = weakref.finalize(self, os.close, _hold(folder))
            with _writing(folder):
                for name in (*_PLAIN_FILES, *_ROW_NAMES, _CENTRE, _PLANES):
                    if (folder / name).exists():
                        _erase_file(folder / name)
                self._write_meta()

    def _setup(
        self, model: ModelId, folder: Path | None, key: bytes | None, approximate_from: int
    ) -> None:
        """The state every index starts from: empty, nothing held, nothing on disk yet."""
        if folder is not None and (key is None or len(key) != 32):
            raise ValueError("an index kept in a folder is sealed: give its 32-byte data key")
        self.model = model
        self.folder = folder
        self._key = key
        self.approximate_from = approximate_from
        # Multiplies signcodes.candidates_for: more candidates, higher recall, slower.
        self.candidate_scale = 1.0
        # Validation and normalisation are TemplateIndex's, so both indexes refuse alike.
        self._checker = TemplateIndex(model)
        self._dimension = int(model.dimension)
        self._coder: SignCoder | None = None  # made with the codes, see _ensure_codes
        self._lock = SharedLock()
        self._scratch = threading.local()  # each thread's distances, see _distances_for
        self._forgotten: set[int] = set()  # see `forget`
        self._count = 0  # rows used, live or not
        self._rows: dict[int, int] = {}
        self._dead = 0
        self._changes = 0  # adds and removes since this object was made
        # Chunks changed in memory and not yet sealed to the folder, and how many chunks
        # each row file holds on disk.
        self._dirty: set[int] = set()
        self._on_disk = 0
        # The last gallery change (candor.store.changes) the rows reflect, kept in
        # meta.json so a reopened folder catches up from there; None: not known.
        self.change_seq: int | None = None
        self._holder = None

    # ---- opening and saving ---------------------------------------------------------

    @classmethod
    def open(
        cls,
        folder: Path,
        model: ModelId,
        *,
        key: bytes,
        approximate_from: int = APPROXIMATE_FROM,
    ) -> GalleryIndex:
        """The index saved in `folder`, or a new empty one there when it holds none.

        Raises:
            IndexFolderError: the folder holds another model's index, an older layout, or
                files that do not agree with each other.
            IndexFileError: a file does not open under `key` (sealed under another key,
                damaged or altered); the message names the file and chunk.
        """
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            return cls(model, folder, key=key, approximate_from=approximate_from)
        holder = _hold(folder)
        try:
            with _writing(folder):
                index = cls._load(folder, model, key, approximate_from, holder)
        except BaseException:
            os.close(holder)
            raise
        index._ensure_codes()  # opened with a lower approximate_from than it was built with
        return index

    @classmethod
    def _load(
        cls,
        folder: Path,
        model: ModelId,
        key: bytes,
        approximate_from: int,
        holder: int,
    ) -> GalleryIndex:
        meta = _read_meta(folder)
        try:
            count = int(meta["count"])
        except (ValueError, KeyError, TypeError) as error:
            raise IndexFolderError(f"{folder / 'meta.json'} is damaged: {error}") from None
        if meta.get("format") != _FORMAT or meta.get("model") != model.key:
            raise IndexFolderError(
                f"{folder} holds an index of {meta.get('model')!r} (format "
                f"{meta.get('format')!r}), not of {model.key} (format {_FORMAT})"
            )
        codes = (meta.get("code_bits"), meta.get("code_seed"))
        coded = bool(meta.get("coded"))
        if codes != (CODE_BITS, CODE_SEED):
            raise IndexFolderError(
                f"{folder} holds sign codes of (bits, seed) {codes}, not {(CODE_BITS, CODE_SEED)}"
            )
        _check_key(folder, meta, key)
        if meta.get("chunk_rows") != CHUNK_ROWS or count < 0:
            raise IndexFolderError(
                f"{folder / 'meta.json'}: {count} rows in chunks of {meta.get('chunk_rows')!r}"
                f" rows, not of {CHUNK_ROWS}"
            )
        index = cls.__new__(cls)
        index._setup(model, folder, key, approximate_from)
        if coded:
            centre = _open_small(folder, model.key, _CENTRE, key)
            planes = _open_small(folder, model.key, _PLANES, key)
            try:
                index._coder = SignCoder(
                    index._dimension,
                    np.frombuffer(centre, dtype=np.float32).copy(),
                    planes=np.frombuffer(planes, dtype=np.float32)
                    .reshape(index._dimension, CODE_BITS)
                    .copy(),
                )
            except ValueError as error:
                raise IndexFolderError(f"{folder}: unreadable sign coder: {error}") from None
        chunks = chunks_for(count)
        # Room for the enrolments to come without regrowing a large gallery at once.
        index._arrays = index._allocate(chunks * CHUNK_ROWS + max(CHUNK_ROWS, count // 16))
        files = index._files()
        for file in files:
            if file.chunks_on_disk() < chunks:
                raise IndexFileError(f"{file.path} holds fewer chunks than {count} rows need")
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for file, array in zip(files, index._arrays, strict=True):
                file.read(key, array, chunks, pool)
        index._on_disk = chunks
        index._count = count
        live = np.flatnonzero(index._live[:count])
        index._rows = dict(zip(index._ids[live].tolist(), live.tolist(), strict=True))
        if len(index._rows) != len(live):
            raise IndexFolderError(f"{folder}: an id appears on two live rows")
        index._dead = count - len(live)
        change_seq = meta.get("change_seq")
        index.change_seq = change_seq if isinstance(change_seq, int) else None
        if (folder / _SCRUBBED).exists():
            index._write_dirty()  # scrubbed while held: already zeroed here, forgotten now
        # Released when the index is closed or collected, so a dropped index frees the folder.
        # Made last: should the load fail, `open` closes the descriptor itself.
        index._holder = weakref.finalize(index, os.close, holder)
        return index

    def flush(self) -> None:
        """Seal the changed chunks and write the metadata to the folder."""
        with self._lock.exclusive():
            self._flush()

    def _flush(self) -> None:
        if self.folder is None:
            return
        with _writing(self.folder):
            self._write_dirty()

    def close(self) -> None:
        """Flush, then let go of the folder (another index may open it)."""
        with self._lock.exclusive():
            self._flush()
            if self._holder is not None:
                self._holder()
                self._holder = None

    def reseal(self, key: bytes) -> None:
        """Seal every file of the folder under `key` instead (key rotation): each chunk is
        rewritten in place, so the files keep nothing sealed under the old key. In memory
        only: just keeps the key."""
        if len(key) != 32:
            raise ValueError("an index's data key is 32 bytes")
        with self._lock.exclusive():
            self._key = key
            if self.folder is None:
                return
            with _writing(self.folder):
                self._dirty.update(range(max(self._on_disk, chunks_for(self._count))))
                if self._coder is not None:
                    self._write_coder()
                self._write_dirty()

    @staticmethod
    def erase_folder(folder: Path) -> None:
        """Zero and delete every file of an index folder that no index holds."""
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*"), reverse=True):
            if path.is_dir():
                path.rmdir()
            else:
                _erase_file(path)
        folder.rmdir()

    @staticmethod
    def folder_model(folder: Path) -> str | None:
        """The model key of the index in `folder` (from its meta.json); None if unreadable."""
        try:
            model = _read_meta(folder).get("model")
        except IndexFolderError:
            return None
        return model if isinstance(model, str) else None

    @staticmethod
    def scrub(folder: Path, template_ids: Iterable[int], key_of: Callable[[str], bytes]) -> int:
        """Zero these templates in a folder that no index of this Workflow holds.

        For expungement by a process other than the folder's holder: each chunk holding
        one of them is opened, the rows zeroed (vector, code, id, live bit) and the chunk
        resealed in place. `key_of` gives the index key of a model key. The holder still
        has the rows in memory until it catches up with the store's change log (its next
        search), and a chunk it reseals before then holds them again until that catch-up
        removes them. Returns how many rows were zeroed; 0 for a folder sealed under
        another key (the key was destroyed: nothing in it can be read) or of an older
        layout (erased whole, and rebuilt from the store when next opened).
        """
        wanted = np.asarray(sorted({_as_id(raw) for raw in template_ids}), dtype=np.int64)
        if len(wanted) == 0 or not (folder / "meta.json").exists():
            return 0
        with _writing(folder):
            meta = _read_meta(folder)
            if meta.get("format") != _FORMAT:
                # Files of an older layout (plaintext rows among them): erased whole.
                GalleryIndex.erase_folder(folder)
                return 0
            model_key = str(meta["model"])
            key = key_of(model_key)
            if meta.get("key") != key_fingerprint(key):
                return 0
            count, dimension = int(meta["count"]), int(meta["dimension"])
            code_size = int(meta["code_bits"]) // 8
            scratch = _row_arrays(CHUNK_ROWS, dimension, code_size)
            files = [
                SealedRows(folder / name, model_key, chunk_bytes_of(array))
                for name, array in zip(_ROW_NAMES, scratch, strict=True)
            ]
            ids_file, live_file = files[1], files[2]
            zeroed = 0
            scrubbed: list[npt.NDArray[np.int64]] = []
            for chunk in range(chunks_for(count)):
                rows = min(CHUNK_ROWS, count - chunk * CHUNK_ROWS)
                ids_file.read_chunk(key, scratch[1], chunk)
                live_file.read_chunk(key, scratch[2], chunk)
                hit = np.flatnonzero(np.isin(scratch[1][:rows], wanted) & (scratch[2][:rows] == 1))
                if not len(hit):
                    continue
                scrubbed.append(scratch[1][hit].copy())
                for file, array in zip(files, scratch, strict=True):
                    if file is not ids_file and file is not live_file:
                        file.read_chunk(key, array, chunk)
                    array[hit] = 0
                    file.write(key, array, [chunk], first_row=chunk * CHUNK_ROWS)
                zeroed += len(hit)
            if scrubbed:
                # The holder drops them too before it next writes (see _apply_scrubbed).
                with (folder / _SCRUBBED).open("ab") as record:
                    record.write(np.concatenate(scrubbed).tobytes())
                    record.flush()
                    os.fsync(record.fileno())
            for array in scratch:
                array.fill(0)  # the scratch held a chunk of templates
        return zeroed

    # ---- the TemplateIndex interface -------------------------------------------------

    def __len__(self) -> int:
        """Number of live templates."""
        return len(self._rows)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._rows

    def __repr__(self) -> str:
        mode = "approximate" if self.approximate else "exact"
        return f"GalleryIndex(model={self.model.key!r}, templates={len(self)}, {mode})"

    @property
    def approximate(self) -> bool:
        """Whether `search` scans sign codes for its candidates (the gallery is large enough)."""
        return len(self) >= self.approximate_from

    @property
    def changes(self) -> int:
        """Counts adds and removes made through this object: a key for caches of its contents."""
        return self._changes

    def vectors_of(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """The unit vectors of these live templates, in the order given (KeyError if absent)."""
        with self._lock.shared():
            return self._vectors_of(ids)

    def _vectors_of(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        rows = []
        for raw in ids:
            template_id = _as_id(raw)
            if template_id not in self._rows:
                raise KeyError(f"template {template_id} is not in the index")
            rows.append(self._rows[template_id])
        return np.asarray(self._vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """A copy of the live ids, in row order."""
        with self._lock.shared():
            live = np.flatnonzero(self._live[: self._count])
            return np.asarray(self._ids[live], dtype=np.int64).copy()

    @property
    def live_ids(self) -> set[int]:
        """The live ids, as a set (a snapshot: later changes do not show in it)."""
        with self._lock.shared():
            return set(self._rows)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add templates; each vector is L2-normalised here. Same rules as TemplateIndex.add,
        except that an id already held with the same vector is skipped: a template's id is
        never given to another vector, so that add is a replay of one already made (the
        workflow's own enrolment and another thread's catch-up with the change log). An id
        given to `forget` is skipped too."""
        checked = self._checker._check_new_ids(ids)
        matrix = self._checker._check_vectors(vectors, expected_rows=len(checked))
        with self._lock.exclusive():
            fresh = [
                at
                for at, value in enumerate(checked)
                if value not in self._rows and value not in self._forgotten
            ]
            for at, value in enumerate(checked):
                if value in self._rows and not np.array_equal(
                    self._vectors[self._rows[value]], matrix[at]
                ):
                    raise ValueError(
                        f"id {value} is already in the index; remove it first to replace it"
                    )
            if len(fresh) < len(checked):
                checked, matrix = [checked[at] for at in fresh], matrix[fresh]
            if not checked:
                return
            if self.folder is None:
                self._append(checked, matrix)
            else:
                with _writing(self.folder):
                    self._append(checked, matrix)
                    self._write_dirty()
            self._ensure_codes()  # takes the folder's write lock itself

    def _append(self, checked: list[int], matrix: npt.NDArray[np.float32]) -> None:
        self._changes += 1
        start = self._count
        self._reserve(start + len(checked))
        vectors, ids, live, codes = self._arrays
        end = start + len(checked)
        vectors[start:end] = matrix
        ids[start:end] = checked
        live[start:end] = 1
        if self._coder is not None:
            codes[start:end] = self._coder.encode(matrix)
        self._count = end
        self._rows.update(zip(checked, range(start, end), strict=True))
        self._dirty.update(range(start // CHUNK_ROWS, chunks_for(end)))

    def remove(self, ids: Iterable[int]) -> int:
        """Remove templates by id (unknown ids ignored); their vectors are zeroed everywhere.

        Returns how many were removed. With a folder, the chunks that held them are
        resealed in place (zeroed) before this returns.
        """
        targets = [_as_id(raw) for raw in ids]
        with self._lock.exclusive():
            rows = sorted(
                {row for value in targets if (row := self._rows.pop(value, None)) is not None}
            )
            if not rows:
                return 0
            if self.folder is None:
                self._drop(np.asarray(rows, dtype=np.int64))
            else:
                with _writing(self.folder):
                    self._drop(np.asarray(rows, dtype=np.int64))
                self._flush()
            return len(rows)

    def forget(self, ids: Iterable[int]) -> int:
        """`remove`, and never add these ids again: for removals committed to the store.

        A thread that read a template before its removal committed (an enrolment about to
        add its own template, a catch-up from an older snapshot) may add it after this;
        such an add is skipped instead. Ids are never given twice, so nothing is lost.
        """
        targets = [_as_id(raw) for raw in ids]
        with self._lock.exclusive():
            self._forgotten.update(targets)
        return self.remove(targets)

    def _drop(self, chosen: npt.NDArray[np.int64]) -> None:
        self._changes += 1
        vectors, ids, live, codes = self._arrays
        vectors[chosen] = 0.0
        ids[chosen] = 0
        live[chosen] = 0
        codes[chosen] = 0
        self._dirty.update((chosen // CHUNK_ROWS).tolist())
        self._dead += len(chosen)
        if self._dead > max(_INITIAL_CAPACITY, self._count // 4):
            self._compact()

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` most similar templates, best first, ties by smaller id.

        From `approximate_from` live templates the candidates come from a scan of sign
        codes (recall below 1, see docs/performance.md); their scores are always exact
        float32 cosines. Same arguments and errors as TemplateIndex.search.
        """
        with self._lock.shared():
            vector, k = self._check_query(query, k)
            if k == 0:
                return []
            coder = self._coder  # made by `add` (or `open`) once the gallery is large enough
            if not self.approximate or coder is None:
                return self._exact(vector, k)
            vectors, _, live, codes = self._arrays
            wanted = candidates_for(self._count, k, self.candidate_scale)
            probe = coder.encode(vector)[0]
            rows = candidate_rows(codes[: self._count], probe, wanted, self._distances_for())
            rows = rows[live[rows].astype(bool)]
            return self._ranked(rows, np.asarray(vectors[rows]) @ vector, k)

    def _distances_for(self) -> npt.NDArray[np.int32]:
        """This thread's scratch for code distances, one int32 per row (kept between
        searches: a fresh 40 MB array per search of 10M templates costs its page faults)."""
        distances: npt.NDArray[np.int32] | None = getattr(self._scratch, "distances", None)
        if distances is None or len(distances) < self._count:
            distances = np.empty(self._vectors.shape[0], dtype=np.int32)
            self._scratch.distances = distances
        return distances

    def exact_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact search whatever the gallery's size: the check on the approximate one."""
        with self._lock.shared():
            vector, k = self._check_query(query, k)
            return self._exact(vector, k) if k else []

    # ---- internals -----------------------------------------------------------------

    def _check_query(self, query: np.ndarray, k: int) -> tuple[npt.NDArray[np.float32], int]:
        k = operator.index(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        probe = np.asarray(query)
        if probe.ndim != 1:
            raise ValueError(
                f"query of shape {probe.shape} is not one vector of shape ({self._dimension},)"
            )
        vector = self._checker._check_vectors(probe[np.newaxis, :], expected_rows=1)[0]
        return vector, min(k, len(self))

    def _exact(self, vector: npt.NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        scores = np.asarray(self._vectors[: self._count]) @ vector
        if self._dead:
            scores[~self._live[: self._count].astype(bool)] = -np.inf
        if k < self._count:
            kth = np.argpartition(scores, self._count - k)[self._count - k]
            rows = np.flatnonzero(scores >= scores[kth])  # every tie at the k-th score
        else:
            rows = np.arange(self._count)
        rows = rows[self._live[rows].astype(bool)]
        return self._ranked(rows, scores[rows], k)

    def _ranked(
        self, rows: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], k: int
    ) -> list[tuple[int, float]]:
        if len(rows) > k:
            # Only the top k and every tie at the k-th score need the full sort.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            kept = scores >= kth
            rows, scores = rows[kept], scores[kept]
        ids = np.asarray(self._ids[rows])
        order = np.lexsort((ids, -scores))[:k]
        return [
            (int(template_id), float(score))
            for template_id, score in zip(ids[order], scores[order], strict=True)
        ]

    def _ensure_codes(self) -> SignCoder | None:
        """The coder, making every row's code first when the gallery has just grown to need
        them; None while it is too small (a larger gallery gives a better centre)."""
        if self._coder is not None or len(self) < self.approximate_from:
            return self._coder
        coder = SignCoder(self._dimension, self._centre_of_live_rows())
        vectors, _, live, codes = self._arrays
        for start in range(0, self._count, _ENCODE_BATCH):
            stop = min(self._count, start + _ENCODE_BATCH)
            codes[start:stop] = coder.encode(np.asarray(vectors[start:stop]))
        codes[: self._count][live[: self._count] == 0] = 0
        self._coder = coder
        if self.folder is not None:
            self._dirty.update(range(chunks_for(self._count)))
            with _writing(self.folder):
                self._write_coder()
                self._write_dirty()
        return coder

    def _write_coder(self) -> None:
        """Seal the codes' centre (a mean of templates) and hyperplanes to the folder."""
        assert self.folder is not None and self._coder is not None and self._key is not None
        for name, array in ((_CENTRE, self._coder.centre), (_PLANES, self._coder.planes)):
            context = chunk_context(self.model.key, name, 0)
            _write_file(self.folder / name, seal(self._key, array.tobytes(), context))

    def _centre_of_live_rows(self) -> npt.NDArray[np.float32]:
        total = np.zeros(self._dimension, dtype=np.float64)
        for start in range(0, self._count, _ENCODE_BATCH):
            stop = min(self._count, start + _ENCODE_BATCH)
            total += np.asarray(self._vectors[start:stop], dtype=np.float64).sum(axis=0)
        return (total / max(1, len(self))).astype(np.float32)  # dead rows are zero

    def _compact(self) -> None:
        """Close the gaps left by removals, moving every row array alike."""
        live = np.flatnonzero(self._live[: self._count])
        kept = len(live)
        shifted = np.flatnonzero(live != np.arange(kept))
        first = int(shifted[0]) if len(shifted) else kept  # rows before it stay in place
        self._dirty.update(range(first // CHUNK_ROWS, chunks_for(self._count)))
        for array in self._arrays:
            array[:kept] = array[live]
            array[kept : self._count] = 0
        self._count = kept
        self._dead = 0
        self._rows = dict(zip(self._ids[:kept].tolist(), range(kept), strict=True))

    # The row arrays, in the order of _ROW_NAMES.
    @property
    def _vectors(self) -> Any:
        return self._arrays[0]

    @property
    def _ids(self) -> Any:
        return self._arrays[1]

    @property
    def _live(self) -> Any:
        return self._arrays[2]

    def _files(self) -> list[SealedRows]:
        """The folder's row files, in the order of the row arrays."""
        if self.folder is None:
            raise RuntimeError("an in-memory index has no files")
        return [
            SealedRows(self.folder / name, self.model.key, chunk_bytes_of(array))
            for name, array in zip(_ROW_NAMES, self._arrays, strict=True)
        ]

    def _allocate(self, capacity: int) -> tuple[Any, ...]:
        if self.folder is not None:
            capacity = chunks_for(capacity) * CHUNK_ROWS  # chunks are sealed whole
        return _row_arrays(capacity, self._dimension, _CODE_SIZE)

    def _reserve(self, needed: int) -> None:
        capacity = self._vectors.shape[0]
        if needed <= capacity:
            return
        # A quarter more at a time: doubling a 5 GB gallery would hold 15 GB while it copies.
        capacity = max(needed, capacity + capacity // 4)
        old = self._arrays
        new = self._allocate(capacity)
        for target, source in zip(new, old, strict=True):
            target[: self._count] = source[: self._count]
            source.fill(0)  # freed memory must not keep templates
        self._arrays = new

    def _write_dirty(self) -> None:
        """Seal the changed chunks in place, then the metadata; chunks past the rows, left
        by a compaction, are zeroed and cut off last. The caller holds the write lock."""
        if self.folder is None:
            return
        assert self._key is not None
        self._apply_scrubbed()
        needed = chunks_for(self._count)
        chunks = sorted(chunk for chunk in self._dirty if chunk < max(needed, self._on_disk))
        if chunks:
            for file, array in zip(self._files(), self._arrays, strict=True):
                file.write(self._key, array, chunks)
        self._on_disk = max(self._on_disk, needed)
        self._dirty.clear()
        self._write_meta()
        if self._on_disk > needed:
            for file in self._files():
                file.cut(needed)
            self._on_disk = needed

    def _apply_scrubbed(self) -> None:
        """Drop the templates another process scrubbed from this folder's files (`scrub`),
        so that no chunk this index writes brings them back. Under the write lock."""
        assert self.folder is not None
        path = self.folder / _SCRUBBED
        if not path.exists():
            return
        ids = np.fromfile(path, dtype=np.int64).tolist()
        self._forgotten.update(ids)  # removals committed to the store: never added again
        rows = sorted({row for value in ids if (row := self._rows.pop(value, None)) is not None})
        if rows:
            self._drop(np.asarray(rows, dtype=np.int64))
        path.unlink()

    def _write_meta(self) -> None:
        if self.folder is None:
            return
        assert self._key is not None
        meta = {
            "format": _FORMAT,
            "model": self.model.key,
            "dimension": self._dimension,
            "count": self._count,
            "chunk_rows": CHUNK_ROWS,
            "code_bits": CODE_BITS,
            "code_seed": CODE_SEED,
            "coded": self._coder is not None,
            "key": key_fingerprint(self._key),
            "change_seq": self.change_seq,
        }
        _write_file(self.folder / "meta.json", json.dumps(meta).encode("utf-8"))


# File name of each row array: float32 vector, id, live flag, sign code.
_ROW_NAMES: Final = ("vectors.sealed", "ids.sealed", "live.sealed", "codes.sealed")


def _row_arrays(capacity: int, dimension: int, code_size: int) -> tuple[Any, ...]:
    """The four row arrays, zeroed, in anonymous memory."""
    return (
        np.zeros((capacity, dimension), dtype=np.float32),
        np.zeros(capacity, dtype=np.int64),
        np.zeros(capacity, dtype=np.uint8),
        np.zeros((capacity, code_size), dtype=np.uint8),
    )


def _read_meta(folder: Path) -> dict[str, Any]:
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexFolderError(f"{meta_path} is damaged: {error}") from None
    if not isinstance(meta, dict):
        raise IndexFolderError(f"{meta_path} is damaged: not a JSON object")
    return meta


def _check_key(folder: Path, meta: dict[str, Any], key: bytes) -> None:
    """Refuse files sealed under another key before reading any (a clear message)."""
    sealed_under, given = meta.get("key"), key_fingerprint(key)
    if sealed_under != given:
        raise IndexFileError(
            f"the files in {folder} are sealed under another index key (fingerprint "
            f"{sealed_under}), not the one given ({given}): the key was rotated or "
            "destroyed; rebuild the index from the store"
        )


def _open_small(folder: Path, model_key: str, name: str, key: bytes) -> bytes:
    """One small sealed file of the folder, opened."""
    path = folder / name
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise IndexFileError(f"{path} cannot be read: {error.strerror}") from None
    try:
        return open_sealed(key, blob, chunk_context(model_key, name, 0))
    except UndecryptableError:
        raise IndexFileError(
            f"{path} chunk 0 does not open under the index's key: its bytes are damaged or "
            "altered, or it was sealed under another key"
        ) from None


def _make_private_folder(folder: Path) -> None:
    """Make the folder, and any parents missing, owner-only (0700) like the whole workspace.

    `mkdir(parents=True)` would give the parents (the workspace's `index/`) 0755.
    """
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _write_file(path: Path, data: bytes) -> None:
    """Write a small file whole under its name (staged, then renamed), owner-only."""
    staged = path.with_name(path.name + ".new")
    handle = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    staged.replace(path)


def _zero_file(path: Path) -> None:
    size = path.stat().st_size
    zeros = bytes(_ZERO_CHUNK)
    with path.open("r+b") as handle:
        written = 0
        while written < size:
            step = min(_ZERO_CHUNK, size - written)
            handle.write(zeros[:step])
            written += step
        handle.flush()
        os.fsync(handle.fileno())


def _erase_file(path: Path) -> None:
    _zero_file(path)
    path.unlink()
