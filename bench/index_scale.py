"""GalleryIndex at 10k to 10M templates: sign-code candidates against exact search, same run.

Run: .venv/bin/python bench/index_scale.py [--sizes 10000 100000 1000000] [--lfw]
     .venv/bin/python bench/index_scale.py --sizes 10000000 --queries 200 \
         --scales 0.5 1 2 --out index_scale_10m

Galleries are synthetic and identity-clustered (as bench/search_latency.py makes them): a
random unit centre per person, 5 templates per person at cosine 0.7 to the centre, 128-d,
generated in chunks of 100,000 so that 10M fit in memory. Queries are new members of
gallery people (mated searches), one at a time. For every size the baseline is measured
in the same run on the same folder: `GalleryIndex.exact_search` (numpy float32
matrix-vector product over the rows in memory, and a partial sort), which is also the
truth. recall@20 is the share of the exact top 20 that the approximate search returns
in its top 20; mate recall is the share of the query person's templates in the exact top
20 that the approximate top 20 also holds.

The index is filled through `GalleryIndex.add` in batches of 10,000 (as a gallery grows
by enrolment) into a folder, closed, and opened again: `build_s` is the filling (sign
codes included), `load_s` the opening.

--lfw checks recall on real templates: every lfw-dev template from the evaluation cache
(plain views, default engine settings), 1,000 of them as queries, with candidate counts
set directly (a 9,039-template gallery is below the index's smallest candidate count),
with codes centred on the gallery's mean as the index makes them, and without.

Writes bench/results/<--out>.json (default index_scale).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from candor.faces.registry import ModelId
from candor.index import GalleryIndex
from candor.index.signcodes import (
    CODE_BITS,
    MIN_CANDIDATES,
    SignCoder,
    candidate_rows,
    candidates_for,
)
from candor.sealing import new_data_key
from search_latency import members_of, unit

K = 20
SEED = 20261127
PER_PERSON = 5
CHUNK = 100_000
Search = Callable[[np.ndarray], list[tuple[int, float]]]


def rss_bytes() -> int:
    pages = Path("/proc/self/statm").read_text(encoding="ascii").split()[1]
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


def timed(search: Search, queries: np.ndarray) -> tuple[list[list[int]], dict[str, float]]:
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
        "max_ms": round(float(ms.max()), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(a[:K]) & set(b[:K])) for a, b in zip(found, truth, strict=True))
    return round(hits / sum(len(b[:K]) for b in truth), 4)


def mate_recall(
    found: list[list[int]], truth: list[list[int]], people: np.ndarray, count: int
) -> float:
    """Share of the query person's templates in the exact top 20 also in the approximate one."""
    gallery_people = count // PER_PERSON
    wanted = hits = 0
    for a, b, person in zip(found, truth, people, strict=True):
        mates = {i for i in b[:K] if i % gallery_people == person}
        wanted += len(mates)
        hits += len(mates & set(a[:K]))
    return round(hits / max(1, wanted), 4)


class Population:
    """How a synthetic gallery's people and photos are drawn.

    Isotropic (the default, as bench/search_latency.py): a random unit centre per person,
    photos at cosine 0.7 to it. LFW-like (`lfw_like`): centres and photos drawn from
    Gaussians with the mean, between-person and within-person covariances of the real
    lfw-dev templates, so that the gallery fills the same narrow cone real templates do.
    """

    def __init__(
        self,
        name: str,
        mean: np.ndarray | None = None,
        between: np.ndarray | None = None,
        within: np.ndarray | None = None,
    ) -> None:
        self.name, self.mean, self.between, self.within = name, mean, between, within

    @classmethod
    def lfw_like(cls, vectors: np.ndarray, people: np.ndarray) -> Population:
        """Fitted to unit templates `vectors` of persons `people` (labels)."""
        _, person, counts = np.unique(people, return_inverse=True, return_counts=True)
        means = np.zeros((counts.size, vectors.shape[1]))
        np.add.at(means, person, vectors)
        means /= counts[:, None]
        several = counts[person] >= 2
        # Deviations from a mean of k photos shrink by (k - 1) / k: undone here.
        shrink = (counts[person[several]] - 1) / counts[person[several]]
        deviations = (vectors[several] - means[person[several]]) / np.sqrt(shrink)[:, None]
        within = np.cov(deviations, rowvar=False)
        between = np.cov(vectors, rowvar=False) - within
        return cls("lfw-like", vectors.mean(axis=0), _root(between), _root(within))

    def centres(self, count: int, rng: np.random.Generator) -> np.ndarray:
        if self.mean is None or self.between is None:
            return unit(rng.standard_normal((count, 128))).astype(np.float32)
        drawn = self.mean + rng.standard_normal((count, len(self.mean))) @ self.between
        return drawn.astype(np.float32)

    def members(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.within is None:
            return members_of(centres.astype(np.float64), rng).astype(np.float32)
        drawn = centres + rng.standard_normal(centres.shape) @ self.within
        return unit(drawn).astype(np.float32)


def _root(covariance: np.ndarray) -> np.ndarray:
    """A matrix R with R.T @ R = covariance (negative eigenvalues, from noise, dropped)."""
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.sqrt(np.clip(values, 0, None))).T


def fill(index: GalleryIndex, size: int, population: Population) -> np.ndarray:
    """Add a synthetic gallery of `size` to the index; return the people's centres."""
    rng = np.random.default_rng(SEED)
    people = size // PER_PERSON
    centres = population.centres(people, rng)
    for start in range(0, size, CHUNK):
        person = np.arange(start, min(size, start + CHUNK)) % people  # id i is person i % people
        vectors = population.members(centres[person], rng)
        for at in range(0, len(vectors), 10_000):
            ids = range(start + at, start + min(len(vectors), at + 10_000))
            index.add(list(ids), vectors[at : at + 10_000])
    return centres


def measure(
    size: int, args: argparse.Namespace, model: ModelId, scratch: Path, population: Population
) -> dict[str, Any]:
    folder = scratch / f"index_{size}"
    started = time.perf_counter()
    key = new_data_key()  # the index files are sealed (bench/index_sealed.py measures that)
    index = GalleryIndex(model, folder, key=key, approximate_from=0)
    centres = fill(index, size, population)
    index.close()
    row: dict[str, Any] = {"templates": size, "people": size // PER_PERSON}
    row["build_s"] = round(time.perf_counter() - started, 1)
    row["build_note"] = "GalleryIndex.add in batches of 10,000, sign codes included"
    del index
    gc.collect()
    row["file_bytes_per_template"] = {
        path.name: round(path.stat().st_size / size, 1)
        for path in sorted(folder.iterdir())
        if path.suffix == ".sealed"
    }
    queries_rng = np.random.default_rng(SEED + 1)
    people = queries_rng.integers(0, len(centres), args.queries)
    queries = population.members(centres[people], queries_rng)
    del centres
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    index = GalleryIndex.open(folder, model, key=key, approximate_from=0)
    row["load_s"] = round(time.perf_counter() - started, 3)
    row["resident_bytes_per_template_after_load"] = round((rss_bytes() - before) / size, 1)
    truth, exact_times = timed(lambda q: index.exact_search(q, K), queries)
    row["exact_numpy"] = exact_times
    print(size, "exact", exact_times, flush=True)
    approximate: list[dict[str, Any]] = []
    for scale in args.scales:
        index.candidate_scale = scale
        found, times = timed(lambda q: index.search(q, K), queries)
        approximate.append(
            {
                "candidate_scale": scale,
                "candidates": candidates_for(size, K, scale),
                **times,
                "recall_at_20": recall(found, truth),
                "mate_recall_at_20": mate_recall(found, truth, people, size),
            }
        )
        print(size, approximate[-1], flush=True)
    row["resident_bytes_per_template_after_searches"] = round((rss_bytes() - before) / size, 1)
    row["sign_codes"] = approximate
    index.close()
    shutil.rmtree(folder)
    return row


def lfw_templates(faces: Path) -> tuple[np.ndarray, np.ndarray]:
    """(unit templates, person names) of lfw-dev, from the evaluation cache."""
    from candor.evaluation.cache import extract_photos

    paths = sorted((faces / "lfw-dev").glob("*/*.jpg"))
    outcomes = extract_photos(paths, workers=2)
    kept = [(o.vector, path.parent.name) for o, path in zip(outcomes, paths, strict=True)]
    vectors = np.stack([vector for vector, _ in kept if vector is not None])
    people = np.array([name for vector, name in kept if vector is not None])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), people


def lfw_recall(args: argparse.Namespace) -> dict[str, Any]:
    from candor.faces import FaceEngine

    vectors, _ = lfw_templates(Path(args.faces))
    model = FaceEngine().model
    index = GalleryIndex(model, approximate_from=0)
    index.add(list(range(len(vectors))), vectors)
    chosen = np.random.default_rng(SEED).choice(len(vectors), 1000, replace=False)
    queries = vectors[chosen]
    truth, exact_times = timed(lambda q: index.exact_search(q, K), queries)
    rows = []
    # Centred on the gallery's mean as GalleryIndex does, and not, to show what it buys.
    for centred in (True, False):
        centre = vectors.mean(axis=0) if centred else None
        coder = SignCoder(int(model.dimension), centre)
        codes = coder.encode(vectors)
        for wanted in (40, 73, 200, 500):
            found: list[list[int]] = []
            for query in queries:
                candidates = candidate_rows(codes, coder.encode(query)[0], wanted)
                scores = vectors[candidates] @ query
                found.append(candidates[np.argsort(-scores, kind="stable")[:K]].tolist())
            rows.append(
                {"centred": centred, "candidates": wanted, "recall_at_20": recall(found, truth)}
            )
            print("lfw", rows[-1], flush=True)
    return {
        "templates": len(vectors),
        "queries": len(queries),
        "exact_numpy": exact_times,
        "note": (
            "the index itself rescores 2,000 of these templates (its minimum); the smaller "
            "counts show how well the codes rank real templates"
        ),
        "sign_codes": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.5])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--population", choices=["isotropic", "lfw-like"], default="isotropic")
    parser.add_argument("--lfw", action="store_true")
    parser.add_argument(
        "--faces", default=str(Path(__file__).resolve().parents[2] / "shared/faces")
    )
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", default="index_scale")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    model = ModelId(name="synthetic", version="1", weights_sha256="0" * 64, dimension=128)
    load_before = os.getloadavg()[0]
    population = Population("isotropic")
    if args.population == "lfw-like":
        population = Population.lfw_like(*lfw_templates(Path(args.faces)))
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        rows = [measure(size, args, model, Path(scratch), population) for size in args.sizes]
    lfw = lfw_recall(args) if args.lfw else None
    load_after = os.getloadavg()[0]
    if not args.no_write:
        write_results(
            args.out,
            {
                "description": (
                    f"GalleryIndex ({CODE_BITS}-bit sign codes scanned by FAISS's popcount "
                    "kernel, the candidates rescored with their float32 rows) against "
                    "numpy exact search over the same rows in the same run, k=20, one query "
                    "at a time. Synthetic identity-clustered 128-d galleries, 5 templates per "
                    "person (settings.population: isotropic, a random unit centre per person "
                    "and templates at cosine 0.7 to it; or lfw-like, Gaussians fitted to the "
                    f"lfw-dev templates); {args.queries} mated queries. recall_at_20 is "
                    "measured against the exact top 20."
                ),
                "settings": {
                    "population": population.name,
                    "k": K,
                    "code_bits": CODE_BITS,
                    "min_candidates": MIN_CANDIDATES,
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
