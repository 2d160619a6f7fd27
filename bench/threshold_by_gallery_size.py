"""Does a threshold keep its meaning as the gallery grows? Measured on sub-galleries.

Candor sets a 1:N threshold from a target FPIR and the gallery's size N through a
calibration and the independence model FPIR = 1 - (1 - p)^N (candor.workflow.calibration).
This script checks that model where it can be checked:

- the calibration is made on lfw-dev's tune half only (`calibrate_recipe(halves=("tune",))`);
- on the report half, sub-galleries of 250, 500, 1,000 templates and the whole half's
  gallery are drawn (20 draws each, seeded) from the report half's foundation gallery;
- every report-half photo of a person not in the sub-gallery is a non-mated search;
- the threshold the model predicts for N and a target FPIR is applied, and the FPIR
  actually measured is reported beside the target (mean and range over the draws).

Both scores are checked: the plain cosine and the recipe's cohort-normalised score (the
cohort: 1,500 of the tune half's gallery templates, disjoint from the report half).

    .venv/bin/python bench/threshold_by_gallery_size.py [--recipe combined] [--draws 20]

Writes bench/results/threshold_by_gallery_size.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from candor.evaluation.calibration import calibrate_recipe, half_templates
from candor.faces import EngineSettings
from candor.faces.recipe import DEFAULT_RECIPE, recipe_named
from candor.index.cohort import CohortNormaliser, gallery_cohort_ids, unit_rows
from candor.workflow.calibration import threshold_for_gallery

SIZES = (250, 500, 1000)
TARGETS = (0.01, 0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument("--recipe", default=None, help="a named recipe (default: the default)")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    dataset = args.faces / "lfw-dev"
    recipe = DEFAULT_RECIPE if args.recipe is None else recipe_named(args.recipe)
    if recipe.cohort_k is None:
        print(
            "the recipe does not normalise; pick one that does (e.g. cohort-norm)", file=sys.stderr
        )
        return 2
    settings = replace(EngineSettings(), fallback=recipe.fallback)
    started = time.perf_counter()
    cosine_recipe = replace(recipe, name=f"{recipe.name}-cosine", cohort_k=None)
    tables = {
        "cosine": calibrate_recipe(
            dataset, cosine_recipe, settings, workers=args.workers, halves=("tune",)
        ),
        "normalised": calibrate_recipe(
            dataset, recipe, settings, workers=args.workers, halves=("tune",)
        ),
    }
    tune = half_templates(
        dataset, "tune", recipe, settings, workers=args.workers, with_probes=False
    )
    tune_gallery = unit_rows(tune.gallery)
    cohort = CohortNormaliser(
        tune_gallery[gallery_cohort_ids(range(len(tune_gallery)))], recipe.cohort_k
    )
    report = half_templates(dataset, "report", recipe, settings, workers=args.workers)
    labels, gallery = list(report.gallery_labels), unit_rows(report.gallery)
    probe_labels, probes = list(report.probe_labels), unit_rows(report.probes)
    offsets = cohort.offsets(probes)
    probe_people = np.array(probe_labels)
    rng = np.random.default_rng(20261127)
    rows: list[dict[str, Any]] = []
    for size in (*SIZES, len(gallery)):
        draws = 1 if size == len(gallery) else args.draws
        measured: dict[tuple[str, float], list[float]] = {}
        thresholds: dict[tuple[str, float], float] = {}
        searches: list[int] = []
        for _ in range(draws):
            chosen = np.sort(rng.choice(len(gallery), size=size, replace=False))
            enrolled = {labels[i] for i in chosen}
            outside = ~np.isin(probe_people, list(enrolled))
            top = (probes[outside] @ gallery[chosen].T).max(axis=1)
            searches.append(int(outside.sum()))
            for kind, scores in (("cosine", top), ("normalised", top - offsets[outside])):
                for target in TARGETS:
                    choice = threshold_for_gallery(tables[kind], size, target)
                    thresholds[(kind, target)] = choice.value
                    measured.setdefault((kind, target), []).append(
                        float(np.mean(scores >= choice.value))
                    )
        for (kind, target), values in measured.items():
            rows.append(
                {
                    "gallery_size": size,
                    "draws": draws,
                    "non_mated_searches_mean": float(np.mean(searches)),
                    "score": kind,
                    "target_fpir": target,
                    "threshold": thresholds[(kind, target)],
                    "measured_fpir_mean": float(np.mean(values)),
                    "measured_fpir_min": float(np.min(values)),
                    "measured_fpir_max": float(np.max(values)),
                }
            )
            print(
                f"N={size:5d} {kind:10s} target {target:.2f}: measured "
                f"{np.mean(values):.4f} [{np.min(values):.4f}, {np.max(values):.4f}] "
                f"at {thresholds[(kind, target)]:.4f}",
                flush=True,
            )
    path = write_results(
        "threshold_by_gallery_size",
        {
            "description": __doc__,
            "recipe": recipe.key,
            "calibration_pairs": {kind: table.impostor_pairs for kind, table in tables.items()},
            "extrapolation_model": "FPIR = 1 - (1 - p)^N (independent comparisons); p -> "
            "threshold from the tune half's 1:N impostor pairs, log-interpolated",
            "rows": rows,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
