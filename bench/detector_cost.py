"""CPU time of detection alone: BlazeFace against dlib's HOG, on the same photos, one run.

Per photo, one core (ONNX Runtime on one thread, dlib single-threaded), `process_time`
around the detector's `detect` only (decoded pixels in memory): BlazeFace, BlazeFace
with the engine's HOG fallback where it finds nothing (what EngineSettings(detector=
"blazeface") pays), and HOG with one upsampling and its retry (today's default, the
baseline). Photos: a fixed sample of lfw-dev (250 x 250) and deepface-tests' photos
bounded to the engine's detect_max_pixels as the engine does.

    .venv/bin/python bench/detector_cost.py [--faces ../shared/faces] [--lfw 200]

Writes bench/results/detector_cost.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _common import write_results
from candor.evaluation.identification import list_people
from candor.faces.blazeface import BlazeFaceDetector
from candor.faces.dlib_models import HogDetector
from candor.faces.engine import DETECT_MAX_PIXELS, bounded_pixels
from candor.images import load_image


def _cpu_ms(call: object, pixels: np.ndarray) -> tuple[float, int]:
    started = time.process_time()
    found = call(pixels)  # type: ignore[operator]
    return (time.process_time() - started) * 1000.0, len(found)


def _measure(photos: list[Path]) -> dict[str, object]:
    blazeface = BlazeFaceDetector()
    hog = HogDetector(1, -0.5)
    blazeface.detect(np.zeros((128, 128, 3), dtype=np.uint8))  # opens the session
    times: dict[str, list[float]] = {"blazeface": [], "blazeface_with_hog_fallback": [], "hog": []}
    found = {"blazeface": 0, "blazeface_with_hog_fallback": 0, "hog": 0}
    for path in photos:
        pixels, _, _ = bounded_pixels(load_image(path).pixels, DETECT_MAX_PIXELS)
        ms, count = _cpu_ms(blazeface.detect, pixels)
        times["blazeface"].append(ms)
        found["blazeface"] += count > 0
        if count == 0:
            fallback_ms, count = _cpu_ms(hog.detect, pixels)
            ms += fallback_ms
        times["blazeface_with_hog_fallback"].append(ms)
        found["blazeface_with_hog_fallback"] += count > 0
        ms, count = _cpu_ms(hog.detect, pixels)
        times["hog"].append(ms)
        found["hog"] += count > 0
    summary: dict[str, object] = {"photos": len(photos)}
    for name, values in times.items():
        summary[name] = {
            "mean_ms": round(float(np.mean(values)), 2),
            "median_ms": round(float(np.median(values)), 2),
            "photos_with_a_face": found[name],
        }
    baseline = float(np.mean(times["hog"]))
    summary["hog_over_blazeface_with_fallback"] = round(
        baseline / float(np.mean(times["blazeface_with_hog_fallback"])), 2
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--lfw", type=int, default=200, help="lfw-dev photos (one a person)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    people = list_people(args.faces / "lfw-dev")
    step = max(1, len(people) // args.lfw)
    lfw = [photos[0] for _, photos in people[::step]][: args.lfw]
    deepface = [path for _, photos in list_people(args.faces / "deepface-tests") for path in photos]
    results = {"lfw-dev": _measure(lfw), "deepface-tests": _measure(deepface)}
    for name, figures in results.items():
        print(name, figures)
    path = write_results(
        "detector_cost",
        {
            "what": (
                "CPU ms of detection alone per photo on one core: BlazeFace, BlazeFace with "
                "the HOG fallback where it finds nothing, and HOG (upsample 1, retry -0.5), "
                "the baseline, on the same photos in one run"
            ),
            "results": results,
            "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
