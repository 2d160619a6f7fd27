"""Which approximate index: FAISS HNSW, USearch and hnswlib side by side with exact search.

Run: .venv/bin/python bench/ann_candidates.py --size 100000  (a few minutes on 2 cores)

Each candidate library is measured on the same identity-clustered 128-d gallery (see
bench/search_latency.py: a random unit centre per person, 5 templates per person at
cosine 0.7 to the centre) with mated queries, one query at a time: build time (inserts
in batches of 1,000, as enrolment would feed it), p50/p99 latency and recall@20 against
exact float32 search, at several search widths (ef), with float32, float16 and int8
storage where the library has them. Memory is the process's resident size growth while
building, so it includes the graph, not just the vectors.

Writes bench/results/ann_candidates.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from search_latency import members_of, synthetic_gallery

K = 20
BATCH = 1000


def rss_bytes() -> int:
    pages = Path("/proc/self/statm").read_text(encoding="ascii").split()[1]
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


def exact_top(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ gallery.T
    return np.argsort(-scores, axis=1)[:, :k]


def latency_recall(
    search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, truth: np.ndarray
) -> dict[str, float]:
    for query in queries[:20]:
        search(query)
    times: list[int] = []
    hits = 0
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter_ns()
        found = search(query)
        times.append(time.perf_counter_ns() - started)
        hits += len(set(found[:K].tolist()) & set(expected.tolist()))
    samples = np.asarray(times, dtype=np.float64) / 1e6
    return {
        "p50_ms": round(float(np.percentile(samples, 50)), 3),
        "p99_ms": round(float(np.percentile(samples, 99)), 3),
        "recall_at_20": round(hits / (K * len(queries)), 4),
    }


def faiss_candidate(vectors: np.ndarray, kind: str, m: int, ef_construction: int) -> Any:
    import faiss

    dimension = vectors.shape[1]
    if kind == "f32":
        index = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
    else:
        qtype = {"f16": faiss.ScalarQuantizer.QT_fp16, "i8": faiss.ScalarQuantizer.QT_8bit}[kind]
        index = faiss.IndexHNSWSQ(dimension, qtype, m, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[: min(len(vectors), 100_000)])
    index.hnsw.efConstruction = ef_construction
    mapped = faiss.IndexIDMap2(index)
    for start in range(0, len(vectors), BATCH):
        chunk = vectors[start : start + BATCH]
        mapped.add_with_ids(chunk, np.arange(start, start + len(chunk), dtype=np.int64))
    return mapped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    centres, vectors, _ = synthetic_gallery(args.size, 128, 5, rng)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    people = rng.integers(0, len(centres), args.queries)
    queries = members_of(centres[people], rng).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_top(vectors, queries, K)
    efs = [32, 64, 128, 256]
    rows: list[dict[str, Any]] = []

    def measure_exact() -> None:
        def search(query: np.ndarray) -> np.ndarray:
            scores = vectors @ query
            top = np.argpartition(scores, len(scores) - K)[-K:]
            return top[np.argsort(-scores[top])]

        rows.append(
            {"library": "numpy exact", "storage": "f32", **latency_recall(search, queries, truth)}
        )

    def measure_faiss(kind: str) -> None:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        index = faiss_candidate(vectors, kind, args.m, args.ef_construction)
        build_s = time.perf_counter() - started
        grown = rss_bytes() - before
        hnsw = faiss.downcast_index(index.index).hnsw
        # One query at a time: OpenMP threads only add hand-off cost (and spin on a busy box).
        faiss.omp_set_num_threads(1)
        for ef in efs:
            hnsw.efSearch = ef

            def search(query: np.ndarray) -> np.ndarray:
                return np.asarray(index.search(query[None, :], K)[1][0])

            rows.append(
                {
                    "library": f"faiss {faiss.__version__} HNSW",
                    "storage": kind,
                    "ef": ef,
                    "build_s": round(build_s, 2),
                    "bytes_per_template": round(grown / args.size, 1),
                    **latency_recall(search, queries, truth),
                }
            )
            print(rows[-1], flush=True)

    def measure_usearch(kind: str) -> None:
        import usearch
        from usearch.index import Index

        version = f"{usearch.VERSION_MAJOR}.{usearch.VERSION_MINOR}.{usearch.VERSION_PATCH}"
        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        index = Index(
            ndim=128,
            metric="ip",
            dtype=kind,
            connectivity=args.m,
            expansion_add=args.ef_construction,
        )
        for start in range(0, args.size, BATCH):
            chunk = vectors[start : start + BATCH]
            index.add(np.arange(start, start + len(chunk)), chunk, threads=args.threads)
        build_s = time.perf_counter() - started
        grown = rss_bytes() - before
        for ef in efs:
            index.expansion_search = ef

            def search(query: np.ndarray) -> np.ndarray:
                return np.asarray(index.search(query, K).keys)

            rows.append(
                {
                    "library": f"usearch {version}",
                    "storage": kind,
                    "ef": ef,
                    "build_s": round(build_s, 2),
                    "bytes_per_template": round(grown / args.size, 1),
                    **latency_recall(search, queries, truth),
                }
            )
            print(rows[-1], flush=True)

    def measure_hnswlib() -> None:
        import hnswlib

        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        index = hnswlib.Index(space="ip", dim=128)
        index.init_index(max_elements=args.size, M=args.m, ef_construction=args.ef_construction)
        index.set_num_threads(args.threads)
        for start in range(0, args.size, BATCH):
            chunk = vectors[start : start + BATCH]
            index.add_items(chunk, np.arange(start, start + len(chunk)))
        build_s = time.perf_counter() - started
        grown = rss_bytes() - before
        for ef in efs:
            index.set_ef(ef)

            def search(query: np.ndarray) -> np.ndarray:
                return np.asarray(index.knn_query(query, k=K)[0][0])

            rows.append(
                {
                    "library": "hnswlib 0.8.0",
                    "storage": "f32",
                    "ef": ef,
                    "build_s": round(build_s, 2),
                    "bytes_per_template": round(grown / args.size, 1),
                    **latency_recall(search, queries, truth),
                }
            )
            print(rows[-1], flush=True)

    candidates: dict[str, Callable[[], None]] = {
        "exact": measure_exact,
        "faiss-f32": lambda: measure_faiss("f32"),
        "faiss-f16": lambda: measure_faiss("f16"),
        "faiss-i8": lambda: measure_faiss("i8"),
        "usearch-f32": lambda: measure_usearch("f32"),
        "usearch-f16": lambda: measure_usearch("f16"),
        "usearch-i8": lambda: measure_usearch("i8"),
        "hnswlib-f32": measure_hnswlib,
    }
    load_before = os.getloadavg()[0]
    for name, run in candidates.items():
        if args.only is None or name in args.only:
            run()
    load_after = os.getloadavg()[0]
    if not args.no_write:
        write_results(
            f"ann_candidates_{args.size}",
            {
                "description": (
                    "Approximate index candidates against exact search, one query at a time. "
                    "Synthetic identity-clustered 128-d templates: a random unit centre per "
                    "person, 5 per person at cosine 0.7 to the centre; mated queries. "
                    f"HNSW M={args.m}, ef_construction={args.ef_construction}, inserts in "
                    f"batches of {BATCH} on {args.threads} thread(s). recall_at_20 is the "
                    "share of the exact top 20 found in the approximate top 20."
                ),
                "settings": {
                    "size": args.size,
                    "queries": args.queries,
                    "m": args.m,
                    "ef_construction": args.ef_construction,
                    "threads": args.threads,
                    "seed": args.seed,
                    "load_average_1min_before_after": [load_before, load_after],
                },
                "results": rows,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
