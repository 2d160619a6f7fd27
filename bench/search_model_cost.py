"""What a search costs with the shared MobileFaceNet active against dlib's ResNet, in one run.

A governed search's face work is the probe's extraction (decode, detect, landmarks, quality,
the template with the recipe's search views) and the 1:N search of the model's index. This
times both for each model on the same gallery and probes, one probe after another in one
process, alternating which model goes first so that a change of load falls on both:

- gallery: the first photo of the first `--gallery` lfw-dev people (detected once; each
  model makes its own templates of the same faces, one plain view, into its own in-memory
  index);
- probes: the second photo of the first `--probes` people with two or more photos.

Reports the median and 95th percentile per search for each model, their ratio (target: the
shared model costs at most 1.5 x dlib), the template step alone, and the load average
before and after. The shared model is evaluation-only (../shared/models/README.md).

    .venv/bin/python bench/search_model_cost.py [--faces ../shared/faces]
        [--model ../shared/models/mobilefacenet/mobilefacenet.onnx] [--gallery 1000]
        [--probes 200]

Writes bench/results/search_model_cost.json.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from _common import write_results
from candor.evaluation.identification import list_people
from candor.faces import EngineSettings, FaceEngine
from candor.faces.onnx_models import inspect_model_file
from candor.faces.recipe import DEFAULT_RECIPE
from candor.images import PROBE_LIMITS, decode_image, load_image
from candor.index import GalleryIndex

TOP = 20  # a candidate list's default length (governed.request_search's `top`)


def percentiles(values: list[float]) -> dict[str, float]:
    """Median and 95th percentile, in milliseconds."""
    array = np.asarray(values) * 1000.0
    return {
        "median_ms": round(float(np.median(array)), 2),
        "p95_ms": round(float(np.percentile(array, 95)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument(
        "--model", type=Path, default=Path("../shared/models/mobilefacenet/mobilefacenet.onnx")
    )
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()
    recipe = DEFAULT_RECIPE
    base = EngineSettings(fallback=recipe.fallback)
    facts = inspect_model_file(args.model)
    engines = {
        "dlib": FaceEngine(base),
        "mobilefacenet": FaceEngine(replace(base, embedder_model=facts.spec("mobilefacenet", "1"))),
    }
    people = list_people(args.faces / "lfw-dev")
    gallery_paths = [photos[0] for _, photos in people[: args.gallery]]
    probe_paths = [photos[1] for _, photos in people if len(photos) > 1][: args.probes]

    # The gallery: faces found once (the detector is the same for both models).
    indexes = {name: GalleryIndex(engine.model) for name, engine in engines.items()}
    detector = engines["dlib"]
    started = time.perf_counter()
    next_id = 1
    for path in gallery_paths:
        image = load_image(path)
        faces, chosen = detector.chosen_face(image)
        if chosen is None:
            continue
        for name, engine in engines.items():
            # One plain view: a gallery template's views change what it holds, not what
            # searching it costs (that is the index's size and dimension).
            vector = engine.face_template(image, faces[chosen], "plain").vector
            indexes[name].add([next_id], vector[np.newaxis, :])
        next_id += 1
    gallery_seconds = time.perf_counter() - started
    print(f"gallery: {next_id - 1} faces, both models, in {gallery_seconds:.0f} s")

    probes = [path.read_bytes() for path in probe_paths]
    # Warm each model (sessions open, first-run allocations) on a photo not timed.
    for engine in engines.values():
        image = decode_image(probes[0], name="warm-up", limits=PROBE_LIMITS)
        faces, chosen = engine.chosen_face(image)
        if chosen is not None:
            engine.face_template(image, faces[chosen], recipe.search_views)

    totals: dict[str, list[float]] = {name: [] for name in engines}
    templates: dict[str, list[float]] = {name: [] for name in engines}
    searches: dict[str, list[float]] = {name: [] for name in engines}
    order = list(engines)
    for number, data in enumerate(probes):
        for name in order if number % 2 == 0 else order[::-1]:
            engine, index = engines[name], indexes[name]
            start = time.perf_counter()
            image = decode_image(data, name=f"probe {number}", limits=PROBE_LIMITS)
            faces, chosen = engine.chosen_face(image)
            if chosen is None:
                continue
            found = time.perf_counter()
            template = engine.face_template(image, faces[chosen], recipe.search_views)
            made = time.perf_counter()
            index.search(template.vector, TOP)
            end = time.perf_counter()
            totals[name].append(end - start)
            templates[name].append(made - found)
            searches[name].append(end - made)
    load_after = os.getloadavg()

    stats: dict[str, dict[str, dict[str, float]]] = {
        name: {
            "search": percentiles(totals[name]),
            "template_only": percentiles(templates[name]),
            "index_search_only": percentiles(searches[name]),
        }
        for name in engines
    }
    figures = {
        name: {
            "model_key": engines[name].model.key,
            "dimension": engines[name].model.dimension,
            "probes": len(totals[name]),
            **stats[name],
        }
        for name in engines
    }
    dlib, other = stats["dlib"], stats["mobilefacenet"]
    ratio = {
        "median": round(other["search"]["median_ms"] / dlib["search"]["median_ms"], 3),
        "p95": round(other["search"]["p95_ms"] / dlib["search"]["p95_ms"], 3),
        "template_only_median": round(
            other["template_only"]["median_ms"] / dlib["template_only"]["median_ms"], 3
        ),
    }
    for name, stat in stats.items():
        print(
            f"{name:14s} search median {stat['search']['median_ms']:7.1f} ms, "
            f"p95 {stat['search']['p95_ms']:7.1f} ms; "
            f"template {stat['template_only']['median_ms']:6.1f} ms; "
            f"index {stat['index_search_only']['median_ms']:5.2f} ms"
        )
    print(f"mobilefacenet / dlib: median {ratio['median']}x, p95 {ratio['p95']}x (target <= 1.5)")
    path = write_results(
        "search_model_cost",
        {
            "what": (
                "a governed search's face work (probe decode, detection, landmarks, quality, "
                "template with the recipe's search views, and the 1:N index search, top "
                f"{TOP}) with dlib's ResNet and with the shared MobileFaceNet (evaluation "
                "only), same gallery and probes, same run, alternating order"
            ),
            "recipe": recipe.key,
            "detector": base.key,
            "gallery_faces": next_id - 1,
            "probe_photos": len(probes),
            "baseline": "dlib",
            "models": figures,
            "ratio_mobilefacenet_to_dlib": ratio,
            "target": "mobilefacenet search at most 1.5 x dlib's",
            "target_met": ratio["median"] <= 1.5 and ratio["p95"] <= 1.5,
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in load_after],
            "gallery_build_seconds": round(gallery_seconds, 1),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
