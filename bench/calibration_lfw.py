"""The calibration Candor ships: dlib ResNet impostor scores on every usable lfw-dev photo.

Writes src/candor/workflow/data/default-calibration.json (package data, used until an
administrator records a calibration of their own with `candor calibrate`) and a copy of
the figures in bench/results/calibration_lfw.json.

    .venv/bin/python bench/calibration_lfw.py [--faces ../shared/faces] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from candor.evaluation.calibration import calibrate_folder

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "src" / "candor" / "workflow" / "data" / "default-calibration.json"
RESULTS = ROOT / "bench" / "results" / "calibration_lfw.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            print(f"\r{done}/{total} photos", end="", file=sys.stderr, flush=True)

    table = calibrate_folder(args.faces / "lfw-dev", workers=args.workers, progress=report)
    print(file=sys.stderr)
    # Relative path only: the shipped file must not name a machine's folders.
    table = type(table)(**{**table.__dict__, "dataset": "lfw-dev (LFW deep-funnelled subset)"})
    SHIPPED.write_text(table.to_json() + "\n")
    summary = json.loads(table.to_json())
    summary["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"{table.templates} templates, {table.impostor_pairs:,} impostor pairs, "
        f"{len(table.points)} points; wrote {SHIPPED.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
