"""Enrolment throughput through the real workflow, 1 and 2 worker processes.

Each run enrols the same lfw-dev photos (250x250 JPEG) into a fresh `benchmark`
workspace with the default engine settings but the detector: decode, detect, landmarks,
quality gate, ResNet template(s), content-addressed storage and the database row, per
photo. Both the baseline recipe (one network pass per face) and the default recipe (its
enrolment views) are run, for each detector named (`--detector hog blazeface` runs both
in the same run, so their ratio is measured under the same load), on the worker counts
named. The load average is recorded beside every run. Writes
bench/results/enrolment_throughput.json.

    .venv/bin/python bench/enrolment_throughput.py [--photos 400] [--faces ../shared/faces]
        [--detector hog blazeface] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal, cast

import dlib

from candor.faces.recipe import DEFAULT_RECIPE, RECIPES, Recipe
from candor.store import Provenance
from candor.workflow import EnrolmentRequest, EnrolmentStatus, enrol_files

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agency import make_agency

DetectorName = Literal["hog", "cnn", "blazeface"]
RESULTS = Path(__file__).resolve().parent / "results" / "enrolment_throughput.json"
PROVENANCE = Provenance(
    source_type="benchmark",
    source_ref="lfw-dev",
    legal_basis="research use under the LFW terms",
    collected_on=date(2020, 1, 1),
    retain_until=date(2029, 12, 1),
)


def lfw_requests(faces: Path, count: int) -> list[EnrolmentRequest]:
    """The first `count` photos of lfw-dev in sorted order, one subject per folder."""
    requests: list[EnrolmentRequest] = []
    for folder in sorted((faces / "lfw-dev").iterdir()):
        for photo in sorted(folder.glob("*.jpg")):
            requests.append(EnrolmentRequest(photo, folder.name))
            if len(requests) == count:
                return requests
    return requests


def _cpu_seconds() -> float:
    """CPU time of this process and its ended children (the pool's workers are joined)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def enrol_once(
    requests: list[EnrolmentRequest], workers: int, recipe: Recipe, detector: DetectorName
) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as scratch:
        agency = make_agency(Path(scratch), purpose="benchmark")
        agency.workflow.recipe = recipe
        agency.workflow.settings = replace(
            agency.workflow.settings, detector=detector, fallback=recipe.fallback
        )
        detector_key = agency.workflow.settings.key
        with agency.workflow as workflow:
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            summary = enrol_files(workflow, agency["admin1"], requests, PROVENANCE, workers=workers)
            seconds = time.perf_counter() - started
            cpu = _cpu_seconds() - cpu_before
    return {
        "detector": detector,
        "detector_key": detector_key,
        "recipe": recipe.name,
        "workers": workers,
        "photos": len(requests),
        "enrolled": summary.count(EnrolmentStatus.ENROLLED),
        "refused": summary.count(EnrolmentStatus.REFUSED),
        "seconds": round(seconds, 2),
        "photos_per_second": round(len(requests) / seconds, 2),
        "cpu_ms_per_photo": round(1000.0 * cpu / len(requests), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def ratios(
    runs: list[dict[str, float | int | str]], reference: str, figure: str
) -> list[dict[str, object]]:
    """Each detector's `figure` over the reference detector's, per recipe and worker count."""
    rate = {(run["detector"], run["recipe"], run["workers"]): float(run[figure]) for run in runs}
    found: list[dict[str, object]] = []
    for (detector, recipe, workers), value in rate.items():
        base = rate.get((reference, recipe, workers))
        if detector != reference and base:
            found.append(
                {
                    "detector": detector,
                    "over": reference,
                    "recipe": recipe,
                    "workers": workers,
                    "ratio": round(value / base, 2),
                }
            )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--detector",
        nargs="+",
        default=["hog", "blazeface"],
        choices=["hog", "cnn", "blazeface"],
        help="detectors to run, in this order; the first is the reference for the speed-ups",
    )
    parser.add_argument("--workers", nargs="+", type=int, default=[2])
    args = parser.parse_args()
    requests = lfw_requests(args.faces, args.photos)
    detectors = [cast(DetectorName, name) for name in args.detector]
    # Interleaved (recipe, workers, then each detector) so that a change in the
    # neighbours' load hits the detectors alike.
    runs = [
        enrol_once(requests, workers, recipe, detector)
        for recipe in (RECIPES["baseline"], DEFAULT_RECIPE)
        for workers in args.workers
        for detector in detectors
    ]
    result = {
        "what": "enrolment through candor.workflow.enrol_files, default engine settings "
        "but the detector",
        "includes": "worker start-up (model loading), the content-addressed files, the "
        "database rows and one audit entry per photo, for each run",
        "default_recipe": DEFAULT_RECIPE.key,
        "load_average_1min": os.getloadavg()[0],
        "runs": runs,
        # Wall-clock speed-up, and CPU time per photo over the reference's (below 1 is
        # cheaper): on a shared machine the neighbours' load moves the first, not the second.
        "speedups": ratios(runs, detectors[0], "photos_per_second"),
        "cpu_ratios": ratios(runs, detectors[0], "cpu_ms_per_photo"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "dlib": {
            "version": dlib.__version__,
            "blas": bool(dlib.DLIB_USE_BLAS),
            "avx": bool(dlib.USE_AVX_INSTRUCTIONS),
        },
        "date": datetime.now(UTC).date().isoformat(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
