"""Accuracy of the default face pipeline on all of lfw-dev, with the identification protocol.

1. Extracts every lfw-dev photo into a fresh template cache (so photos/s is real): decode,
   HOG with one upsampling pass (and its retry), landmarks, quality measures, template.
2. The quality gate's acceptance with the default limits, on the chosen face per photo.
3. The protocol with the default settings, then, from the same cache, with the gate open
   and with the bare pipeline (gate open, no HOG retry), to show what each step changes.
Writes bench/results/accuracy_lfw.json. About 9 minutes on 2 cores.

    .venv/bin/python bench/accuracy_lfw.py [--faces DIR] [--workers 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from candor.evaluation import (
    IdentificationReport,
    extract_photos,
    quality_acceptance,
    run_identification_protocol,
)
from candor.evaluation.identification import list_people
from candor.faces import EngineSettings
from candor.faces.quality import OPEN_GATE

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results" / "accuracy_lfw.json"
# The HOG retry only runs where nothing scored 0 or more, so refusing every face under 0
# gives exactly the counts of a pipeline without the retry, from the same cached photos.
BARE = replace(OPEN_GATE, min_detector_confidence=0.0)


def progress_printer(label: str) -> Callable[[int, int], None]:
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done == total or done % 250 == 0:
            elapsed = time.perf_counter() - started
            print(f"  {label}: {done}/{total} photos, {elapsed:.0f} s", flush=True)

    return report


def summary(report: IdentificationReport) -> str:
    points = ", ".join(
        f"FNIR {p.fnir:.3f} at FPIR {p.target_fpir:g} (cosine >= {p.threshold:.4f})"
        for p in report.operating_points
    )
    return (
        f"gallery {report.gallery_size} ({report.failed_to_enrol} failed to enrol), "
        f"{report.mated_searches} mated / {report.non_mated_searches} non-mated searches; "
        f"rank-1 {report.rank_1:.3f}, rank-10 {report.rank_10:.3f}; {points}; "
        f"FPIR at Euclidean 0.6: {report.fpir_at_distance_0_6:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_faces = Path(os.environ.get("CANDOR_FACES", REPO_ROOT.parent / "shared" / "faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="reuse a template cache")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    dataset = args.faces / "lfw-dev"
    if not dataset.is_dir():
        print(f"lfw-dev not found under {args.faces}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="candor-bench-") as scratch:
        cache = args.cache or Path(scratch)
        defaults = EngineSettings()

        print("1/3 every photo of lfw-dev", flush=True)
        paths = [photo for _, photos in list_people(dataset) for photo in photos]
        started = time.perf_counter()
        outcomes = extract_photos(
            paths, defaults, cache, workers=args.workers, progress=progress_printer("all")
        )
        seconds = time.perf_counter() - started
        # Other jobs on the machine slow extraction; the load average says how much.
        load = os.getloadavg()
        fresh = sum(1 for outcome in outcomes if not outcome.cached)
        print(f"  {fresh} photos extracted in {seconds:.0f} s", flush=True)

        print("2/3 quality gate", flush=True)
        acceptance = quality_acceptance(outcomes, defaults.quality)
        print(
            f"  accepts {acceptance.acceptance_of_faces:.4f} of photos with a face, "
            f"{acceptance.acceptance_of_photos:.4f} of all photos; refused by "
            f"{acceptance.refused_by}",
            flush=True,
        )

        print("3/3 identification protocol", flush=True)
        reports: dict[str, IdentificationReport] = {}
        for label, settings in (
            ("default settings", defaults),
            ("quality gate open", replace(defaults, quality=OPEN_GATE)),
            ("bare pipeline", replace(defaults, quality=BARE)),
        ):
            reports[label] = run_identification_protocol(
                dataset, settings, cache, workers=args.workers
            )
            print(f"  {label}: {summary(reports[label])}", flush=True)

    results = {
        "dataset": "lfw-dev",
        "photos": len(paths),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "workers": args.workers,
        "extraction": {
            "photos_extracted": fresh,
            "seconds": round(seconds, 1),
            "photos_per_second": round(fresh / seconds, 2) if fresh else None,
            "load_average_1_5_15_min_at_end": [round(value, 2) for value in load],
            "note": "decode, HOG (upsample 1, retry), landmarks, quality, one template per photo",
        },
        "engine_settings": {
            "detector": defaults.detector,
            "upsample": defaults.upsample,
            "hog_retry_threshold": defaults.hog_retry_threshold,
            "key": defaults.key,
        },
        "quality_thresholds": {
            "min_eye_distance_px": defaults.quality.min_eye_distance_px,
            "min_sharpness": defaults.quality.min_sharpness,
            "max_abs_yaw_degrees": defaults.quality.max_abs_yaw_degrees,
            "max_abs_roll_degrees": defaults.quality.max_abs_roll_degrees,
            "min_detector_confidence": defaults.quality.min_detector_confidence,
        },
        "quality_acceptance": acceptance.to_dict(),
        "protocol": reports["default settings"].to_dict(),
        "protocol_quality_gate_open": reports["quality gate open"].to_dict(),
        "protocol_bare_pipeline": {
            "note": "gate open and no HOG retry: faces scoring under 0 count as not found",
            **reports["bare pipeline"].to_dict(),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
