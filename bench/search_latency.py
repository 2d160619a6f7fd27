"""Search latency, build time and memory of `TemplateIndex` on synthetic 128-d templates.

Run: .venv/bin/python bench/search_latency.py  (about a minute on 2 cores)

The gallery is identity-clustered, like a real one: one random unit centre per person and
several templates per person, each at cosine 0.7 to its centre (the centre plus an
orthogonal random direction, so member-to-member cosines are about 0.49). Queries are new
members of gallery people (mated searches). Latency is wall time of `search(query, k)`,
one query at a time after a warm-up, with numpy's BLAS threads as configured.

Writes bench/results/search_latency.json and prints a table.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from _common import write_results
from candor.faces.registry import ModelId
from candor.index import TemplateIndex

MEMBER_COSINE = 0.7


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def members_of(centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One template per centre row, at cosine MEMBER_COSINE to it."""
    noise = rng.standard_normal(centres.shape)
    noise -= np.sum(noise * centres, axis=1, keepdims=True) * centres  # orthogonal to centre
    noise = unit(noise)
    return MEMBER_COSINE * centres + np.sqrt(1.0 - MEMBER_COSINE**2) * noise


def synthetic_gallery(
    size: int, dimension: int, per_person: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres, vectors as float32, person of each vector)."""
    people = max(1, size // per_person)
    centres = unit(rng.standard_normal((people, dimension)))
    person = np.arange(size) % people
    vectors = members_of(centres[person], rng).astype(np.float32)
    return centres, vectors, person


def percentile_ms(samples_ns: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64), q) / 1e6)


def measure(size: int, args: argparse.Namespace, model: ModelId) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + size)
    centres, vectors, person = synthetic_gallery(size, args.dimension, args.per_person, rng)
    ids = list(range(size))

    gc.collect()
    started = time.perf_counter()
    index = TemplateIndex(model)
    index.add(ids, vectors)
    bulk_s = time.perf_counter() - started

    started = time.perf_counter()
    one_by_one = TemplateIndex(model)
    for row in range(size):
        one_by_one.add([row], vectors[row : row + 1])
    one_by_one_s = time.perf_counter() - started
    del one_by_one

    # numpy reports its buffers to tracemalloc, so this counts the arrays and the id dict.
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    measured = TemplateIndex(model)
    for start in range(0, size, 1000):
        measured.add(ids[start : start + 1000], vectors[start : start + 1000])
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    del measured

    query_people = rng.integers(0, len(centres), args.warmup + args.queries)
    queries = members_of(centres[query_people], rng).astype(np.float32)
    for query in queries[: args.warmup]:
        index.search(query, args.k)
    latencies: list[int] = []
    round_p50_ms: list[float] = []
    rank1_mated = 0
    # Several passes over the same queries show how much of the spread is the machine.
    for _ in range(args.rounds):
        round_ns: list[int] = []
        for query, who in zip(queries[args.warmup :], query_people[args.warmup :], strict=True):
            started_ns = time.perf_counter_ns()
            result = index.search(query, args.k)
            round_ns.append(time.perf_counter_ns() - started_ns)
            rank1_mated += int(person[result[0][0]] == who)
        latencies.extend(round_ns)
        round_p50_ms.append(round(percentile_ms(round_ns, 50), 3))

    # The index must give what a brute-force float64 comparison gives.
    gallery64 = unit(vectors.astype(np.float64))
    for query in queries[args.warmup : args.warmup + 5]:
        scores = gallery64 @ (query / np.linalg.norm(query))
        expected = np.lexsort((np.arange(size), -scores))[: args.k].tolist()
        got = [template_id for template_id, _ in index.search(query, args.k)]
        if got != expected:
            raise SystemExit(f"index result differs from brute force at {size} templates")

    member_cosines = np.sum(unit(vectors[:2000].astype(np.float64)) * centres[person[:2000]], 1)
    return {
        "templates": size,
        "people": len(centres),
        "templates_per_person": args.per_person,
        "member_to_centre_cosine_mean": round(float(member_cosines.mean()), 4),
        "build_bulk_s": round(bulk_s, 4),
        "build_one_by_one_s": round(one_by_one_s, 4),
        "build_one_by_one_us_per_template": round(one_by_one_s / size * 1e6, 2),
        "bytes_per_template": round(held / size, 1),
        "vector_bytes_per_template": 4 * args.dimension,
        "search_p50_ms": round(percentile_ms(latencies, 50), 3),
        "search_p99_ms": round(percentile_ms(latencies, 99), 3),
        "search_mean_ms": round(float(np.mean(latencies)) / 1e6, 3),
        "search_max_ms": round(max(latencies) / 1e6, 3),
        "search_p50_ms_per_round": round_p50_ms,
        "rank1_same_person_rate": round(rank1_mated / len(latencies), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--per-person", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    model = ModelId(
        name="synthetic", version="1", weights_sha256="0" * 64, dimension=args.dimension
    )
    print(
        f"TemplateIndex exact search, {args.dimension}-d synthetic templates: "
        f"{args.per_person} per person at cosine {MEMBER_COSINE} to the person's centre; "
        f"{args.rounds} x {args.queries} mated queries after {args.warmup} warm-up, k={args.k}"
    )
    load_before = os.getloadavg()
    rows = [measure(size, args, model) for size in args.sizes]
    load_after = os.getloadavg()
    busy = max(load_before[0], load_after[0]) > 0.5 * (os.cpu_count() or 1)

    header = (
        f"{'templates':>10} {'build bulk s':>12} {'1-by-1 µs/t':>12} {'bytes/t':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'rank-1':>7}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['templates']:>10} {row['build_bulk_s']:>12.3f} "
            f"{row['build_one_by_one_us_per_template']:>12.1f} {row['bytes_per_template']:>8.0f} "
            f"{row['search_p50_ms']:>8.3f} {row['search_p99_ms']:>8.3f} "
            f"{row['rank1_same_person_rate']:>7.3f}"
        )

    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if busy:
        print("warning: the machine was busy; latencies are pessimistic")

    if not args.no_write:
        path = write_results(
            "search_latency",
            {
                "description": (
                    "Exact top-k cosine search (TemplateIndex), one query at a time. "
                    f"Synthetic identity-clustered {args.dimension}-d templates: a random "
                    f"unit centre per person, {args.per_person} templates per person at "
                    f"cosine {MEMBER_COSINE} to the centre; queries are new members of "
                    "gallery people. bytes_per_template is memory traced while building "
                    "(float32 rows, int64 ids, id->row dict, capacity slack)."
                ),
                "settings": {
                    "dimension": args.dimension,
                    "k": args.k,
                    "queries": args.queries,
                    "warmup": args.warmup,
                    "seed": args.seed,
                    "rounds": args.rounds,
                    "load_average_1min_before_after": [load_before[0], load_after[0]],
                    "blas_threads_env": {
                        name: os.environ[name]
                        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                        if name in os.environ
                    },
                },
                "results": rows,
            },
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
