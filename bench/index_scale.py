"""GalleryIndex at 10k, 100k and 1M templates: HNSW against numpy exact search, same run.

Run: .venv/bin/python bench/index_scale.py [--sizes 10000 100000 1000000] [--lfw]

Galleries are synthetic and identity-clustered (see bench/search_latency.py): a random
unit centre per person, 5 templates per person at cosine 0.7 to the centre, 128-d.
Queries are new members of gallery people (mated searches), one at a time. For every
size the baseline is measured in the same run on the same vectors: `TemplateIndex`
(numpy float32 matrix-vector product and partial sort). recall@20 is the share of the
exact top 20 that the approximate search returns in its top 20.

The approximate index is built through `GalleryIndex.add` in batches of 10,000 (as a
gallery grows by enrolment) into a folder, closed, and opened again: `load_s` is the
time to open it. A 1M graph takes tens of minutes on two busy cores, so with
--prebuilt DIR a graph built earlier by the same FAISS calls (HnswGraph.add on the same
vectors, in the same order; bench/index_scale.py --build-only) is placed in the folder
instead and its build time taken from DIR/build_<size>.json.

--lfw checks recall on real templates: every lfw-dev template from the evaluation cache
(default engine settings), 1,000 of them as queries.

Writes bench/results/index_scale.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from candor.faces.registry import ModelId
from candor.index import GalleryIndex, TemplateIndex
from candor.index.hnsw import HnswGraph, HnswSettings
from search_latency import members_of, synthetic_gallery

K = 20
SEED = 20240611


def rss_bytes() -> int:
    pages = Path("/proc/self/statm").read_text(encoding="ascii").split()[1]
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


def timed(search: Any, queries: np.ndarray) -> tuple[list[list[int]], dict[str, float]]:
    for query in queries[:20]:
        search(query)
    found: list[list[int]] = []
    samples: list[int] = []
    for query in queries:
        started = time.perf_counter_ns()
        result = search(query)
        samples.append(time.perf_counter_ns() - started)
        found.append([template_id for template_id, _ in result])
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    return found, {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(a[:K]) & set(b[:K])) for a, b in zip(found, truth, strict=True))
    return round(hits / sum(len(b[:K]) for b in truth), 4)


def gallery_of(size: int, prebuilt: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(unit float32 vectors, mated queries) for a synthetic gallery of `size`."""
    rng = np.random.default_rng(SEED)
    centres, vectors, _ = synthetic_gallery(size, 128, 5, rng)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries_rng = np.random.default_rng(SEED + 1)
    people = queries_rng.integers(0, len(centres), 400)
    queries = members_of(centres[people], queries_rng).astype(np.float32)
    if prebuilt is not None and (prebuilt / f"vec_{size}.npy").exists():
        stored = np.load(prebuilt / f"vec_{size}.npy")
        if not np.array_equal(stored, vectors):
            raise SystemExit(f"{prebuilt}/vec_{size}.npy is not this benchmark's gallery")
    return vectors.astype(np.float32), queries


def place_prebuilt(folder: Path, vectors: np.ndarray, graph_file: Path, model: ModelId) -> None:
    """Write a GalleryIndex folder around a graph built earlier on the same rows."""
    folder.mkdir(parents=True)
    size = len(vectors)
    vectors.astype(np.float32).tofile(folder / "vectors.f32")
    np.arange(size, dtype=np.int64).tofile(folder / "ids.i64")
    np.ones(size, dtype=np.uint8).tofile(folder / "live.u8")
    shutil.copyfile(graph_file, folder / "graph.faiss")
    meta = {
        "format": 1,
        "model": model.key,
        "dimension": 128,
        "count": size,
        "capacity": size,
        "graph_rows": size,
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def measure(size: int, args: argparse.Namespace, model: ModelId, scratch: Path) -> dict[str, Any]:
    vectors, queries = gallery_of(size, args.prebuilt)
    ids = list(range(size))
    row: dict[str, Any] = {"templates": size, "people": size // 5}

    exact = TemplateIndex(model)
    exact.add(ids, vectors)
    truth, exact_times = timed(lambda q: exact.search(q, K), queries)
    row["exact_numpy"] = exact_times

    folder = scratch / f"index_{size}"
    settings = HnswSettings(ef_construction=args.ef_construction)
    graph_file = None if args.prebuilt is None else args.prebuilt / f"hnsw_{size}.faiss"
    if graph_file is not None and graph_file.exists():
        place_prebuilt(folder, vectors, graph_file, model)
        build = json.loads((args.prebuilt / f"build_{size}.json").read_text(encoding="utf-8"))
        row["build_s"] = build["build_s"]
        row["build_note"] = build["note"]
    else:
        started = time.perf_counter()
        index = GalleryIndex(model, folder, approximate_from=0, hnsw=settings)
        for start in range(0, size, 10_000):
            index.add(ids[start : start + 10_000], vectors[start : start + 10_000])
        index.close()
        row["build_s"] = round(time.perf_counter() - started, 1)
        row["build_note"] = "GalleryIndex.add in batches of 10,000, two threads"
        del index
        gc.collect()
    row["graph_file_bytes_per_template"] = round((folder / "graph.faiss").stat().st_size / size, 1)
    row["row_file_bytes_per_template"] = round(
        sum((folder / name).stat().st_size for name in ("vectors.f32", "ids.i64", "live.u8"))
        / size,
        1,
    )
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    index = GalleryIndex.open(folder, model, approximate_from=0, hnsw=settings)
    row["load_s"] = round(time.perf_counter() - started, 2)
    row["resident_bytes_per_template_after_load"] = round((rss_bytes() - before) / size, 1)
    approximate: list[dict[str, Any]] = []
    for ef in args.ef:
        index.ef_search = ef
        found, times = timed(lambda q: index.search(q, K), queries)
        approximate.append({"ef_search": ef, **times, "recall_at_20": recall(found, truth)})
        print(size, approximate[-1], flush=True)
    row["resident_bytes_per_template_after_searches"] = round((rss_bytes() - before) / size, 1)
    row["hnsw"] = approximate
    index.close()
    shutil.rmtree(folder)
    return row


def lfw_recall(args: argparse.Namespace) -> dict[str, Any]:
    from candor.evaluation.cache import extract_photos
    from candor.faces import FaceEngine

    faces = Path(args.faces) / "lfw-dev"
    paths = sorted(faces.glob("*/*.jpg"))
    outcomes = extract_photos(paths, workers=2)
    vectors = np.stack([o.vector for o in outcomes if o.vector is not None])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    model = FaceEngine().model
    exact = TemplateIndex(model)
    exact.add(list(range(len(vectors))), vectors)
    index = GalleryIndex(model, approximate_from=0)
    index.add(list(range(len(vectors))), vectors)
    chosen = np.random.default_rng(SEED).choice(len(vectors), 1000, replace=False)
    queries = vectors[chosen].astype(np.float32)
    truth, exact_times = timed(lambda q: exact.search(q, K), queries)
    rows = []
    for ef in args.ef:
        index.ef_search = ef
        found, times = timed(lambda q: index.search(q, K), queries)
        rows.append({"ef_search": ef, **times, "recall_at_20": recall(found, truth)})
        print("lfw", rows[-1], flush=True)
    return {
        "templates": len(vectors),
        "queries": len(queries),
        "exact_numpy": exact_times,
        "hnsw": rows,
    }


def build_only(size: int, args: argparse.Namespace) -> None:
    """Build and save the graph of one size for a later --prebuilt run (slow at 1M)."""
    vectors, _ = gallery_of(size, None)
    args.prebuilt.mkdir(parents=True, exist_ok=True)
    np.save(args.prebuilt / f"vec_{size}.npy", vectors)
    graph = HnswGraph(128, HnswSettings(ef_construction=args.ef_construction))
    started = time.perf_counter()
    graph.add(vectors)
    seconds = time.perf_counter() - started
    graph.save(args.prebuilt / f"hnsw_{size}.faiss")
    note = {
        "build_s": round(seconds, 1),
        "note": "HnswGraph.add in batches of 10,000, two threads, load average "
        f"{os.getloadavg()[0]:.1f} at the end",
    }
    (args.prebuilt / f"build_{size}.json").write_text(json.dumps(note), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--prebuilt", type=Path, default=None)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--lfw", action="store_true")
    parser.add_argument(
        "--faces", default=str(Path(__file__).resolve().parents[2] / "shared/faces")
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.build_only:
        for size in args.sizes:
            build_only(size, args)
        return 0
    model = ModelId(name="synthetic", version="1", weights_sha256="0" * 64, dimension=128)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure(size, args, model, Path(scratch)) for size in args.sizes]
    lfw = lfw_recall(args) if args.lfw else None
    load_after = os.getloadavg()[0]
    if not args.no_write:
        write_results(
            "index_scale",
            {
                "description": (
                    "GalleryIndex (FAISS HNSW, M=32, float16 codes, float32 rescoring) against "
                    "numpy exact search (TemplateIndex) on the same vectors in the same run, "
                    "k=20, one query at a time. Synthetic identity-clustered 128-d galleries: "
                    "a random unit centre per person, 5 templates per person at cosine 0.7 "
                    "to the centre; 400 mated queries. recall_at_20 is measured against the "
                    "exact top 20."
                ),
                "settings": {
                    "k": K,
                    "ef_construction": args.ef_construction,
                    "connectivity": 32,
                    "seed": SEED,
                    "load_average_1min_before_after": [load_before, load_after],
                },
                "results": rows,
                "lfw_dev": lfw,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
