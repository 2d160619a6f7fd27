"""What each recipe costs per photo and per search, on one core, uncached.

For a fixed sample of lfw-dev photos (first photo of every 40th person), times decoding,
detection, face choice and the template with each view set (plain: 1 network pass;
flip: 2; jitter: 6), one photo after another in one process. Also times the CNN
fallback on the photos where HOG finds no face, and the cohort offset of a normalised
search (1,500 cohort templates of 128 dimensions). Each figure is beside the baseline
(plain views) measured in the same run.

    .venv/bin/python bench/recipe_cost.py [--faces ../shared/faces] [--every 40]

Writes bench/results/recipe_cost.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _common import write_results
from candor.evaluation.identification import list_people
from candor.faces import EngineSettings, FaceEngine
from candor.faces.recipe import DEFAULT_RECIPE, VIEW_SETS
from candor.images import decode_image, encode_png, load_image
from candor.index.cohort import COHORT_SIZE, CohortNormaliser

NO_FACE_PHOTOS = 3  # of lfw-dev's 9,039, where HOG (with its retry) finds nothing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--every", type=int, default=40)
    args = parser.parse_args()
    people = list_people(args.faces / "lfw-dev")
    paths = [photos[0] for _, photos in people[:: args.every]]
    engine = FaceEngine(EngineSettings())
    images = [load_image(path) for path in paths]
    engine.face_template(images[0], engine.chosen_face(images[0])[0][0])  # load the models
    per_view: dict[str, float] = {}
    detection: list[float] = []
    for views in VIEW_SETS:
        timings: list[float] = []
        for image in images:
            started = time.perf_counter()
            faces, chosen = engine.chosen_face(image)
            found = time.perf_counter()
            if chosen is None:
                continue
            engine.face_template(image, faces[chosen], views)
            timings.append(time.perf_counter() - started)
            if views == "plain":
                detection.append(found - started)
        per_view[views] = 1000.0 * float(np.median(timings))
        print(f"{views:7s} {per_view[views]:7.1f} ms per photo (median of {len(timings)})")
    rng = np.random.default_rng(0)
    cohort = CohortNormaliser(rng.normal(size=(COHORT_SIZE, 128)).astype(np.float32), 30)
    probes = rng.normal(size=(200, 128)).astype(np.float32)
    started = time.perf_counter()
    for probe in probes:
        cohort.offset(probe)
    offset_ms = 1000.0 * (time.perf_counter() - started) / len(probes)
    print(f"cohort offset {offset_ms:.3f} ms per search")
    blank = np.full((250, 250, 3), 128, dtype=np.uint8)
    fallback = FaceEngine(EngineSettings(fallback="cnn"))
    fallback.detect_faces(decode_image(encode_png(blank), name="blank.png"))  # load the CNN
    started = time.perf_counter()
    engine.detector.detect(blank)
    hog_ms = 1000.0 * (time.perf_counter() - started)
    started = time.perf_counter()
    fallback.detect_faces(decode_image(encode_png(blank), name="blank.png"))
    cnn_ms = 1000.0 * (time.perf_counter() - started)
    print(
        f"a 250 px photo without a face: HOG {hog_ms:.0f} ms, with the CNN fallback {cnn_ms:.0f} ms"
    )
    enrol_views, search_views = DEFAULT_RECIPE.enrol_views, DEFAULT_RECIPE.search_views
    path = write_results(
        "recipe_cost",
        {
            "description": __doc__,
            "photos": len(images),
            "median_ms_per_photo_by_views": per_view,
            "median_detection_ms": 1000.0 * float(np.median(detection)),
            "cohort_offset_ms_per_search": offset_ms,
            "no_face_photo_ms": {"hog": hog_ms, "with_cnn_fallback": cnn_ms},
            "no_face_photos_in_lfw_dev": NO_FACE_PHOTOS,
            "default_recipe": DEFAULT_RECIPE.key,
            "default_enrolment_ms_per_photo": per_view[enrol_views],
            "default_search_ms_per_probe": per_view[search_views] + offset_ms,
            "baseline_ms_per_photo": per_view["plain"],
            "load_average_1min": os.getloadavg()[0],
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
