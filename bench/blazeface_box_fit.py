"""Fit the map from BlazeFace's box and keypoints to a dlib HOG box, and measure it.

dlib's 5-point shape predictor was trained on HOG's boxes; BlazeFace's box is larger and
centred on the head rather than the face. `candor.faces.blazeface.dlib_box` places a
square HOG-like box by a linear map (least squares) from BlazeFace's box and keypoints
(`box_features`) to HOG's box centre and log side. This script fits that map on photos
of lfw-dev's tune half where both detectors find the face, and measures it on photos of
the report half, against HOG on the same photos:

- box IoU with HOG's box (BlazeFace's own box, then the mapped box);
- landmark error: dlib's 5 points placed from the mapped box against those placed from
  HOG's box, mean distance over the 5 points divided by the eye distance (and in px);
- templates: cosine between dlib ResNet templates of the same photo, one aligned from
  each set of landmarks (median, 5th percentile, minimum).

    .venv/bin/python bench/blazeface_box_fit.py [--faces ../shared/faces] [--fit 400]
        [--check 300]

Writes bench/results/blazeface_box_fit.json with the fitted coefficients, to be copied
into `candor.faces.blazeface._DLIB_BOX_FIT` (the script prints them).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from candor.evaluation.identification import half_of, list_people
from candor.faces.blazeface import BlazeFaceDetector, box_features, dlib_box
from candor.faces.dlib_models import DlibLandmarks, DlibResNetEmbedder, HogDetector
from candor.faces.quality import eye_distance_px
from candor.faces.records import FaceBox
from candor.images import load_image


def _photos(faces: Path, half: str, count: int) -> list[Path]:
    """One photo per person of `half`, spread over the sorted people, `count` of them."""
    people = [photos for name, photos in list_people(faces / "lfw-dev") if half_of(name) == half]
    step = max(1, len(people) // count)
    return [photos[0] for photos in people[::step]][:count]


def _iou(a: FaceBox, b: FaceBox) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    overlap = max(right - left, 0) * max(bottom - top, 0)
    union = a.area + b.area - overlap
    return overlap / union if union else 0.0


def _pairs(photos: list[Path]) -> list[dict[str, Any]]:
    """Per photo where HOG (upsample 1, dlib's own cut-off) and BlazeFace find the same
    one face: the pixels, HOG's box, BlazeFace's corners and keypoints."""
    blazeface = BlazeFaceDetector(box_geometry="blazeface")
    hog = HogDetector(1, None)
    found: list[dict[str, Any]] = []
    for path in photos:
        pixels = load_image(path).pixels
        hog_faces = hog.detect(pixels)
        if len(hog_faces) != 1:
            continue
        hog_box = hog_faces[0][0]
        matches = [
            (box, points)
            for box, _, points in blazeface.detect_keypoints(pixels)
            if hog_box.left <= box.centre[0] <= hog_box.right
            and hog_box.top <= box.centre[1] <= hog_box.bottom
        ]
        if len(matches) != 1:
            continue
        box, points = matches[0]
        corners = np.array([[box.left, box.top], [box.right, box.bottom]], dtype=np.float64)
        found.append(
            {"path": path, "pixels": pixels, "hog": hog_box, "corners": corners, "points": points}
        )
    return found


def _targets(pair: dict[str, Any]) -> np.ndarray:
    corners, hog = pair["corners"], pair["hog"]
    centre = corners.mean(axis=0)
    size = corners[1, 0] - corners[0, 0]
    hog_centre = np.array(hog.centre)
    return np.array([*((hog_centre - centre) / size), math.log(hog.width / size)])


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {
        "median": round(float(np.median(array)), 4),
        "p05": round(float(np.percentile(array, 5)), 4),
        "p95": round(float(np.percentile(array, 95)), 4),
        "min": round(float(array.min()), 4),
        "max": round(float(array.max()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument("--fit", type=int, default=400, help="tune-half photos to fit on")
    parser.add_argument("--check", type=int, default=300, help="report-half photos to measure")
    args = parser.parse_args()
    started = time.perf_counter()

    fit_pairs = _pairs(_photos(args.faces, "tune", args.fit))
    features = np.array([box_features(p["corners"], p["points"]) for p in fit_pairs])
    targets = np.array([_targets(p) for p in fit_pairs])
    coefficients, *_ = np.linalg.lstsq(features, targets, rcond=None)
    fit_residual = targets - features @ coefficients

    check_pairs = _pairs(_photos(args.faces, "report", args.check))
    landmarks = DlibLandmarks()
    embedder = DlibResNetEmbedder()
    measures: dict[str, list[float]] = {
        key: []
        for key in (
            "iou_raw",
            "iou_mapped",
            "landmark_error_raw",
            "landmark_error_mapped",
            "landmark_error_mapped_px",
            "cosine_raw",
            "cosine_mapped",
        )
    }
    for pair in check_pairs:
        pixels, hog_box = pair["pixels"], pair["hog"]
        corners = pair["corners"]
        raw = FaceBox(*(round(float(v)) for v in corners.ravel()))
        mapped = dlib_box(corners, pair["points"], coefficients)
        reference = landmarks.landmarks(pixels, hog_box)
        eyes = eye_distance_px(reference)
        reference_vector = _unit(embedder.embed(embedder.aligned_chip(pixels, reference)))
        for name, box in (("raw", raw), ("mapped", mapped)):
            points = landmarks.landmarks(pixels, box)
            error = float(np.linalg.norm(points - reference, axis=1).mean())
            measures[f"iou_{name}"].append(_iou(box, hog_box))
            measures[f"landmark_error_{name}"].append(error / eyes)
            if name == "mapped":
                measures["landmark_error_mapped_px"].append(error)
            vector = _unit(embedder.embed(embedder.aligned_chip(pixels, points)))
            measures[f"cosine_{name}"].append(float(vector @ reference_vector))

    rows = [[round(float(v), 6) for v in row] for row in coefficients]
    print("_DLIB_BOX_FIT = np.array(")
    print("    [")
    for row in rows:
        print(f"        {row},")
    print("    ]")
    print(")")
    for key, values in measures.items():
        print(key, _summary(values))
    path = write_results(
        "blazeface_box_fit",
        {
            "what": (
                "a map from BlazeFace's box and keypoints to dlib HOG's box (least squares), "
                "fitted on lfw-dev's tune half, measured on its report half against HOG "
                "(upsample 1) on the same photos; 'raw' is BlazeFace's own box, the baseline"
            ),
            "features": [
                "1",
                "eye_left x",
                "eye_left y",
                "eye_right x",
                "eye_right y",
                "nose_tip x",
                "nose_tip y",
                "mouth_centre x",
                "mouth_centre y",
            ],
            "feature_frame": "origin at BlazeFace's box centre, unit its width",
            "targets": ["HOG centre x", "HOG centre y", "log(HOG side / BlazeFace width)"],
            "coefficients": rows,
            "fit_photos": {"asked": args.fit, "used": len(fit_pairs)},
            "fit_residual_rms": [
                round(float(v), 4) for v in np.sqrt((fit_residual**2).mean(axis=0))
            ],
            "check_photos": {"asked": args.check, "used": len(check_pairs)},
            "landmark_error_unit": "mean distance over dlib's 5 points / eye distance (HOG's)",
            "measures": {key: _summary(values) for key, values in measures.items()},
            "load_average": os.getloadavg()[0],
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


if __name__ == "__main__":
    main()
