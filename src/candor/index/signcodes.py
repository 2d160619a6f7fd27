"""Sign codes: how a large gallery finds its candidates before exact rescoring.

Each template is given a 512-bit code: the signs of its projections, after subtracting
the gallery's centre, on four fixed random rotations of the template space
(random-hyperplane hashing, Charikar 2002). Two codes differ in each bit with
probability angle / pi, so the Hamming distance between codes estimates the angle
between the centred templates. The centring matters: face templates fill a narrow cone
(the mean of lfw-dev's dlib templates has norm 0.91), and hyperplanes through the origin
would barely split it. On lfw-dev, 200 candidates held 0.92 of the exact top 20 without
centring and 0.99 with it (bench/index_scale.py --lfw). A search
computes the distance from the probe's code to every row's code with FAISS's popcount
kernel (64 bytes per template, so 64 MB per million: memory bandwidth bound, about
2.6 ms per million on this machine), keeps the rows within the smallest radius that
holds the wanted number of candidates, and the gallery index rescores those with their
float32 rows.

Why this and not a graph (docs/performance.md): on identity-clustered galleries a
probe's top 20 is its few mates plus near-random neighbours with nearly equal scores,
which an HNSW graph misses (recall@20 0.85 at 1M templates at ef 1024), while a scan of
codes misses only what its distance estimate ranks beyond the candidates. A code is
computed, appended and zeroed in place like a float32 row: nothing is built at once,
nothing is loaded at start (the codes are memory-mapped), and an expunged template's
code is overwritten where it lies.

The rotations are drawn from a fixed seed; the centre is the mean of the gallery's
templates when it first grows large enough to need codes. Both are then written beside
the codes and read back from there, never drawn again: a later NumPy may draw other
numbers from the same seed, and a probe coded with other hyperplanes than its gallery
would be ranked at random.
"""

from __future__ import annotations

import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import faiss as _faiss
import numpy as np
import numpy.typing as npt

__all__ = [
    "CODE_BITS",
    "CODE_SEED",
    "SignCoder",
    "candidate_rows",
    "candidates_for",
    "hamming_distances",
]

CODE_BITS: Final = 512
CODE_SEED: Final = 20261127
# From bench/index_scale.py, identity-clustered galleries: the candidates needed for
# recall@20 of about 0.995 grow more slowly than the gallery (8,000 = 0.8 % at 1M gave
# 0.996; 20,000 = 0.2 % at 10M gave 0.993), so the count is CANDIDATES_AT_1M scaled by
# (size / 1M) ** CANDIDATE_GROWTH, fitted to those two sizes. Fewer than MIN_CANDIDATES
# is never worth saving (rescoring 2,000 rows takes about 0.1 ms).
CANDIDATES_AT_1M: Final = 8_000
CANDIDATE_GROWTH: Final = 0.4
MIN_CANDIDATES: Final = 2_000
# The radius is read from every SAMPLE_STRIDE-th distance: a histogram of all of them
# would cost as much as the scan's memory traffic again.
SAMPLE_STRIDE: Final = 8
# From this many rows the scan is split across the cores: it is bound by memory
# bandwidth, which one core does not saturate (1M codes: 2.5 ms on one, 1.4 ms on two).
SPLIT_FROM: Final = 200_000
# FAISS's bundled stubs do not cover `hammings` and `swig_ptr`.
faiss: Any = _faiss


def candidates_for(gallery_size: int, k: int, scale: float = 1.0) -> int:
    """How many rows a search of a gallery of this size rescores to return its top k.

    scale: multiplies the count (more candidates, higher recall, slower).
    """
    growth = (max(gallery_size, 1) / 1_000_000) ** CANDIDATE_GROWTH
    return max(MIN_CANDIDATES, 4 * k, int(np.ceil(scale * CANDIDATES_AT_1M * growth)))


class SignCoder:
    """Turns unit vectors of one dimension into `bits`-bit sign codes (bytes, big-endian bits).

    centre: subtracted from every vector before projecting (None: the origin).
    planes: the hyperplanes' normals, shape (dimension, bits); None draws them from `seed`.
    """

    def __init__(
        self,
        dimension: int,
        centre: npt.NDArray[np.float32] | None = None,
        *,
        bits: int = CODE_BITS,
        seed: int = CODE_SEED,
        planes: npt.NDArray[np.float32] | None = None,
    ) -> None:
        if dimension < 1 or bits < 8 or bits % 8:
            raise ValueError(f"need dimension >= 1 and bits a positive multiple of 8, got {bits}")
        self.dimension = dimension
        self.centre = (
            np.zeros(dimension, dtype=np.float32)
            if centre is None
            else np.asarray(centre, dtype=np.float32).reshape(dimension)
        )
        self.bits = bits
        self.seed = seed
        self.code_size = bits // 8
        if planes is not None:
            if planes.shape != (dimension, bits):
                raise ValueError(f"planes of shape {planes.shape}, need ({dimension}, {bits})")
            self.planes = np.ascontiguousarray(planes, dtype=np.float32)
            return
        rng = np.random.default_rng(seed)
        # Orthogonal blocks: within a block the hyperplanes are independent directions, so
        # the bits estimate the angle with less variance than as many random ones.
        blocks: list[npt.NDArray[np.float64]] = []
        while sum(block.shape[1] for block in blocks) < bits:
            rotation, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
            blocks.append(rotation)
        self.planes = np.ascontiguousarray(np.hstack(blocks)[:, :bits], dtype=np.float32)

    def encode(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Codes of these rows, shape (rows, bits / 8)."""
        matrix = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        return np.packbits(((matrix - self.centre) @ self.planes) > 0, axis=1)


def candidate_rows(
    codes: npt.NDArray[np.uint8],
    query_code: npt.NDArray[np.uint8],
    wanted: int,
    scratch: npt.NDArray[np.int32] | None = None,
) -> npt.NDArray[np.int64]:
    """Rows of `codes` nearest to `query_code` by Hamming distance: about `wanted` of them.

    Every row within the chosen radius is returned, so ties at the radius are all kept
    and the count can pass `wanted`; it is at least min(wanted, rows). `scratch`, when
    given, holds the distances (at least one int32 per row): a fresh 40 MB array per
    search of 10M templates costs its page faults every time.
    """
    count, code_size = codes.shape
    if wanted >= count:
        return np.arange(count, dtype=np.int64)
    probe = np.asarray(query_code, dtype=np.uint8)
    if probe.shape != (code_size,):
        raise ValueError(f"query code of shape {probe.shape}; the index's are ({code_size},)")
    distances = hamming_distances(codes, probe, scratch)
    histogram = np.bincount(distances[::SAMPLE_STRIDE], minlength=code_size * 8 + 1)
    sampled_wanted = max(1, wanted // SAMPLE_STRIDE)
    radius = int(np.searchsorted(np.cumsum(histogram), sampled_wanted))
    rows = np.flatnonzero(distances <= radius)
    while len(rows) < wanted:
        # The sample underestimated the rows inside the radius: widen it.
        radius += 1
        rows = np.flatnonzero(distances <= radius)
    return rows.astype(np.int64, copy=False)


def hamming_distances(
    codes: npt.NDArray[np.uint8],
    probe: npt.NDArray[np.uint8],
    out: npt.NDArray[np.int32] | None = None,
) -> npt.NDArray[np.int32]:
    """Hamming distance from `probe` to each row of `codes` (both C-contiguous bytes).

    out: where to write them (its first len(codes) entries); a new array when None.
    """
    codes = np.ascontiguousarray(codes)  # no copy when they already are
    probe = np.ascontiguousarray(probe)
    count, code_size = codes.shape
    if out is None:
        distances = np.empty(count, dtype=np.int32)
    elif out.dtype != np.int32 or not out.flags.c_contiguous or len(out) < count:
        raise ValueError(f"out must be a contiguous int32 array of at least {count} entries")
    else:
        distances = out[:count]
    parts = _cores() if count >= SPLIT_FROM else 1
    bounds = np.linspace(0, count, parts + 1, dtype=np.int64).tolist()

    def scan(start: int, stop: int) -> None:
        # FAISS releases the GIL in its kernels, so the parts run at once.
        faiss.hammings(
            faiss.swig_ptr(probe),
            faiss.swig_ptr(codes[start:stop]),
            1,
            stop - start,
            code_size,
            faiss.swig_ptr(distances[start:stop]),
        )

    if parts == 1:
        scan(0, count)
        return distances
    parts_after_first = list(itertools.pairwise(bounds))[1:]
    others = [_scan_pool().submit(scan, start, stop) for start, stop in parts_after_first]
    scan(bounds[0], bounds[1])
    for other in others:
        other.result()
    return distances


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@functools.cache
def _scan_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, _cores() - 1), thread_name_prefix="sign-codes")
