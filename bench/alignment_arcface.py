"""Which points an ArcFace-class model should be aligned on, measured with the shared model.

LFW's verification protocol on lfw-dev-pairs.txt (10 folds of 150 matched and 150
mismatched pairs; each fold's threshold chosen on the other nine), with the shared
MobileFaceNet (../shared/models/mobilefacenet/mobilefacenet.onnx, evaluation only) and
each way of fitting the 5-point similarity onto ArcFace's 112 template
(`candor.faces.onnx_models.alignment_points`):

- "eyes": dlib's two eye centres (Candor's alignment before issue 16);
- "dlib": those and dlib's base of the nose, at the template point measured here;
- "keypoints": BlazeFace's eye centres, nose tip and mouth centre;
- "combined": BlazeFace's four keypoints and dlib's three points together.

Faces come from the HOG pipeline (dlib's landmarks only) and the BlazeFace pipeline
(`EngineSettings(detector="blazeface")`: its keypoints, and dlib's landmarks on its box).
First the base of the nose is measured: where dlib's 5th landmark lands in chips aligned
on BlazeFace's keypoints, the mean over the photos (a 2-number constant: fitting it on
the same photos cannot flatter the figures measurably). Each variant then uses the
measured point, and the JSON says whether `DLIB_NOSE_BASE` in the code matches it.

A pair with a photo where no face was found counts as a non-match. Detections are cached
in --cache (scratch, outside the repository), so a rerun only embeds. Writes
bench/results/alignment_arcface.json.

    .venv/bin/python bench/alignment_arcface.py [--faces ../shared/faces] [--every N]
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from candor.faces import EngineSettings, FaceEngine
from candor.faces.onnx_models import (
    ARCFACE_SIZE,
    DEFAULT_POINTS,
    DLIB_NOSE_BASE,
    OnnxArcFaceEmbedder,
    arcface_transform,
    inspect_model_file,
    warp_chip,
)
from candor.faces.quality import OPEN_GATE
from candor.images import load_image

Pair = tuple[Path, Path, bool, int]
# README of ../shared/models: MTCNN's 5 points and BlazeFace's 4, same model and file.
REFERENCE = {"mtcnn_5_points": 0.9950, "blazeface_4_points": 0.9913}
DETECTORS = ("hog", "blazeface")
VARIANTS = {"hog": ("eyes", "dlib"), "blazeface": ("eyes", "dlib", "keypoints", "combined")}


def read_pairs(faces: Path) -> list[Pair]:
    """(photo, photo, same person, fold) for each line of lfw-dev-pairs.txt."""
    lines = (faces / "lfw-dev-pairs.txt").read_text().splitlines()
    folds, per_fold = (int(value) for value in lines[0].split())

    def photo(name: str, number: str) -> Path:
        return faces / "lfw-dev" / name / f"{name}_{int(number):04d}.jpg"

    pairs: list[Pair] = []
    for index, line in enumerate(lines[1:]):
        fields = line.split("\t")
        fold = index // (2 * per_fold)
        if len(fields) == 3:
            pairs.append((photo(fields[0], fields[1]), photo(fields[0], fields[2]), True, fold))
        else:
            pairs.append((photo(fields[0], fields[1]), photo(fields[2], fields[3]), False, fold))
    assert len(pairs) == folds * 2 * per_fold, "pairs file does not match its header"
    return pairs


def detect(
    photos: list[Path], detector: str, cache: Path
) -> dict[Path, tuple[np.ndarray, np.ndarray | None] | None]:
    """The chosen face's (dlib landmarks, keypoints or None) per photo; None: no face."""
    cache.mkdir(parents=True, exist_ok=True)
    file = cache / f"alignment-arcface-{detector}.pickle"
    done: dict[Path, Any] = pickle.loads(file.read_bytes()) if file.is_file() else {}
    engine = FaceEngine(EngineSettings(detector=detector, quality=OPEN_GATE))  # type: ignore[arg-type]
    todo = [path for path in photos if path not in done]
    started = time.perf_counter()
    for count, path in enumerate(todo, 1):
        faces, chosen = engine.chosen_face(load_image(path))
        if chosen is None:
            done[path] = None
        else:
            face = faces[chosen]
            keypoints = None if face.keypoints is None else np.asarray(face.keypoints)
            done[path] = (np.asarray(face.landmarks), keypoints)
        if count % 250 == 0 or count == len(todo):
            elapsed = time.perf_counter() - started
            print(f"  {detector}: {count}/{len(todo)} photos, {elapsed:.0f} s", flush=True)
            file.write_bytes(pickle.dumps(done))
    return {path: done[path] for path in photos}


def measure_nose_base(
    blaze: dict[Path, Any], hog: dict[Path, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Where dlib's nose base lands in chips aligned on BlazeFace's 4 keypoints."""
    found: dict[str, list[np.ndarray]] = {"hog_landmarks": [], "blazeface_landmarks": []}
    for path, face in blaze.items():
        if face is None or face[1] is None:
            continue
        landmarks, keypoints = face
        if np.sum(np.all(np.isfinite(keypoints), axis=1)) < 4:
            continue
        matrix = arcface_transform(landmarks, keypoints, "keypoints")
        found["blazeface_landmarks"].append(matrix @ np.append(landmarks[4], 1.0))
        if hog.get(path) is not None:
            found["hog_landmarks"].append(matrix @ np.append(hog[path][0][4], 1.0))
    summary = {
        source: {
            "photos": len(points),
            "mean": np.mean(points, axis=0).round(3).tolist(),
            "median": np.median(points, axis=0).round(3).tolist(),
            "std": np.std(points, axis=0).round(3).tolist(),
        }
        for source, points in found.items()
    }
    # Pooled: the landmarks of either pipeline may feed the "dlib" points.
    pooled = np.mean(found["hog_landmarks"] + found["blazeface_landmarks"], axis=0)
    return pooled, summary


def embed_into(
    vectors: dict[Path, np.ndarray],
    embedder: OnnxArcFaceEmbedder,
    batch: list[tuple[Path, np.ndarray]],
) -> None:
    """Unit vectors of the batch's chips into `vectors`; empties the batch."""
    if batch:
        embedded = embedder.embed_batch([chip for _, chip in batch])
        for (path, _), vector in zip(batch, embedded, strict=True):
            vectors[path] = vector / np.linalg.norm(vector)
    batch.clear()


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """LFW's protocol: per fold, the threshold that is best on the other nine."""
    accuracies = []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        candidates = np.unique(scores[train & np.isfinite(scores)])
        best = max(
            candidates,
            key=lambda t: float(np.mean((scores[train] >= t) == same[train])),
        )
        accuracies.append(float(np.mean((scores[test] >= best) == same[test])))
    return {
        "accuracy": round(float(np.mean(accuracies)), 4),
        "std_over_folds": round(float(np.std(accuracies)), 4),
        "folds": [round(value, 4) for value in accuracies],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("CANDOR_MODELS", "../shared/models"))
        / "mobilefacenet"
        / "mobilefacenet.onnx",
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--every", type=int, default=1, help="every Nth pair only (developing)")
    args = parser.parse_args()
    pairs = read_pairs(args.faces)
    pairs = pairs[:: args.every]
    photos = sorted({path for pair in pairs for path in pair[:2]})
    print(f"{len(pairs)} pairs, {len(photos)} photos", flush=True)

    faces = {detector: detect(photos, detector, args.cache) for detector in DETECTORS}
    nose_base, nose_summary = measure_nose_base(faces["blazeface"], faces["hog"])
    print(f"nose base measured at {nose_base.round(2).tolist()}", flush=True)

    facts = inspect_model_file(args.model)
    embedder = OnnxArcFaceEmbedder(facts.spec("mobilefacenet", "eval", threads=1))
    same = np.array([pair[2] for pair in pairs])
    folds = np.array([pair[3] for pair in pairs])
    results: dict[str, Any] = {}
    warp_seconds, warps = 0.0, 0
    for detector in DETECTORS:
        for points in VARIANTS[detector]:
            started = time.perf_counter()
            vectors: dict[Path, np.ndarray] = {}
            batch: list[tuple[Path, np.ndarray]] = []
            for path in photos:
                face = faces[detector][path]
                if face is None:
                    continue
                pixels = load_image(path).pixels
                warp_started = time.perf_counter()
                matrix = arcface_transform(face[0], face[1], points, nose_base=nose_base)
                chip = warp_chip(pixels, matrix, ARCFACE_SIZE)
                warp_seconds += time.perf_counter() - warp_started
                warps += 1
                batch.append((path, chip))
                if len(batch) == 64:
                    embed_into(vectors, embedder, batch)
            embed_into(vectors, embedder, batch)
            scores = np.array(
                [
                    float(vectors[a] @ vectors[b]) if a in vectors and b in vectors else -np.inf
                    for a, b, _, _ in pairs
                ]
            )
            figures = ten_fold_accuracy(scores, same, folds)
            figures["pairs_without_a_face"] = int(np.sum(~np.isfinite(scores)))
            figures["seconds"] = round(time.perf_counter() - started, 1)
            results[f"{detector}/{points}"] = figures
            print(f"  {detector}/{points}: {figures['accuracy']:.4f}", flush=True)

    document = {
        "what": (
            "LFW 10-fold verification accuracy on lfw-dev-pairs.txt with the shared "
            "MobileFaceNet (evaluation only), per detector and alignment points"
        ),
        "pairs": len(pairs),
        "photos": len(photos),
        "photos_without_a_face": {
            detector: sum(1 for face in faces[detector].values() if face is None)
            for detector in DETECTORS
        },
        "model": {"sha256": facts.sha256, "dimension": facts.dimension},
        "baseline": "hog/eyes (Candor's alignment before issue 16), same run",
        "reference_from_shared_models_readme": REFERENCE,
        "results": results,
        "default_points": DEFAULT_POINTS,
        "nose_base": {
            "measured": nose_base.round(3).tolist(),
            "in_code": DLIB_NOSE_BASE.tolist(),
            "by_landmark_source": nose_summary,
        },
        "warp_ms_per_face": round(1000 * warp_seconds / max(warps, 1), 3),
        "load_average_at_end": list(os.getloadavg()),
    }
    path = write_results("alignment_arcface", document)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
