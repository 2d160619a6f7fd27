"""The approximate part of the gallery index: a FAISS HNSW graph over float16 copies.

FAISS was chosen over USearch and hnswlib (bench/ann_candidates.py, docs/performance.md)
for one property the others lack: the stored vectors can be overwritten in place. An
expunged template's float16 copy is zeroed inside the graph's own storage, so it is gone
from memory and from every graph file written afterwards; USearch and hnswlib only mark a
removed entry and keep its bytes, in memory and in their saved files.

Graph labels are row numbers of the `GalleryIndex` that owns the graph; a removed row
keeps its place in the graph (with a zero vector, which scores 0 against every probe and
only passes traffic on) and is filtered out of results by a bitmap of live rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import faiss as _faiss
import numpy as np
import numpy.typing as npt

__all__ = ["HnswGraph", "HnswSettings"]

_ADD_BATCH: Final = 10_000
# FAISS's bundled stubs miss much of its SWIG surface (scalar quantiser codes, HNSW search
# parameters), so it is used untyped here; every value leaving this module is typed.
faiss: Any = _faiss


@dataclass(frozen=True)
class HnswSettings:
    """Graph shape and search width.

    connectivity: neighbours per node (HNSW's M); 32 keeps recall high on 128-d templates.
    ef_construction: candidate list length while inserting.
    ef_search: candidate list length while searching: recall against latency.
    """

    connectivity: int = 32
    ef_construction: int = 128
    ef_search: int = 1024

    def __post_init__(self) -> None:
        if self.connectivity < 4 or self.ef_construction < 8 or self.ef_search < 8:
            raise ValueError("connectivity >= 4, ef_construction >= 8 and ef_search >= 8")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


class HnswGraph:
    """An inner-product HNSW graph over float16 codes of unit vectors, labelled by row."""

    def __init__(self, dimension: int, settings: HnswSettings, index: Any = None) -> None:
        self.dimension = dimension
        self.settings = settings
        if index is None:
            index = faiss.IndexHNSWSQ(
                dimension,
                faiss.ScalarQuantizer.QT_fp16,
                settings.connectivity,
                faiss.METRIC_INNER_PRODUCT,
            )
            index.hnsw.efConstruction = settings.ef_construction
        self._index = index
        self._storage = faiss.downcast_index(index.storage)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: npt.NDArray[np.float32]) -> None:
        """Append rows (unit float32 vectors); their labels continue from len(self)."""
        faiss.omp_set_num_threads(_cores())
        for start in range(0, len(vectors), _ADD_BATCH):
            self._index.add(np.ascontiguousarray(vectors[start : start + _ADD_BATCH]))

    def erase(self, rows: npt.NDArray[np.int64]) -> None:
        """Zero the stored float16 codes of these rows (their vectors are gone from the graph)."""
        if len(rows) == 0:
            return
        size = self._storage.code_size
        codes = np.asarray(
            faiss.rev_swig_ptr(self._storage.codes.data(), len(self) * size)
        ).reshape(-1, size)
        codes[rows] = 0

    def search(
        self, query: npt.NDArray[np.float32], fetch: int, live_bits: npt.NDArray[np.uint8] | None
    ) -> npt.NDArray[np.int64]:
        """Rows of up to `fetch` nearest live vectors (approximate order), -1 padded."""
        # One probe at a time: OpenMP threads only add hand-off cost for a single query.
        faiss.omp_set_num_threads(1)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.settings.ef_search, fetch)
        selector = None
        if live_bits is not None:
            selector = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(live_bits))
            params.sel = selector
        _, labels = self._index.search(query[np.newaxis, :], fetch, params=params)
        del selector  # kept alive until the search is done: FAISS holds a raw pointer
        return np.asarray(labels[0], dtype=np.int64)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int, settings: HnswSettings) -> HnswGraph:
        # read_index already returns the concrete class; downcasting would make a second,
        # non-owning wrapper and let the owning one free the graph under it.
        index = faiss.read_index(str(path))
        if index.d != dimension or not isinstance(index, faiss.IndexHNSWSQ):
            raise ValueError(f"{path} is not a {dimension}-d HNSW graph")
        return cls(dimension, settings, index)
