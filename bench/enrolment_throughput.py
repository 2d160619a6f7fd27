"""Enrolment throughput through the real workflow, 1 and 2 worker processes.

Each run enrols the same lfw-dev photos (250x250 JPEG) into a fresh `benchmark`
workspace with the default engine settings: decode, detect (HOG, one upsampling pass),
landmarks, quality gate, ResNet template(s), content-addressed storage and the database
row, per photo. Both the baseline recipe (one network pass per face) and the default
recipe (its enrolment views) are run, in the same run. Writes
bench/results/enrolment_throughput.json.

    .venv/bin/python bench/enrolment_throughput.py [--photos 400] [--faces ../shared/faces]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import dlib

from candor.faces.recipe import DEFAULT_RECIPE, RECIPES, Recipe
from candor.store import Provenance
from candor.workflow import EnrolmentRequest, EnrolmentStatus, enrol_files

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agency import make_agency

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


def enrol_once(
    requests: list[EnrolmentRequest], workers: int, recipe: Recipe
) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as scratch:
        agency = make_agency(Path(scratch), purpose="benchmark")
        agency.workflow.recipe = recipe
        agency.workflow.settings = replace(agency.workflow.settings, fallback=recipe.fallback)
        with agency.workflow as workflow:
            started = time.perf_counter()
            summary = enrol_files(workflow, agency["admin1"], requests, PROVENANCE, workers=workers)
            seconds = time.perf_counter() - started
    return {
        "recipe": recipe.name,
        "workers": workers,
        "photos": len(requests),
        "enrolled": summary.count(EnrolmentStatus.ENROLLED),
        "refused": summary.count(EnrolmentStatus.REFUSED),
        "seconds": round(seconds, 2),
        "photos_per_second": round(len(requests) / seconds, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    requests = lfw_requests(args.faces, args.photos)
    runs = [
        enrol_once(requests, workers, recipe)
        for recipe in (RECIPES["baseline"], DEFAULT_RECIPE)
        for workers in (1, 2)
    ]
    result = {
        "what": "enrolment through candor.workflow.enrol_files, default engine settings",
        "includes": "worker start-up (model loading), the content-addressed files, the "
        "database rows and one audit entry per photo, for each run",
        "default_recipe": DEFAULT_RECIPE.key,
        "load_average_1min": os.getloadavg()[0],
        "runs": runs,
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
