"""The calibrations Candor ships: dlib ResNet impostor scores on lfw-dev.

Without --recipe: the cosine calibration, every pair of usable lfw-dev photos; writes
src/candor/workflow/data/default-calibration.json and bench/results/calibration_lfw.json.

With --recipe NAME (a normalising recipe, e.g. the default): the 1:N calibration of that
recipe's normalised score (`calibrate_recipe`: each half's probes against its gallery,
the other half as cohort, pooled); writes default-calibration-normalised.json and
bench/results/calibration_lfw_normalised.json.

Package data, used until an administrator records a calibration of their own with
`candor calibrate`.

    .venv/bin/python bench/calibration_lfw.py [--faces ../shared/faces] [--workers 2]
        [--recipe NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from candor.evaluation.calibration import calibrate_folder, calibrate_recipe
from candor.faces.recipe import recipe_named

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "candor" / "workflow" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--recipe", default=None, help="a normalising recipe's name")
    args = parser.parse_args()
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            print(f"\r{done}/{total} photos", end="", file=sys.stderr, flush=True)

    dataset = args.faces / "lfw-dev"
    description = "lfw-dev (LFW deep-funnelled subset)"
    if args.recipe is None:
        table = calibrate_folder(dataset, workers=args.workers, progress=report)
        shipped, results = DATA / "default-calibration.json", "calibration_lfw.json"
    else:
        recipe = recipe_named(args.recipe)
        if recipe.cohort_k is None:
            raise SystemExit(f"recipe {recipe.name} does not normalise; use the cosine one")
        table = calibrate_recipe(dataset, recipe, workers=args.workers, progress=report)
        shipped = DATA / "default-calibration-normalised.json"
        results = "calibration_lfw_normalised.json"
        description += f", 1:N pairs of recipe {recipe.key}, each half's cohort the other half"
    print(file=sys.stderr)
    # Relative path only: the shipped file must not name a machine's folders.
    table = type(table)(**{**table.__dict__, "dataset": description})
    shipped.write_text(table.to_json() + "\n")
    summary = json.loads(table.to_json())
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (ROOT / "bench" / "results" / results).write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"{table.templates} templates, {table.impostor_pairs:,} impostor pairs, "
        f"{len(table.points)} points; wrote {shipped.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
