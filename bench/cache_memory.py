"""Peak memory of a run of searches with probes at the size limits: the probe cache bounded
by count (as before issue 15: the baseline) against the cache bounded by bytes.

Run: .venv/bin/python bench/cache_memory.py [--searches 80] [--pixels 25000000]
    [--old-count 64] [--max-bytes BYTES]

One set of distinct probe photos at the probe limits (`PROBE_LIMITS`: 25 million pixels) is
made once: a photo of an enrolled lfw-dev person, enlarged 4x, on a large canvas of fine
noise (so the JPEG is of a camera's size, a few MB, and each file's bytes differ). Then,
for each cache in turn, a fresh process makes an evaluation workspace (tests/agency.py),
enrols the person, puts that cache in the workflow and runs `--searches` governed
searches (`request_search`), one per photo. Each process reports its peak resident set
(ru_maxrss) and its resident set before the first search, so the two caches are compared
in the same run on the same photos:

- baseline: the count-bounded class as it was (`--old-count` probes, 64 before issue 15),
  kept below verbatim;
- bounded: `candor.workflow.context.ProbeCache` with its default bound
  (`PROBE_CACHE_BYTES`, or `--max-bytes`).

Writes bench/results/cache_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import Progress

from _common import write_results
from candor.workflow import EnrolmentRequest, enrol_files, request_search
from candor.workflow.context import ProbeCache, probe_bytes
from candor.workflow.limits import PROBE_CACHE_BYTES
from candor.workflow.probes import Probe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agency import make_agency, policy_file
from tests.support import people_with_photos, photos_of
from tests.workflow.test_governed import FORM, PROVENANCE


class CountBoundedProbeCache:
    """The probe cache before issue 15 (workflow/context.py), for the baseline: the last
    `size` probes read, whatever each holds."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._probes: OrderedDict[tuple[str, int | None], Probe] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str, face_index: int | None) -> Probe | None:
        key = (sha256, face_index)
        with self._lock:
            probe = self._probes.get(key)
            if probe is not None:
                self._probes.move_to_end(key)
            return probe

    def put(self, sha256: str, face_index: int | None, probe: Probe) -> None:
        with self._lock:
            self._probes[(sha256, face_index)] = probe
            self._probes.move_to_end((sha256, face_index))
            while len(self._probes) > self.size:
                self._probes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._probes)

    @property
    def nbytes(self) -> int:
        return sum(probe_bytes(probe) for probe in self._probes.values())


def faces_root() -> Path:
    """The labelled photos: `CANDOR_FACES`, else ../shared/faces beside the repository."""
    configured = os.environ.get("CANDOR_FACES")
    repository = Path(__file__).resolve().parent.parent
    return Path(configured) if configured else repository.parent / "shared" / "faces"


def rss_bytes() -> int:
    """The resident set of this process now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def make_probes(face: Path, folder: Path, count: int, pixels: int) -> list[Path]:
    """`count` distinct JPEGs of `pixels` pixels (3:2), the face enlarged 4x in the middle."""
    width = int((pixels * 1.5) ** 0.5)
    height = pixels // width
    rng = np.random.default_rng(15)
    canvas = rng.integers(96, 160, size=(height, width, 3), dtype=np.uint8)
    with Image.open(face) as photo:
        enlarged = np.asarray(photo.convert("RGB").resize((photo.width * 4, photo.height * 4)))
    top = (height - enlarged.shape[0]) // 2
    left = (width - enlarged.shape[1]) // 2
    canvas[top : top + enlarged.shape[0], left : left + enlarged.shape[1]] = enlarged
    paths = []
    with Progress() as progress:
        task = progress.add_task("probe photos at the size limits", total=count)
        for number in range(count):
            canvas[:8, :8] = number % 256  # a mark of its own: each file's bytes differ
            canvas[8:16, :8] = number // 256
            path = folder / f"probe-{number:03d}.jpg"
            Image.fromarray(canvas).save(path, quality=90)
            paths.append(path)
            progress.advance(task)
    return paths


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """In this process: a workspace, one enrolment, `--searches` searches with `--cache`."""
    probes = sorted(Path(args.probes).glob("probe-*.jpg"))
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        agency = make_agency(home)
        agency.set_policy(
            policy_file(
                home,
                "two-reviewers",
                source_type="evaluation",
                per_user_per_day="per_user_per_day = 100000",
                per_user_per_30_days="per_user_per_30_days = 100000",
            )
        )
        workflow = agency.workflow
        enrol_files(
            workflow, agency["admin1"], [EnrolmentRequest(Path(args.face), "P-1")], PROVENANCE
        )
        cache: ProbeCache | CountBoundedProbeCache
        if args.cache == "count":
            cache = CountBoundedProbeCache(args.old_count)
        else:
            cache = ProbeCache(args.max_bytes)
        workflow.probe_cache = cache  # type: ignore[assignment]
        before = rss_bytes()
        statuses: dict[str, int] = {}
        started = time.perf_counter()
        for path in probes:
            outcome = request_search(workflow, agency["ana"], path, FORM, face_index=0)
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        seconds = time.perf_counter() - started
        held = {"probes": len(cache), "bytes": cache.nbytes}
        after = rss_bytes()
        workflow.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "searches": len(probes),
        "statuses": statuses,
        "seconds": round(seconds, 1),
        "rss_before_searches_mib": round(before / 2**20, 1),
        "rss_after_searches_mib": round(after / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "cache_held": {"probes": held["probes"], "mib": round(held["bytes"] / 2**20, 1)},
    }


def child(args: argparse.Namespace, cache: str, probes: Path, face: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--cache",
        cache,
        "--probes",
        str(probes),
        "--face",
        str(face),
        "--old-count",
        str(args.old_count),
        "--max-bytes",
        str(args.max_bytes),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {cache} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=80)
    parser.add_argument("--pixels", type=int, default=25_000_000)
    parser.add_argument("--old-count", type=int, default=64)
    parser.add_argument("--max-bytes", type=int, default=PROBE_CACHE_BYTES)
    parser.add_argument("--name", default="cache_memory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", choices=["count", "bytes"], help=argparse.SUPPRESS)
    parser.add_argument("--probes", help=argparse.SUPPRESS)
    parser.add_argument("--face", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args)))
        return 0
    [person] = people_with_photos(faces_root(), 1)
    face = photos_of(person)[0]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        # The workspaces' key-encryption keys go to the scratch folder, not the user's.
        os.environ["XDG_CONFIG_HOME"] = str(folder / "config")
        paths = make_probes(face, folder, args.searches, args.pixels)
        file_mib = sum(path.stat().st_size for path in paths) / len(paths) / 2**20
        load_before = os.getloadavg()[0]
        baseline = child(args, "count", folder, face)
        print("baseline (count-bounded):", json.dumps(baseline))
        bounded = child(args, "bytes", folder, face)
        print("bounded by bytes:", json.dumps(bounded))
    payload = {
        "searches": args.searches,
        "probe_pixels": args.pixels,
        "probe_file_mib_mean": round(file_mib, 2),
        "baseline": {"cache": f"count-bounded, {args.old_count} probes", **baseline},
        "bounded": {"cache": f"bytes-bounded, {args.max_bytes / 2**20:g} MiB", **bounded},
        "peak_rss_ratio": round(bounded["peak_rss_mib"] / baseline["peak_rss_mib"], 3),
        "load_average_1min": {"before": round(load_before, 2), "after": os.getloadavg()[0]},
    }
    path = write_results(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
