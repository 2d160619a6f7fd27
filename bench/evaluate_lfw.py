"""`candor evaluate --scratch` on all of lfw-dev, through the library: the report card.

Runs the full evaluation (identification protocol, 1:1 over all pairs, bootstrap
intervals over people) with the template cache at CANDOR_CACHE (default: the user cache
folder, warm after bench/accuracy_lfw.py or an earlier run; pass --cold for a fresh
cache and real extraction times), and writes bench/results/evaluate_lfw.json with every
figure, its interval, the time of each stage and the wall time. The foundation's figures
(bench/results/accuracy_lfw.json) are compared with the intervals.

    .venv/bin/python bench/evaluate_lfw.py [--faces ../shared/faces] [--workers 2] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_info
from candor.evaluation.cache import default_cache_dir
from candor.evaluation.report_card import EvaluationOptions, evaluate_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results" / "evaluate_lfw.json"
FOUNDATION = REPO_ROOT / "bench" / "results" / "accuracy_lfw.json"
LFW_LIMITS = (
    "LFW: photos of public figures from news media, mostly frontal, well lit and "
    "professionally taken; not representative of booking photos or surveillance stills; "
    "people unevenly represented (one person has 530 photos); known label errors exist."
)


def foundation_figures() -> dict[str, float]:
    """The figures bench/accuracy_lfw.py measured with the same protocol."""
    protocol = json.loads(FOUNDATION.read_text())["protocol"]
    figures = {"rank1": protocol["rank_1"], "rank10": protocol["rank_10"]}
    for point in protocol["fnir_at_fpir"]:
        figures[f"fnir_at_fpir_{point['target_fpir']:g}"] = point["fnir"]
        figures[f"threshold_at_fpir_{point['target_fpir']:g}"] = point["threshold"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_faces = Path(os.environ.get("CANDOR_FACES", REPO_ROOT.parent / "shared" / "faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="extract into a fresh cache")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    dataset = args.faces / "lfw-dev"
    if not dataset.is_dir():
        print(f"lfw-dev not found under {args.faces}", file=sys.stderr)
        return 2
    stages: dict[str, float] = {}
    started = time.perf_counter()
    mark = {"stage": "", "at": started}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != mark["stage"]:
            print(f"  {now - started:6.1f} s: {stage}", flush=True)
            mark["stage"] = stage
        stages[stage] = round(now - started, 2)

    with tempfile.TemporaryDirectory(prefix="candor-evaluate-") as scratch:
        cache = Path(scratch) if args.cold else default_cache_dir()
        evaluation = evaluate_folder(
            dataset,
            options=EvaluationOptions(limits=LFW_LIMITS),
            cache_dir=cache,
            workers=args.workers,
            progress=progress,
        )
    wall = time.perf_counter() - started
    result = evaluation.result
    foundation = foundation_figures()
    within: dict[str, Any] = {}
    for key, value in foundation.items():
        interval = result["ci"].get(key)
        within[key] = {
            "foundation": value,
            "report_card": result[key],
            "interval": interval,
            "within": interval is not None and interval[0] <= value <= interval[1],
        }
    document = {
        "benchmark": "evaluate_lfw",
        "machine": machine_info(),
        "workers": args.workers,
        "cache": "fresh (cold)" if args.cold else "user cache (warm)",
        "wall_seconds": round(wall, 1),
        "stage_finished_at_seconds": stages,
        "foundation_comparison": within,
        "report_card": result,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    keys = [
        "rank1",
        "rank10",
        "fnir_at_fpir_0.01",
        "threshold_at_fpir_0.01",
        "fnir_at_fpir_0.05",
        "fnir_at_fpir_0.003",
        "fnmr_at_fmr_0.001",
        "threshold_at_fmr_0.001",
        "fnmr_at_fmr_0.0001",
        "threshold_at_fmr_0.0001",
    ]
    for key in keys:
        interval = result["ci"][key]
        shown = "null" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"
        value = result[key]
        print(f"{key:26s} {'null' if value is None else f'{value:.4f}':>8s} {shown}")
    print(f"wall {wall:.1f} s; wrote {args.output}")
    return 0 if all(entry["within"] for entry in within.values() if entry["interval"]) else 1


if __name__ == "__main__":
    sys.exit(main())
