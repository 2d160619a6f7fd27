"""Exact top-k cosine search over the templates of one face model.

The index holds one float32 row per template, L2-normalised on the way in, so a search
is one matrix-vector product (the cosine of every gallery template with the probe)
followed by a partial sort. It is exact: the result is the same candidate list a brute
force comparison of the probe with every template gives, ordered by score, best first,
ties broken by the smaller id, so the same gallery and probe always give the same list.

At 128 dimensions a template costs 512 bytes of vector, 8 bytes of id and a slot in an
id-to-row dict; search time grows linearly with the gallery (see bench/search_latency.py).

Expungement matters here: `remove` moves the last row into the freed slot and zeroes the
vacated row, and growing the arrays zeroes the old ones before letting them go, so the
vector of a removed template does not survive in memory the index owns or once owned.

Not thread safe: callers serialise `add` and `remove` against `search`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final, SupportsIndex, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from candor.faces.registry import ModelId

__all__ = ["TemplateIndex"]

_INITIAL_CAPACITY: Final = 64
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class TemplateIndex:
    """Exact nearest-neighbour search by cosine similarity over one model's templates.

    Args:
        model: the face model every template in this index comes from; only its
            ``dimension`` (vector length) and ``key`` (for messages) are used.

    Attributes:
        model: the model given at construction.
    """

    def __init__(self, model: ModelId) -> None:
        if model.dimension < 1:
            raise ValueError(f"model {model.key} has dimension {model.dimension}; need >= 1")
        self.model = model
        self._dimension = int(model.dimension)
        self._vectors = np.zeros((_INITIAL_CAPACITY, self._dimension), dtype=np.float32)
        self._ids = np.zeros(_INITIAL_CAPACITY, dtype=np.int64)
        self._rows: dict[int, int] = {}

    def __len__(self) -> int:
        """Number of templates in the index."""
        return len(self._rows)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._rows

    def __repr__(self) -> str:
        return f"TemplateIndex(model={self.model.key!r}, templates={len(self)})"

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """A copy of the ids in the index, in storage order (not sorted)."""
        return self._ids[: len(self)].copy()

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add templates; each vector is L2-normalised here and stored as float32.

        Args:
            ids: one integer id per row of `vectors` (int64 range), new to the index and
                distinct from each other.
            vectors: shape (n, model.dimension), any real dtype, finite, non-zero rows.

        Raises:
            ValueError: wrong shape or dimension, a non-finite or all-zero vector, an id
                that is not an integer, is repeated, or is already in the index. Nothing
                is added when any row is refused.

        Adding one template at a time costs amortised O(1) copies per template: the
        storage doubles when full.
        """
        checked_ids = self._check_new_ids(ids)
        matrix = self._check_vectors(vectors, expected_rows=len(checked_ids))
        count = len(checked_ids)
        if count == 0:
            return
        start = len(self._rows)
        self._reserve(start + count)
        self._vectors[start : start + count] = matrix
        self._ids[start : start + count] = checked_ids
        self._rows.update(zip(checked_ids, range(start, start + count), strict=True))

    def remove(self, ids: Iterable[int]) -> int:
        """Remove templates by id; ids not in the index are ignored.

        The freed rows are overwritten (by the last row, then zeros), so the removed
        vectors do not stay in the index's memory.

        Args:
            ids: the ids to remove (repeats are counted once).

        Returns:
            How many templates were removed.

        Raises:
            ValueError: an id is not an integer; nothing is removed then.
        """
        targets = [_as_id(raw) for raw in ids]  # all checked first: no half-done removal
        removed = 0
        for template_id in targets:
            row = self._rows.pop(template_id, None)
            if row is None:
                continue
            last = len(self._rows)  # the row index of the last template, after the pop
            if row != last:
                moved_id = int(self._ids[last])
                self._vectors[row] = self._vectors[last]
                self._ids[row] = moved_id
                self._rows[moved_id] = row
            self._vectors[last] = 0.0
            self._ids[last] = 0
            removed += 1
        return removed

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` templates most similar to `query`, best first.

        Args:
            query: shape (model.dimension,), finite, non-zero; normalised here.
            k: how many candidates to return; capped at the number of templates.
                0 returns an empty list.

        Returns:
            (id, cosine similarity) pairs, highest similarity first, equal scores in
            ascending id order. Empty when the index is empty. Cosines are computed in
            float32, within about 1e-6 of the exact value.

        Raises:
            ValueError: wrong shape, non-finite or all-zero query, or negative `k`.
        """
        k = operator.index(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        probe = np.asarray(query)
        if probe.ndim != 1:
            raise ValueError(
                f"query of shape {probe.shape} is not one vector of shape ({self._dimension},)"
            )
        vector = self._check_vectors(probe[np.newaxis, :], expected_rows=1)[0]
        size = len(self._rows)
        k = min(k, size)
        if k == 0:
            return []
        scores = self._vectors[:size] @ vector
        ids = self._ids[:size]
        if k < size:
            # Everything scoring at least the k-th best is a candidate; taking all ties at
            # that score (not just those argpartition happened to pick) keeps the id
            # tie-break exact.
            kth = np.argpartition(scores, size - k)[size - k]
            candidates = np.flatnonzero(scores >= scores[kth])
        else:
            candidates = np.arange(size)
        order = np.lexsort((ids[candidates], -scores[candidates]))[:k]
        chosen = candidates[order]
        return [
            (int(template_id), float(score))
            for template_id, score in zip(ids[chosen], scores[chosen], strict=True)
        ]

    def _check_new_ids(self, ids: Sequence[int]) -> list[int]:
        if isinstance(ids, np.ndarray) and np.issubdtype(ids.dtype, np.integer):
            ids = ids.tolist()  # Python ints in one step, instead of one numpy scalar at a time
        checked = [_as_id(raw) for raw in ids]
        seen: set[int] = set()
        for value in checked:
            if value in seen:
                raise ValueError(f"id {value} appears more than once in one add()")
            seen.add(value)
        present = [value for value in checked if value in self._rows]
        if present:
            raise ValueError(
                f"id {present[0]} is already in the index"
                + (f" (and {len(present) - 1} more)" if len(present) > 1 else "")
                + "; remove it first to replace its template"
            )
        return checked

    def _check_vectors(self, vectors: np.ndarray, *, expected_rows: int) -> np.ndarray:
        """Validated, L2-normalised float32 copy of `vectors`, shape (expected_rows, d)."""
        array = np.asarray(vectors)
        if array.ndim != 2 or array.shape[1] != self._dimension:
            raise ValueError(
                f"vectors of shape {array.shape} do not fit model {self.model.key}, "
                f"which makes {self._dimension}-dimensional templates"
            )
        if array.shape[0] != expected_rows:
            raise ValueError(f"{expected_rows} ids but {array.shape[0]} vectors")
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"vectors must be real numbers, not {array.dtype}")
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            raise ValueError(f"vector {int(np.argmin(finite))} has NaN or infinite values")
        # Squares summed in float64: float32 input near its range limit cannot overflow.
        norms = np.sqrt(np.einsum("ij,ij->i", array, array, dtype=np.float64))
        if not (norms > 0.0).all():
            raise ValueError(f"vector {int(np.argmin(norms))} is all zeros and has no direction")
        if not np.isfinite(norms).all():
            raise ValueError(f"vector {int(np.argmax(norms))} is too large to normalise")
        normalised = np.empty(array.shape, dtype=np.float32)
        np.divide(array, norms[:, np.newaxis], out=normalised, casting="unsafe")
        return normalised

    def _reserve(self, needed: int) -> None:
        capacity = self._vectors.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        vectors = np.zeros((capacity, self._dimension), dtype=np.float32)
        ids = np.zeros(capacity, dtype=np.int64)
        size = len(self._rows)
        vectors[:size] = self._vectors[:size]
        ids[:size] = self._ids[:size]
        # The old buffer goes back to the allocator; zero it so no template outlives
        # a later remove() in freed memory.
        self._vectors.fill(0.0)
        self._vectors = vectors
        self._ids = ids


def _as_id(raw: object) -> int:
    if type(raw) is int:
        value = raw
    elif isinstance(raw, bool | np.bool_):
        raise ValueError(f"template id must be an integer, not {raw!r}")
    else:
        try:
            value = operator.index(cast("SupportsIndex", raw))
        except TypeError:
            raise ValueError(f"template id must be an integer, not {raw!r}") from None
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"template id {value} does not fit in 64 bits")
    return value
