"""Sealed gallery index files against the plaintext memory-mapped ones: same gallery, same run.

Run: .venv/bin/python bench/index_sealed.py --sizes 100000            (development)
     .venv/bin/python bench/index_sealed.py --sizes 1000000 10000000   (the figures)

For each size one synthetic identity-clustered 128-d gallery (bench/index_scale.py's: a
random unit centre per person, 5 templates per person at cosine 0.7 to it) is built once,
through `GalleryIndex.add` in batches of 100,000 into a sealed folder (today's format:
chunks of 8192 rows, AES-256-GCM under the index key). The same rows (and the same sign
codes, centre and hyperplanes) are then written as the plaintext memory-mapped folder of
the release before sealing (format 2), which the baseline opens with that release's own
GalleryIndex (src/candor/index/gallery.py at BASELINE_COMMIT, loaded from git).

Each figure is measured in fresh processes, the baseline beside the sealed one:
- open_s: `GalleryIndex.open` (plaintext: maps the files, reads no row; sealed: reads and
  opens every chunk into memory), and first_search_ms, the first search after it (the
  plaintext index faults its pages in then).
- peak memory (VmHWM) of one process that opens the index and searches it; and of two
  worker processes holding the same folder at once (as two server workers of one node
  would: the second one's holder lock is bypassed here). Plaintext maps share one copy
  of the files' pages in the page cache (PSS shows each process's share); sealed rows are
  each process's own anonymous memory: the figure is per process.
- search p50/p99, k=20, of both indexes in one process, queries alternating between them
  one at a time so that the machine's load weighs on both alike (sign-code candidates and
  exact rescoring from APPROXIMATE_FROM templates, exact scans below).

The files are in the page cache when opened (they were just written): open_s is the cost
of opening (decrypting) rather than of the disk. Writes bench/results/<--out>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from candor.faces.registry import ModelId
from candor.index import APPROXIMATE_FROM, GalleryIndex
from candor.index.signcodes import CODE_BITS, CODE_SEED
from candor.sealing import new_data_key
from index_scale import CHUNK, PER_PERSON, SEED, Population

# The last commit whose index files were plaintext memory-mapped rows (format 2).
BASELINE_COMMIT = "5c4f0a983797084d8dc64ed4bb2d71fea9859ff7"
REPO = Path(__file__).resolve().parent.parent
K = 20
MODEL = ModelId(name="bench", version="1", weights_sha256="0" * 64, dimension=128)


def baseline_gallery() -> types.ModuleType:
    """The plaintext GalleryIndex module of BASELINE_COMMIT."""
    source = subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:src/candor/index/gallery.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("plain_gallery")
    sys.modules["plain_gallery"] = module
    exec(compile(source, "plain_gallery.py", "exec"), module.__dict__)
    return module


def memory() -> dict[str, int]:
    """This process's peak and current resident memory, and its proportional share (PSS)."""
    status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    fields = {line.split(":")[0]: line.split()[1] for line in status if line.startswith("Vm")}
    rollup = Path("/proc/self/smaps_rollup").read_text(encoding="ascii").splitlines()
    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return {
        "peak_rss_bytes": int(fields["VmHWM"]) * 1024,
        "rss_bytes": int(fields["VmRSS"]) * 1024,
        "pss_bytes": pss * 1024,
    }


def open_index(variant: str, folder: Path, key: bytes, *, bypass_lock: bool = False) -> Any:
    if variant == "plain":
        module = baseline_gallery()
        if bypass_lock:
            module._hold = lambda _folder: os.open(os.devnull, os.O_RDONLY)
        return module.GalleryIndex.open(folder, MODEL)
    if bypass_lock:
        import candor.index.gallery as sealed

        sealed._hold = lambda _folder: os.open(os.devnull, os.O_RDONLY)  # type: ignore[assignment]
    return GalleryIndex.open(folder, MODEL, key=key)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One process: open one index, search it; what it took (printed as JSON)."""
    queries = np.load(args.queries_file)
    key = bytes.fromhex(os.environ["BENCH_INDEX_KEY"])
    if args.ready:  # two workers: both open, then both wait until the other has too
        Path(args.ready).touch()
    started = time.perf_counter()
    index = open_index(args.worker, Path(args.folder), key, bypass_lock=args.bypass_lock)
    open_s = time.perf_counter() - started
    started = time.perf_counter()
    index.search(queries[0], K)
    first_ms = (time.perf_counter() - started) * 1000
    for query in queries[1:]:
        index.search(query, K)
    if args.hold:  # stay alive (holding the index) until the parent says
        Path(args.hold + ".opened").touch()
        while not Path(args.hold).exists():
            time.sleep(0.05)
    return {"open_s": round(open_s, 3), "first_search_ms": round(first_ms, 2), **memory()}


def compare_searches(args: argparse.Namespace) -> dict[str, Any]:
    """Both indexes in one process, queries alternating between them: p50 and p99 each."""
    queries = np.load(args.queries_file)
    key = bytes.fromhex(os.environ["BENCH_INDEX_KEY"])
    plain = open_index("plain", Path(args.folder) / "plain", key)
    sealed = open_index("sealed", Path(args.folder) / "sealed", key)
    samples: dict[str, list[float]] = {"plain": [], "sealed": []}
    same = 0
    for warm in queries[:20]:
        plain.search(warm, K)
        sealed.search(warm, K)
    for n, query in enumerate(queries):
        order = (("plain", plain), ("sealed", sealed))
        answers = {}
        for name, index in order if n % 2 == 0 else order[::-1]:
            started = time.perf_counter_ns()
            answers[name] = index.search(query, K)
            samples[name].append((time.perf_counter_ns() - started) / 1e6)
        same += answers["plain"] == answers["sealed"]
    result: dict[str, Any] = {"same_answers": f"{same}/{len(queries)}"}
    for name, values in samples.items():
        ms = np.asarray(values)
        result[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3),
        }
    result["sealed_p50_over_plain"] = round(
        result["sealed"]["p50_ms"] / result["plain"]["p50_ms"], 3
    )
    return result


def run_child(argv: list[str], key: bytes) -> dict[str, Any]:
    env = {**os.environ, "BENCH_INDEX_KEY": key.hex(), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{argv[:2]} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def two_workers(variant: str, folder: Path, queries_file: Path, key: bytes) -> dict[str, Any]:
    """Two processes holding the same folder at once: each one's memory while both hold it."""
    env = {**os.environ, "BENCH_INDEX_KEY": key.hex(), "OMP_NUM_THREADS": "1"}
    release = folder.parent / f"release-{variant}"
    children = []
    for n in range(2):
        argv = [
            *("--worker", variant, "--folder", str(folder), "--queries-file", str(queries_file)),
            *("--hold", f"{release}-{n}", "--bypass-lock"),
        ]
        children.append(
            subprocess.Popen(
                [sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True, env=env
            )
        )
    for n in range(2):
        while not Path(f"{release}-{n}.opened").exists():
            if children[n].poll() is not None:
                raise RuntimeError(f"worker {n} of {variant} failed")
            time.sleep(0.1)
    # Both hold the index now: let them report and go.
    for n in range(2):
        Path(f"{release}-{n}").touch()
    reports = []
    for child in children:
        out, _ = child.communicate()
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "workers": reports,
        "sum_peak_rss_bytes": sum(r["peak_rss_bytes"] for r in reports),
        "sum_pss_bytes": sum(r["pss_bytes"] for r in reports),
    }


def write_plain_copy(index: GalleryIndex, folder: Path) -> None:
    """The index's rows, codes and coder as the plaintext folder of format 2."""
    folder.mkdir(mode=0o700)
    count = index._count
    vectors, ids, live, codes = index._arrays
    vectors[:count].tofile(folder / "vectors.f32")
    ids[:count].tofile(folder / "ids.i64")
    live[:count].tofile(folder / "live.u8")
    codes[:count].tofile(folder / "codes.u8")
    coder = index._coder
    if coder is not None:
        coder.centre.tofile(folder / "centre.f32")
        coder.planes.tofile(folder / "planes.f32")
    meta = {
        "format": 2,
        "model": MODEL.key,
        "dimension": MODEL.dimension,
        "count": count,
        "capacity": count,
        "code_bits": CODE_BITS,
        "code_seed": CODE_SEED,
        "coded": coder is not None,
        "change_seq": None,
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def fill(index: GalleryIndex, size: int, population: Population) -> np.ndarray:
    """index_scale.fill's gallery (the same rows and ids), added in batches of 100,000."""
    rng = np.random.default_rng(SEED)
    people = size // PER_PERSON
    centres = population.centres(people, rng)
    for start in range(0, size, CHUNK):
        person = np.arange(start, min(size, start + CHUNK)) % people  # id i is person i % people
        index.add(list(range(start, start + len(person))), population.members(centres[person], rng))
    return centres


def measure(size: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    key = new_data_key()
    folder = scratch / f"gallery_{size}"
    folder.mkdir()
    started = time.perf_counter()
    index = GalleryIndex(MODEL, folder / "sealed", key=key)
    index._reserve(size)  # one allocation: the build measures sealing, not regrowing
    centres = fill(index, size, Population("isotropic"))
    build_s = time.perf_counter() - started
    write_plain_copy(index, folder / "plain")
    index.close()
    del index
    gc.collect()
    rng = np.random.default_rng(SEED + 1)
    people = rng.integers(0, len(centres), args.queries)
    queries = Population("isotropic").members(centres[people], rng)
    del centres
    gc.collect()
    queries_file = folder / "queries.npy"
    np.save(queries_file, queries)
    row: dict[str, Any] = {
        "templates": size,
        "people": size // PER_PERSON,
        "build_s": round(build_s, 1),
        "file_bytes": {
            variant: sum(p.stat().st_size for p in (folder / variant).iterdir())
            for variant in ("plain", "sealed")
        },
    }
    print(size, "built", row, flush=True)
    one: dict[str, Any] = {}
    for variant in ("plain", "sealed"):
        argv = ["--worker", variant, "--folder", str(folder / variant)]
        one[variant] = run_child([*argv, "--queries-file", str(queries_file)], key)
        print(size, variant, one[variant], flush=True)
    row["open_s"] = {variant: one[variant]["open_s"] for variant in one}
    row["first_search_ms"] = {variant: one[variant]["first_search_ms"] for variant in one}
    row["one_process"] = one
    row["search"] = run_child(
        ["--compare", "--folder", str(folder), "--queries-file", str(queries_file)], key
    )
    print(size, "search", row["search"], flush=True)
    if args.two_workers:
        row["two_workers"] = {
            variant: two_workers(variant, folder / variant, queries_file, key)
            for variant in ("plain", "sealed")
        }
        print(size, "two workers", row["two_workers"], flush=True)
    shutil.rmtree(folder)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-two-workers", dest="two_workers", action="store_false")
    parser.add_argument("--out", default="index_sealed")
    parser.add_argument("--scratch", default=None, help="folder for the galleries (default tmp)")
    parser.add_argument(
        "--append", action="store_true", help="keep the rows (sizes) already in the results file"
    )
    # Internal: the child processes.
    parser.add_argument("--worker", choices=["plain", "sealed"])
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--folder")
    parser.add_argument("--queries-file")
    parser.add_argument("--hold")
    parser.add_argument("--ready")
    parser.add_argument("--bypass-lock", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.compare:
        print(json.dumps(compare_searches(args)))
        return
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="index_sealed_") as scratch:
        rows = [measure(size, args, Path(scratch)) for size in args.sizes]
    loads = [[round(load_before, 2), round(os.getloadavg()[0], 2)]]
    earlier = Path(__file__).parent / "results" / f"{args.out}.json"
    if args.append and earlier.exists():
        document = json.loads(earlier.read_text(encoding="utf-8"))
        rows = [row for row in document["results"] if row["templates"] not in args.sizes] + rows
        loads = document["settings"]["load_average_1min_before_after"] + loads
    path = write_results(
        args.out,
        {
            "description": (
                "Gallery index files sealed (chunks of 8192 rows, AES-256-GCM, plaintext "
                "only in memory) against the plaintext memory-mapped files of the release "
                f"before ({BASELINE_COMMIT[:7]}), the same synthetic 128-d gallery, same run. "
                "open_s: GalleryIndex.open (files in the page cache); peak memory: VmHWM "
                "of a process that opened and searched the index; two_workers: two processes "
                "holding the same folder at once (sealed rows are per process; plaintext "
                "maps share the page cache, see pss_bytes); search: both indexes in one "
                f"process, queries alternating, k={K}, sign codes from {APPROXIMATE_FROM} "
                "templates."
            ),
            "settings": {
                "k": K,
                "queries": args.queries,
                "seed": SEED,
                "baseline_commit": BASELINE_COMMIT,
                # One pair per run that wrote rows here (with --append, several).
                "load_average_1min_before_after": loads,
            },
            "results": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
