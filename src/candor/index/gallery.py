"""GalleryIndex: exact search for small galleries, an HNSW graph for large ones, kept on disk.

The rows (one L2-normalised float32 vector per template, its id and whether it is still
live) are the truth; they live in memory-mapped files in a folder the workflow gives, so
opening a gallery of millions reads no vectors until a search touches them. Above
`approximate_from` live templates a FAISS HNSW graph (kept up to date from GRAPH_FROM
templates on, so that it never has to be built in one go) over float16 copies (`HnswGraph`)
finds candidates and the float32 rows rescore them, so the scores returned are the exact
cosines of the candidates found; below it every search is an exact scan, as
`TemplateIndex` does. `exact_search` is always exact: it is the check.

Expungement: `remove` zeroes the row's float32 vector and its float16 copy in the graph,
clears its live bit and, when the index is on disk, writes the graph file again at once
(the old file is overwritten with zeros before the new one takes its name), so no file
of the folder holds a removed template. Files outgrown by the gallery are zeroed before
they are unlinked, for the same reason.

Files in the folder (all owned by this module): vectors.f32, ids.i64 and live.u8
(row arrays, `capacity` rows), graph.faiss (the graph, when there is one), meta.json
(model key, dimension, row count, how many rows the saved graph covers). Adding a
template appends a row (cheap); the graph file is rewritten by `flush`, on removal, and
when GRAPH_SAVE_EVERY rows have been added since it was last written: rows added after
the last write are put into the graph again when the folder is opened.

Not thread safe: callers serialise `add`, `remove` and `flush` against `search`.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import operator
import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from candor.index.exact import TemplateIndex, _as_id
from candor.index.hnsw import HnswGraph, HnswSettings

if TYPE_CHECKING:
    from candor.faces.registry import ModelId

__all__ = [
    "APPROXIMATE_FROM",
    "GRAPH_FROM",
    "GRAPH_SAVE_EVERY",
    "GalleryIndex",
    "IndexFolderBusyError",
    "IndexFolderError",
]

# From bench/index_scale.py (docs/performance.md): on identity-clustered templates the
# graph's recall@20 at ef 1024 falls from 0.997 at 100k to 0.85 at 1M, while exact search
# at 1M takes about 36 ms on two quiet cores. Candidate lists stay exact up to 1M; the
# graph is kept from 100k on, so it grows with enrolment instead of being built in one
# long pause (a 1M graph took 36 minutes on two busy cores).
APPROXIMATE_FROM: Final = 1_000_000
GRAPH_FROM: Final = 100_000
GRAPH_SAVE_EVERY: Final = 10_000
_FORMAT: Final = 1
_INITIAL_CAPACITY: Final = 1024
_ZERO_CHUNK: Final = 1 << 20


class IndexFolderError(ValueError):
    """The index folder belongs to another model or is damaged; rebuild it from the store."""


class IndexFolderBusyError(IndexFolderError):
    """Another open GalleryIndex (in this process or another) holds the folder."""


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


class GalleryIndex:
    """Nearest neighbours by cosine over one model's templates, in memory or in a folder.

    Args:
        model: the face model of every template here.
        folder: where the files live; None keeps everything in memory.
        approximate_from: live templates from which searches go through the graph.
        hnsw: graph settings.

    Use `GalleryIndex.open(folder, model)` to load a folder written before.
    """

    def __init__(
        self,
        model: ModelId,
        folder: Path | None = None,
        *,
        approximate_from: int = APPROXIMATE_FROM,
        hnsw: HnswSettings | None = None,
    ) -> None:
        if model.dimension < 1:
            raise ValueError(f"model {model.key} has dimension {model.dimension}; need >= 1")
        self.model = model
        self.folder = folder
        self.approximate_from = approximate_from
        self.hnsw = hnsw or HnswSettings()
        # Validation and normalisation are TemplateIndex's, so both indexes refuse alike.
        self._checker = TemplateIndex(model)
        self._dimension = int(model.dimension)
        self._count = 0  # rows used, live or not
        self._rows: dict[int, int] = {}
        self._graph: HnswGraph | None = None
        self._graph_saved_rows = 0
        self._dead = 0
        self._changes = 0  # adds and removes since this object was made
        self._holder: weakref.finalize[[int], GalleryIndex] | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._holder = weakref.finalize(self, os.close, _hold(folder))
            with _writing(folder):
                self._vectors, self._ids, self._live = self._allocate(_INITIAL_CAPACITY)
                self._write_meta()
        else:
            self._vectors, self._ids, self._live = self._allocate(_INITIAL_CAPACITY)

    # ---- opening and saving ---------------------------------------------------------

    @classmethod
    def open(
        cls,
        folder: Path,
        model: ModelId,
        *,
        approximate_from: int = APPROXIMATE_FROM,
        hnsw: HnswSettings | None = None,
    ) -> GalleryIndex:
        """The index saved in `folder`, or a new empty one there when it holds none.

        Raises:
            IndexFolderError: the folder holds another model's index, or its files do not
                agree with each other.
        """
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            return cls(model, folder, approximate_from=approximate_from, hnsw=hnsw)
        holder = _hold(folder)
        try:
            with _writing(folder):
                return cls._load(folder, model, approximate_from, hnsw, holder)
        except BaseException:
            os.close(holder)
            raise

    @classmethod
    def _load(
        cls,
        folder: Path,
        model: ModelId,
        approximate_from: int,
        hnsw: HnswSettings | None,
        holder: int,
    ) -> GalleryIndex:
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            count, capacity = int(meta["count"]), int(meta["capacity"])
            graph_rows = int(meta["graph_rows"])
        except (ValueError, KeyError, TypeError) as error:
            raise IndexFolderError(f"{meta_path} is damaged: {error}") from None
        if meta.get("format") != _FORMAT or meta.get("model") != model.key:
            raise IndexFolderError(
                f"{folder} holds an index of {meta.get('model')!r} (format "
                f"{meta.get('format')!r}), not of {model.key}"
            )
        index = cls.__new__(cls)
        # Released when the index is closed or collected, so a dropped index frees the folder.
        index._holder = weakref.finalize(index, os.close, holder)
        index.model = model
        index.folder = folder
        index.approximate_from = approximate_from
        index.hnsw = hnsw or HnswSettings()
        index._checker = TemplateIndex(model)
        index._dimension = int(model.dimension)
        try:
            index._vectors, index._ids, index._live = index._map(capacity, "r+")
        except (OSError, ValueError) as error:
            raise IndexFolderError(f"{folder}: row files do not match meta.json: {error}") from None
        if not 0 <= count <= capacity:
            raise IndexFolderError(f"{meta_path}: {count} rows do not fit {capacity}")
        index._count = count
        live = np.flatnonzero(index._live[:count])
        index._rows = dict(zip(index._ids[live].tolist(), live.tolist(), strict=True))
        if len(index._rows) != len(live):
            raise IndexFolderError(f"{folder}: an id appears on two live rows")
        index._dead = count - len(live)
        index._graph = None
        index._graph_saved_rows = 0
        graph_path = folder / "graph.faiss"
        if graph_rows and graph_path.exists():
            try:
                graph = HnswGraph.load(graph_path, index._dimension, index.hnsw)
            except (RuntimeError, ValueError):
                graph = None  # a derived file: rebuilt below when the gallery needs one
            if graph is not None and len(graph) == graph_rows <= count:
                index._graph = graph
                index._graph_saved_rows = graph_rows
                graph.add(np.asarray(index._vectors[graph_rows:count]))
                # Rows scrubbed by another process while this graph was saved.
                graph.erase(np.flatnonzero(index._live[:count] == 0))
        index._ensure_graph()
        return index

    def flush(self) -> None:
        """Write what is only in memory (row files, the graph's latest rows) to the folder."""
        if self.folder is None:
            return
        with _writing(self.folder):
            for array in (self._vectors, self._ids, self._live):
                if isinstance(array, np.memmap):
                    array.flush()
            if self._graph is not None and self._graph_saved_rows != len(self._graph):
                self._save_graph()
            self._write_meta()

    def close(self) -> None:
        """Flush, then let go of the folder (another index may open it)."""
        self.flush()
        if self._holder is not None:
            self._holder()
            self._holder = None

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
    def scrub(folder: Path, template_ids: Iterable[int]) -> int:
        """Zero these templates in a folder that no index of this Workflow holds.

        For expungement by a process other than the folder's holder: the float32 rows
        and the graph file's float16 copies are overwritten in place, and the row marked
        dead, which the holder's searches read from the shared row file at once (and its
        next graph write respects). Returns how many rows were zeroed.
        """
        wanted = np.asarray(sorted({_as_id(raw) for raw in template_ids}), dtype=np.int64)
        meta_path = folder / "meta.json"
        if len(wanted) == 0 or not meta_path.exists():
            return 0
        with _writing(folder):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            count, capacity = int(meta["count"]), int(meta["capacity"])
            dimension = int(meta["dimension"])
            vectors = np.memmap(
                folder / "vectors.f32", np.float32, "r+", shape=(capacity, dimension)
            )
            ids = np.memmap(folder / "ids.i64", np.int64, "r+", shape=(capacity,))
            live = np.memmap(folder / "live.u8", np.uint8, "r+", shape=(capacity,))
            rows = np.flatnonzero(np.isin(ids[:count], wanted) & (live[:count] == 1))
            codes = [vectors[row].astype(np.float16).tobytes() for row in rows]
            vectors[rows] = 0.0
            ids[rows] = 0
            live[rows] = 0
            for array in (vectors, ids, live):
                array.flush()
            graph_path = folder / "graph.faiss"
            if codes and graph_path.exists() and graph_path.stat().st_size:
                with graph_path.open("r+b") as handle, mmap.mmap(handle.fileno(), 0) as mapped:
                    for code in codes:
                        at = mapped.find(code)
                        while at >= 0:
                            mapped[at : at + len(code)] = bytes(len(code))
                            at = mapped.find(code, at + len(code))
                    mapped.flush()
        return len(rows)

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
        """Whether `search` goes through the HNSW graph (the gallery is large enough)."""
        return self._graph is not None and len(self) >= self.approximate_from

    @property
    def ef_search(self) -> int:
        """The graph's search width: larger finds more of the exact neighbours, slower."""
        return self.hnsw.ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.hnsw = replace(self.hnsw, ef_search=value)
        if self._graph is not None:
            self._graph.settings = self.hnsw

    @property
    def changes(self) -> int:
        """Counts adds and removes made through this object: a key for caches of its contents."""
        return self._changes

    def vectors_of(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """The unit vectors of these live templates, in the order given (KeyError if absent)."""
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
        live = np.flatnonzero(self._live[: self._count])
        return np.asarray(self._ids[live], dtype=np.int64).copy()

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add templates; each vector is L2-normalised here. Same rules as TemplateIndex.add."""
        checked = self._checker._check_new_ids(ids)
        present = [value for value in checked if value in self._rows]
        if present:
            raise ValueError(
                f"id {present[0]} is already in the index; remove it first to replace it"
            )
        matrix = self._checker._check_vectors(vectors, expected_rows=len(checked))
        if not checked:
            return
        if self.folder is None:
            self._append(checked, matrix)
            return
        with _writing(self.folder):
            self._append(checked, matrix)

    def _append(self, checked: list[int], matrix: npt.NDArray[np.float32]) -> None:
        self._changes += 1
        start = self._count
        self._reserve(start + len(checked))
        self._vectors[start : start + len(checked)] = matrix
        self._ids[start : start + len(checked)] = checked
        self._live[start : start + len(checked)] = 1
        self._count = start + len(checked)
        self._rows.update(zip(checked, range(start, self._count), strict=True))
        if self._graph is not None:
            self._graph.add(matrix)
        self._ensure_graph()
        if self.folder is not None:
            if self._graph is not None and len(self._graph) - self._graph_saved_rows >= (
                GRAPH_SAVE_EVERY
            ):
                self._save_graph()
            self._write_meta()

    def remove(self, ids: Iterable[int]) -> int:
        """Remove templates by id (unknown ids ignored); their vectors are zeroed everywhere.

        Returns how many were removed. With a folder, the row files are flushed and the
        graph file rewritten before this returns.
        """
        targets = [_as_id(raw) for raw in ids]
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
            self.flush()
        return len(rows)

    def _drop(self, chosen: npt.NDArray[np.int64]) -> None:
        self._changes += 1
        self._vectors[chosen] = 0.0
        self._ids[chosen] = 0
        self._live[chosen] = 0
        self._dead += len(chosen)
        if self._graph is not None:
            self._graph.erase(chosen[chosen < len(self._graph)])
            self._save_graph()
        elif self._dead > max(_INITIAL_CAPACITY, self._count // 4):
            self._compact()

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` most similar templates, best first, ties by smaller id.

        Above `approximate_from` live templates the candidates come from the graph
        (recall below 1, see docs/performance.md); their scores are always exact float32
        cosines. Same arguments and errors as TemplateIndex.search.
        """
        vector, k = self._check_query(query, k)
        if k == 0:
            return []
        if not self.approximate or self._graph is None:
            return self._exact(vector, k)
        fetch = min(len(self._graph), max(2 * k, 64))
        bits = None
        if self._dead:
            bits = np.packbits(self._live[: len(self._graph)].astype(bool), bitorder="little")
        found = self._graph.search(vector, fetch, bits)
        rows = found[found >= 0]
        if self._count > len(self._graph):  # cannot happen after add(); kept for safety
            rows = np.concatenate([rows, np.arange(len(self._graph), self._count)])
        rows = rows[self._live[rows].astype(bool)]
        return self._ranked(rows, np.asarray(self._vectors[rows]) @ vector, k)

    def exact_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact search whatever the gallery's size: the check on the approximate one."""
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
        ids = np.asarray(self._ids[rows])
        order = np.lexsort((ids, -scores))[:k]
        return [
            (int(template_id), float(score))
            for template_id, score in zip(ids[order], scores[order], strict=True)
        ]

    def _ensure_graph(self) -> None:
        if self._graph is None and len(self) >= min(GRAPH_FROM, self.approximate_from):
            graph = HnswGraph(self._dimension, self.hnsw)
            graph.add(np.asarray(self._vectors[: self._count]))
            self._graph = graph
            if self.folder is not None:
                self._save_graph()

    def _compact(self) -> None:
        """Close the gaps left by removals (exact mode only: graph labels are rows)."""
        live = np.flatnonzero(self._live[: self._count])
        kept = len(live)
        self._vectors[:kept] = self._vectors[live]
        self._ids[:kept] = self._ids[live]
        self._live[:kept] = 1
        self._vectors[kept : self._count] = 0.0
        self._ids[kept : self._count] = 0
        self._live[kept : self._count] = 0
        self._count = kept
        self._dead = 0
        self._rows = dict(zip(self._ids[:kept].tolist(), range(kept), strict=True))

    def _paths(self) -> tuple[Path, Path, Path]:
        if self.folder is None:
            raise RuntimeError("an in-memory index has no files")
        return self.folder / "vectors.f32", self.folder / "ids.i64", self.folder / "live.u8"

    def _map(self, capacity: int, mode: Literal["r+", "w+"]) -> tuple[Any, Any, Any]:
        vectors_path, ids_path, live_path = self._paths()
        if mode == "w+":
            for path in (vectors_path, ids_path, live_path):
                path.touch(mode=0o600)
        return (
            np.memmap(vectors_path, np.float32, mode, shape=(capacity, self._dimension)),
            np.memmap(ids_path, np.int64, mode, shape=(capacity,)),
            np.memmap(live_path, np.uint8, mode, shape=(capacity,)),
        )

    def _allocate(self, capacity: int) -> tuple[Any, Any, Any]:
        if self.folder is None:
            return (
                np.zeros((capacity, self._dimension), dtype=np.float32),
                np.zeros(capacity, dtype=np.int64),
                np.zeros(capacity, dtype=np.uint8),
            )
        for path in self._paths():
            if path.exists():
                _erase_file(path)
        return self._map(capacity, "w+")

    def _reserve(self, needed: int) -> None:
        capacity = self._vectors.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        old = (self._vectors, self._ids, self._live)
        new: tuple[Any, Any, Any]
        if self.folder is None:
            new = self._allocate(capacity)
            for target, source in zip(new, old, strict=True):
                target[: self._count] = source[: self._count]
            old[0].fill(0.0)  # freed memory must not keep templates
        else:
            # Copy to side files, then zero the old ones before the new take their names.
            staged = self.folder / "grow"
            staged.mkdir(exist_ok=True, mode=0o700)
            new_paths = [staged / path.name for path in self._paths()]
            new = (
                np.memmap(new_paths[0], np.float32, "w+", shape=(capacity, self._dimension)),
                np.memmap(new_paths[1], np.int64, "w+", shape=(capacity,)),
                np.memmap(new_paths[2], np.uint8, "w+", shape=(capacity,)),
            )
            for target, source in zip(new, old, strict=True):
                target[: self._count] = source[: self._count]
                target.flush()
            del old
            self._vectors = self._ids = self._live = None
            for new_path, path in zip(new_paths, self._paths(), strict=True):
                _erase_file(path)
                new_path.replace(path)
            staged.rmdir()
            new = self._map(capacity, "r+")
        self._vectors, self._ids, self._live = new
        if self.folder is not None:
            self._write_meta()

    def _save_graph(self) -> None:
        if self.folder is None or self._graph is None:
            return
        path = self.folder / "graph.faiss"
        staged = self.folder / "graph.faiss.new"
        # Rows another process scrubbed: their float16 copies must not be written back.
        self._graph.erase(np.flatnonzero(self._live[: len(self._graph)] == 0))
        self._graph.save(staged)
        with staged.open("rb") as handle:
            os.fsync(handle.fileno())
        if path.exists():
            _zero_file(path)  # the old graph may hold a template removed since
        staged.replace(path)
        self._graph_saved_rows = len(self._graph)
        self._write_meta()

    def _write_meta(self) -> None:
        if self.folder is None:
            return
        meta = {
            "format": _FORMAT,
            "model": self.model.key,
            "dimension": self._dimension,
            "count": self._count,
            "capacity": int(self._vectors.shape[0]),
            "graph_rows": self._graph_saved_rows if self._graph is not None else 0,
        }
        staged = self.folder / "meta.json.new"
        staged.write_text(json.dumps(meta), encoding="utf-8")
        staged.replace(self.folder / "meta.json")


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
