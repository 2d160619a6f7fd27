"""Face models side by side on lfw-dev: dlib's ResNet and an operator's ONNX model, one run.

What `candor evaluate DIR --model dlib --model NAME` measures in a workspace, run here
without one: the foundation protocol (one photo enrolled per person, people with one
photo as distractors) on all of lfw-dev, the same people and detector for both models,
rank-1, rank-10 and FNIR at FPIR 0.01 and 0.05, each with a 95 % bootstrap interval over
people, and the operator model's paired differences from dlib (the baseline: the first
arm) on the same resamples. The recipe is the same for both ("baseline": one view,
plain cosine, as the figures the issue and ../shared/models/README.md quote).

The ONNX file is read as `candor model add` reads it (`inspect_model_file`, no declared
values) and named "mobilefacenet" version "1", as the registry names an added model, so
a workspace's `--model` run finds these templates in the evaluation cache.

    .venv/bin/python bench/models_lfw.py [--faces ../shared/faces]
        [--model-file ../shared/models/mobilefacenet/mobilefacenet.onnx] [--workers 2]
        [--recipe baseline] [--detector hog|blazeface] [--replicates 1000]

Writes bench/results/models_lfw.json (or models_lfw_<suffix>.json with --suffix).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from _common import write_results
from candor.evaluation.compare import Arm, compare_arms
from candor.evaluation.report_card import ModelLabel
from candor.faces import EngineSettings, FaceEngine
from candor.faces.onnx_models import inspect_model_file
from candor.faces.recipe import recipe_named

TARGETS = {"rank1": ("at least", 0.95), "fnir_at_fpir_0.01": ("at most", 0.15)}


def _label(name: str, settings: EngineSettings, licence: str) -> ModelLabel:
    model = FaceEngine(settings).model
    return ModelLabel(name, model.key, model.dimension, licence)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    default_models = Path(os.environ.get("CANDOR_MODELS", "../shared/models"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument(
        "--model-file", type=Path, default=default_models / "mobilefacenet" / "mobilefacenet.onnx"
    )
    parser.add_argument("--model-name", default="mobilefacenet")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--recipe", default="baseline")
    parser.add_argument("--detector", default=None, help="default: EngineSettings' default")
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--suffix", default="")
    args = parser.parse_args()

    base = EngineSettings() if args.detector is None else EngineSettings(detector=args.detector)
    recipe = recipe_named(args.recipe)
    facts = inspect_model_file(args.model_file.absolute())
    operator = replace(base, embedder_model=facts.spec(args.model_name, "1"))
    arms = [
        Arm(
            "dlib",
            recipe,
            base,
            _label("dlib", base, "dlib: Boost Software License; weights: CC0-1.0"),
        ),
        Arm(
            args.model_name,
            recipe,
            operator,
            _label(args.model_name, operator, "unknown: evaluation only"),
        ),
    ]
    load_before = os.getloadavg()

    def report(stage: str, done: int, total: int) -> None:
        if done == total:
            print(f"  {stage}: {total}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    comparison = compare_arms(
        args.faces / "lfw-dev",
        arms,
        axis="model",
        protocol="foundation",
        replicates=args.replicates,
        workers=args.workers,
        progress=report,
    )
    seconds = time.perf_counter() - started
    document = comparison.to_dict()
    dlib, other = document["models"]
    targets = {}
    for key, (direction, bound) in TARGETS.items():
        value = other["figures"][key]
        met = value is not None and (value >= bound if direction == "at least" else value <= bound)
        targets[key] = {
            "target": f"{direction} {bound}",
            "measured": value,
            "ci": other["ci"][key],
            "baseline_dlib": dlib["figures"][key],
            "baseline_dlib_ci": dlib["ci"][key],
            "met": met,
        }
    for entry in document["models"]:
        shown = {key: entry["figures"][key] for key in TARGETS}
        print(f"{entry['name']:14s} {shown} intervals {entry['ci']}", flush=True)
    path = write_results(
        f"models_lfw{'_' + args.suffix if args.suffix else ''}",
        {
            "description": __doc__,
            "detector": base.key,
            "recipe": recipe.key,
            "model_file": {
                "name": args.model_file.name,
                "sha256": facts.sha256,
                "recognised": dict(facts.sources),
            },
            "targets": targets,
            "comparison": document,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "workers": args.workers,
            "seconds": round(seconds, 1),
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
