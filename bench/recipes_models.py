"""Which recipe is best for each face model, chosen on lfw-dev's tune half (issue 16, Build 5).

For dlib's ResNet and for an operator's ONNX file (`--model-file`, by default the shared
evaluation model ../shared/models/mobilefacenet/mobilefacenet.onnx, inspected as `candor
model add` inspects it), the named recipes run lfw-dev's foundation protocol on the tune
half, side by side with paired bootstrap intervals (`compare_recipes`, what `candor
evaluate --compare --half tune` prints). Each model's recipe is then chosen by the rule
of docs/recipes.md: the recipe with the most figures better beyond the noise and none
worse; ties go to the cheaper recipe (fewer network passes per enrolment and search);
the baseline when none is better. The detector is the default one at the time of the run
(recorded). The result is what a model's calibration stores as its recipe
(`ModelCalibration.recipe`).

    .venv/bin/python bench/recipes_models.py [--faces ../shared/faces] [--workers 2]
        [--model-file FILE] [--models dlib FILE] [--recipes baseline flip ...]
        [--replicates 1000]

Writes bench/results/recipes_models.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import write_results
from candor.evaluation.compare import FIGURES, Comparison, compare_recipes
from candor.faces import EngineSettings
from candor.faces.onnx_models import inspect_model_file
from candor.faces.recipe import RECIPES, Recipe, recipe_named

SHARED_MODEL = Path("../shared/models/mobilefacenet/mobilefacenet.onnx")
# fusion-mean changes only subjects with several photos (the multi-photo protocol), and
# "fallback" changed 3 of 9,039 lfw-dev photos (docs/recipes.md): both left out by default.
DEFAULT_RECIPES = ("baseline", "flip", "jitter", "cohort-norm", "flip-norm", "combined")
PASSES = {"plain": 1, "flip": 2, "jitter": 6}


def passes(recipe: Recipe) -> int:
    """Network passes for one enrolment and one search: the cost that breaks a tie."""
    return PASSES[recipe.enrol_views] + PASSES[recipe.search_views]


def choose(comparison: Comparison) -> dict[str, Any]:
    """The rule of docs/recipes.md on one comparison (its first recipe is the reference)."""
    scored: list[tuple[int, int, str]] = []
    for result in comparison.results[1:]:
        verdicts = [difference.verdict for difference in result.differences.values()]
        if "worse" in verdicts:
            continue
        better = sum(verdict == "better" for verdict in verdicts)
        if better:
            scored.append((-better, passes(result.recipe), result.recipe.name))
    reference = comparison.results[0].recipe.name
    if not scored:
        return {"recipe": reference, "why": "no recipe is better beyond the noise"}
    scored.sort()
    better, _, name = scored[0]
    chosen = next(result for result in comparison.results if result.recipe.name == name)
    figures = [key for key, value in chosen.differences.items() if value.verdict == "better"]
    return {
        "recipe": name,
        "recipe_key": chosen.recipe.key,
        "why": f"{-better} figure(s) better than {reference} beyond the noise "
        f"({', '.join(figures)}), none worse",
    }


def model_settings(name: str, base: EngineSettings) -> tuple[str, EngineSettings, dict[str, Any]]:
    """("dlib" or the file's stem, its engine settings, what describes it)."""
    if name == "dlib":
        return "dlib", base, {"model": "dlib ResNet (built in)"}
    path = Path(name)
    facts = inspect_model_file(path)
    spec = facts.spec(path.stem, "evaluation")
    described = {
        "model": path.stem,
        "file": str(path),
        "sha256": facts.sha256,
        "dimension": facts.dimension,
        "alignment": facts.alignment,
    }
    return path.stem, EngineSettings(embedder_model=spec), described


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model-file", type=Path, default=SHARED_MODEL)
    parser.add_argument(
        "--models", nargs="+", default=None, help="dlib and/or ONNX files (default: both)"
    )
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), choices=RECIPES)
    parser.add_argument("--replicates", type=int, default=1000)
    args = parser.parse_args()
    models = args.models or [str(args.model_file), "dlib"]
    recipes = [recipe_named(name) for name in args.recipes]
    base = EngineSettings()
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for model in models:
        name, settings, described = model_settings(model, base)
        print(f"{name}: tune half, foundation protocol", file=sys.stderr, flush=True)

        def report(stage: str, done: int, total: int) -> None:
            if done == total:
                print(f"  {stage}: {total}", file=sys.stderr, flush=True)

        model_started = time.perf_counter()
        comparison = compare_recipes(
            args.faces / "lfw-dev",
            recipes,
            settings,
            protocol="foundation",
            half="tune",
            replicates=args.replicates,
            workers=args.workers,
            progress=report,
        )
        chosen = choose(comparison)
        for result in comparison.results:
            shown = {
                key: "null" if value is None else f"{value:.3f}"
                for key, value in result.figures.items()
                if key in FIGURES
            }
            print(
                f"  {result.recipe.name:12s} rank-1 {shown['rank1']}  "
                f"FNIR@0.01 {shown['fnir_at_fpir_0.01']}  FNIR@0.05 {shown['fnir_at_fpir_0.05']}",
                flush=True,
            )
        print(f"  chosen: {chosen['recipe']} ({chosen['why']})", flush=True)
        runs.append(
            {
                **described,
                "detector_key": settings.key,
                "comparison": comparison.to_dict(),
                "chosen": chosen,
                "seconds": round(time.perf_counter() - model_started, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )
    path = write_results(
        "recipes_models",
        {
            "description": __doc__,
            "rule": "most figures better beyond the noise (paired bootstrap) on the tune half, "
            "none worse; ties to the recipe with fewer network passes",
            "runs": runs,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
