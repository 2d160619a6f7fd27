"""Every named recipe side by side on lfw-dev: both halves, both protocols, with intervals.

What `candor evaluate DIR --compare ... --half H --protocol P --scratch` prints, for each
half (tune: where recipes are chosen; report: where the chosen one is reported) and each
protocol (foundation: one photo enrolled per person; multi-photo: two). Differences are
paired bootstrap differences from the first recipe (baseline), over people.

    .venv/bin/python bench/recipes_lfw.py [--faces ../shared/faces] [--workers 2]
        [--recipes baseline flip ...] [--halves tune report] [--replicates 1000]

Writes bench/results/recipes_lfw.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import write_results
from candor.evaluation.compare import compare_recipes
from candor.evaluation.identification import HALVES, PROTOCOLS
from candor.faces.recipe import RECIPES, recipe_named


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--halves", nargs="+", default=list(HALVES), choices=HALVES)
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--replicates", type=int, default=1000)
    args = parser.parse_args()
    recipes = [recipe_named(name) for name in args.recipes]
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for half in args.halves:
        for protocol in args.protocols:

            def report(stage: str, done: int, total: int) -> None:
                if done == total:
                    print(f"  {stage}: {total}", file=sys.stderr, flush=True)

            print(f"{half} half, {protocol} protocol", file=sys.stderr, flush=True)
            comparison = compare_recipes(
                args.faces / "lfw-dev",
                recipes,
                protocol=protocol,
                half=half,
                replicates=args.replicates,
                workers=args.workers,
                progress=report,
            )
            document = comparison.to_dict()
            document["load_average_1min"] = os.getloadavg()[0]
            runs.append(document)
            for entry in document["recipes"]:
                shown = {
                    key: "null" if value is None else f"{value:.4f}"
                    for key, value in entry["figures"].items()
                }
                print(
                    f"  {entry['name']:12s} rank-1 {shown['rank1']}  "
                    f"FNIR@0.01 {shown['fnir_at_fpir_0.01']}  "
                    f"FNIR@0.05 {shown['fnir_at_fpir_0.05']}",
                    flush=True,
                )
    path = write_results(
        "recipes_lfw",
        {
            "description": __doc__,
            "runs": runs,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
