"""Which detector should be the default: dlib's HOG against BlazeFace, on real photos.

Two questions, each answered for every detector on the same photos in one run:

1. Usable faces: of lfw-dev's photos (by default the 4,375 photos of its foundation
   protocol, the gallery and probes of question 2; `--photos all` for all 9,094) and
   deepface-tests' 61, how many give a face that is found and passes the quality gate
   (the evaluation cache's outcome with the default gate), and which photos only one
   detector makes usable.
2. Accuracy: lfw-dev's foundation protocol (one photo enrolled per person, all people),
   rank-1 and FNIR at FPIR 0.01 and 0.05 with bootstrap intervals over people, for the
   baseline recipe and the default recipe. Each detector after the first is compared with
   the first on the same resamples of people (a paired bootstrap, as `candor evaluate
   --compare` does for recipes): a difference is "worse" only when its whole interval lies
   on the bad side of zero.

The decision rule (issue 16): the new detector becomes the default iff it makes at least
as many photos usable as HOG on both sets and no rank-1 or FNIR at FPIR 0.01 difference is
worse beyond its interval, for either recipe. Templates come from the evaluation cache
(keyed by detector settings), so a rerun costs only what changed.

    .venv/bin/python bench/detectors_lfw.py [--faces ../shared/faces] [--workers 2]
        [--detectors hog blazeface] [--recipes baseline combined] [--photos protocol|all]
        [--replicates 1000]

Writes bench/results/detectors_lfw.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from _common import write_results
from candor.evaluation.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_SEED,
    people_weights,
    percentile_interval,
    unit_weights,
)
from candor.evaluation.cache import PhotoOutcome, extract_photos
from candor.evaluation.compare import COMPARED_FPIRS, FIGURES
from candor.evaluation.identification import (
    list_people,
    plan_protocol,
    run_identification_protocol,
)
from candor.evaluation.report_card import SearchTable, identification_figures
from candor.faces import EngineSettings
from candor.faces.recipe import DEFAULT_RECIPE, recipe_named

DetectorName = Literal["hog", "cnn", "blazeface"]
# The figures the decision rule looks at (the others are reported).
DECIDING = ("rank1", "fnir_at_fpir_0.01")
SHOWN_ONLY_ONE = 25


def detector_settings(name: str) -> EngineSettings:
    """A detector with every other setting at its default (HOG: one upsampling, retry)."""
    return EngineSettings(detector=cast(DetectorName, name))


def dataset_photos(folder: Path) -> list[Path]:
    """Every photo of a dataset folder (one folder per person), in sorted order."""
    return sorted(path for path in folder.glob("*/*") if path.is_file())


def protocol_photos(lfw: Path) -> list[Path]:
    """The foundation protocol's photos: its gallery, then its mated and non-mated probes."""
    plan = plan_protocol(lfw, "foundation")
    return [path for _, path in (*plan.gallery, *plan.mated, *plan.non_mated)]


def progress_line(label: str) -> Any:
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done == total or done % 1000 == 0:
            elapsed = time.perf_counter() - started
            print(f"  {label}: {done}/{total} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    return report


def usable_faces(
    name: str, paths: list[Path], root: Path, detectors: Sequence[str], workers: int
) -> dict[str, Any]:
    """Per detector: photos, faces found, usable; and the photos only one makes usable."""
    outcomes: dict[str, list[PhotoOutcome]] = {}
    counts: dict[str, dict[str, Any]] = {}
    for detector in detectors:
        started = time.perf_counter()
        found = extract_photos(
            paths,
            detector_settings(detector),
            workers=workers,
            progress=progress_line(f"{name} {detector}"),
        )
        outcomes[detector] = found
        counts[detector] = {
            "photos": len(paths),
            "decoded": len(found),
            "face_found": sum(outcome.faces_found > 0 for outcome in found),
            "usable": sum(outcome.usable for outcome in found),
            "seconds": round(time.perf_counter() - started, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
    only: dict[str, Any] = {}
    first = detectors[0]
    for other in detectors[1:]:
        usable_first = {o.path for o in outcomes[first] if o.usable}
        usable_other = {o.path for o in outcomes[other] if o.usable}
        for a, b, mine in ((first, other, usable_first), (other, first, usable_other)):
            theirs = usable_other if mine is usable_first else usable_first
            alone = sorted(str(path.relative_to(root)) for path in mine - theirs)
            only[f"usable_with_{a}_not_{b}"] = {
                "count": len(alone),
                "photos": alone[:SHOWN_ONLY_ONE],
            }
    return {"dataset": name, "detectors": counts, "only_one": only}


def _verdict(interval: tuple[float, float] | None, higher_is_better: bool) -> str:
    if interval is None:
        return "undefined"
    low, high = interval
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "within noise"


def _number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def _interval(values: np.ndarray) -> list[float] | None:
    interval = percentile_interval(values, DEFAULT_LEVEL)[0]
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def people_share(lfw: Path, share: int) -> list[str] | None:
    """1 in `share` of lfw-dev's people, fixed by a hash of the name (None: everyone)."""
    if share <= 1:
        return None
    return [
        name
        for name, _ in list_people(lfw, None)
        if int(hashlib.sha256(name.encode("utf-8")).hexdigest()[8:16], 16) % share == 0
    ]


def accuracy(
    lfw: Path,
    detectors: Sequence[str],
    recipes: Sequence[str],
    replicates: int,
    workers: int,
    shares: dict[str, int],
) -> list[dict[str, Any]]:
    """The foundation protocol on lfw-dev (a recipe's share of its people), paired."""
    runs: list[dict[str, Any]] = []
    for recipe_name in recipes:
        recipe = recipe_named(recipe_name)
        people = people_share(lfw, shares.get(recipe_name, 1))
        names = [name for name, _ in list_people(lfw, people)]
        ones = unit_weights(len(names))
        weights = people_weights(len(names), replicates, DEFAULT_SEED)
        reference: dict[str, np.ndarray] | None = None
        reference_figures: dict[str, float | None] = {}
        for detector in detectors:
            started = time.perf_counter()
            report = run_identification_protocol(
                lfw,
                detector_settings(detector),
                workers=workers,
                fpir_targets=COMPARED_FPIRS,
                progress=progress_line(f"{recipe.name} {detector}"),
                recipe=recipe,
                protocol="foundation",
                people=people,
            )
            searches = SearchTable.from_report(report, names)
            point = identification_figures(searches, ones, COMPARED_FPIRS)
            replicated = identification_figures(searches, weights, COMPARED_FPIRS)
            entry: dict[str, Any] = {
                "recipe": recipe.name,
                "recipe_key": recipe.key,
                "detector": detector,
                "detector_key": detector_settings(detector).key,
                "people": len(names),
                "people_share": f"1 in {shares.get(recipe_name, 1)}",
                "gallery_size": report.gallery_size,
                "failed_to_enrol": report.failed_to_enrol,
                "mated_searches": report.mated_searches,
                "non_mated_searches": report.non_mated_searches,
                "figures": {key: _number(point[key][0]) for key in FIGURES},
                "intervals": {key: _interval(replicated[key]) for key in FIGURES},
                "seconds": round(time.perf_counter() - started, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
            if reference is None:
                reference = {key: replicated[key] for key in FIGURES}
                reference_figures = entry["figures"]
            else:
                differences: dict[str, Any] = {}
                for key, higher_is_better in FIGURES.items():
                    delta = replicated[key] - reference[key]
                    interval = _interval(delta)
                    mine, theirs = entry["figures"][key], reference_figures[key]
                    shown = None if mine is None or theirs is None else round(mine - theirs, 4)
                    differences[key] = {
                        "value": shown,
                        "interval": interval,
                        "verdict": _verdict(
                            None if interval is None else (interval[0], interval[1]),
                            higher_is_better,
                        ),
                    }
                entry["difference_from"] = detectors[0]
                entry["differences"] = differences
            runs.append(entry)
            shown = {k: "null" if v is None else f"{v:.3f}" for k, v in entry["figures"].items()}
            print(
                f"  {recipe.name:10s} {detector:10s} rank-1 {shown['rank1']}  "
                f"FNIR@0.01 {shown['fnir_at_fpir_0.01']}  FNIR@0.05 {shown['fnir_at_fpir_0.05']}",
                flush=True,
            )
    return runs


def decision(
    counts: list[dict[str, Any]], runs: list[dict[str, Any]], detectors: Sequence[str]
) -> dict[str, Any]:
    """The issue's rule, for each detector after the first, with what failed if anything."""
    reference = detectors[0]
    verdicts: dict[str, Any] = {}
    for candidate in detectors[1:]:
        failed: list[str] = []
        for dataset in counts:
            mine = dataset["detectors"][candidate]["usable"]
            theirs = dataset["detectors"][reference]["usable"]
            if mine < theirs:
                failed.append(f"{dataset['dataset']}: {mine} usable photos against {theirs}")
        for run in runs:
            if run["detector"] != candidate:
                continue
            for key in DECIDING:
                difference = run["differences"][key]
                if difference["verdict"] == "worse":
                    failed.append(
                        f"{run['recipe']} recipe: {key} worse by {difference['value']} "
                        f"(paired interval {difference['interval']})"
                    )
        verdicts[candidate] = {
            "becomes_default": not failed,
            "failed": failed,
            "rule": f"usable photos >= {reference}'s on every set, and rank-1 and FNIR at "
            "FPIR 0.01 not worse beyond their paired intervals for every recipe",
        }
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--detectors", nargs="+", default=["hog", "blazeface"])
    parser.add_argument(
        "--recipes", nargs="+", default=["baseline", DEFAULT_RECIPE.name], help="recipe names"
    )
    parser.add_argument(
        "--photos",
        choices=["protocol", "all"],
        default="protocol",
        help="lfw-dev photos counted: the foundation protocol's, or all",
    )
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument(
        "--share",
        nargs="*",
        default=[],
        metavar="RECIPE=N",
        help="run RECIPE on 1 in N of lfw-dev's people (fixed by name hash), e.g. combined=4",
    )
    parser.add_argument("--skip-usable", action="store_true", help="accuracy only")
    parser.add_argument("--skip-accuracy", action="store_true", help="usable faces only")
    parser.add_argument("--out", default="detectors_lfw", help="results name under bench/results")
    args = parser.parse_args()
    for name in args.detectors:
        detector_settings(name)  # an unknown detector fails here, before any work
    shares: dict[str, int] = {}
    for item in args.share:
        recipe_name, _, count = item.partition("=")
        recipe_named(recipe_name)
        if not count.isdigit() or int(count) < 1:
            parser.error(f"--share {item}: use RECIPE=N with N a whole number, 1 or more")
        shares[recipe_name] = int(count)
    started = time.perf_counter()
    lfw = args.faces / "lfw-dev"
    lfw_paths = dataset_photos(lfw) if args.photos == "all" else protocol_photos(lfw)
    counts = (
        []
        if args.skip_usable
        else [
            usable_faces("lfw-dev", lfw_paths, lfw, args.detectors, args.workers),
            usable_faces(
                "deepface-tests",
                dataset_photos(args.faces / "deepface-tests"),
                args.faces / "deepface-tests",
                args.detectors,
                args.workers,
            ),
        ]
    )
    for dataset in counts:
        for detector, figures in dataset["detectors"].items():
            print(
                f"{dataset['dataset']:15s} {detector:10s} usable {figures['usable']}"
                f"/{figures['photos']} (face found {figures['face_found']})",
                flush=True,
            )
    runs = (
        []
        if args.skip_accuracy
        else accuracy(lfw, args.detectors, args.recipes, args.replicates, args.workers, shares)
    )
    verdicts = decision(counts, runs, args.detectors) if runs else None
    path = write_results(
        args.out,
        {
            "description": __doc__,
            "lfw_dev_photos": f"{args.photos}: {len(lfw_paths)} photos",
            "usable_faces": counts,
            "foundation_protocol": runs,
            "bootstrap": {
                "resampled": "people, with replacement, the same resamples for every detector",
                "replicates": args.replicates,
                "level": DEFAULT_LEVEL,
            },
            "decision": verdicts,
            "people_shares": {name: f"1 in {shares.get(name, 1)}" for name in args.recipes},
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
