"""The 1:1 verification threshold of `candor verify`, measured on lfw-dev.

Genuine pairs: the matched pairs of lfw-dev-pairs.txt (LFW's protocol). Impostor
pairs: every pair of photos of two different people among all photos that the pairs
file names, so that a false match rate of 1e-3 rests on millions of comparisons rather
than on the file's 1,500 mismatched pairs. Writes bench/results/verification_lfw.json.

    .venv/bin/python bench/verification_lfw.py [--faces ../shared/faces] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from candor.evaluation.cache import extract_photos

RESULTS = Path(__file__).resolve().parent / "results" / "verification_lfw.json"


def read_pairs(pairs_file: Path, photos: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Matched pairs, and every photo the file names (matched or mismatched)."""
    lines = pairs_file.read_text().splitlines()[1:]
    matched: list[tuple[Path, Path]] = []
    named: set[Path] = set()

    def photo(name: str, number: str) -> Path:
        return photos / name / f"{name}_{int(number):04d}.jpg"

    for line in lines:
        fields = line.split("\t")
        if len(fields) == 3:
            first, second = photo(fields[0], fields[1]), photo(fields[0], fields[2])
            matched.append((first, second))
        else:
            first, second = photo(fields[0], fields[1]), photo(fields[2], fields[3])
        named.update((first, second))
    return matched, sorted(named)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    photos = args.faces / "lfw-dev"
    matched, named = read_pairs(args.faces / "lfw-dev-pairs.txt", photos)
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            print(f"\r{done}/{total} photos", end="", file=sys.stderr, flush=True)

    outcomes = extract_photos(named, workers=args.workers, progress=report)
    print(file=sys.stderr)
    vectors = {o.path: o.vector for o in outcomes if o.vector is not None}
    people = {path: path.parent.name for path in vectors}

    usable = sorted(vectors)
    matrix = np.stack([vectors[p] for p in usable]).astype(np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    labels = np.array([people[p] for p in usable])
    scores = matrix @ matrix.T
    upper = np.triu_indices(len(usable), k=1)
    different = labels[upper[0]] != labels[upper[1]]
    impostor = np.sort(scores[upper][different])[::-1]

    genuine = np.array(
        [
            float(
                np.dot(vectors[a], vectors[b])
                / np.linalg.norm(vectors[a])
                / np.linalg.norm(vectors[b])
            )
            for a, b in matched
            if a in vectors and b in vectors
        ]
    )
    failed_pairs = sum(1 for a, b in matched if a not in vectors or b not in vectors)

    def threshold_at_fmr(rate: float) -> float:
        # The smallest threshold at which at most `rate` of impostor pairs pass.
        allowed = int(np.floor(rate * len(impostor)))
        return float(np.nextafter(impostor[allowed], np.inf)) if allowed < len(impostor) else -1.0

    points = {}
    for rate in (1e-4, 1e-3, 1e-2):
        threshold = threshold_at_fmr(rate)
        fmr = float(np.mean(impostor >= threshold))
        # A genuine pair with a failed photo cannot pass: it counts as a non-match.
        fnmr = float((np.sum(genuine < threshold) + failed_pairs) / (len(genuine) + failed_pairs))
        points[f"{rate:g}"] = {"threshold": round(threshold, 5), "fmr": fmr, "fnmr": round(fnmr, 4)}

    result = {
        "what": "1:1 cosine threshold for `candor verify`, dlib ResNet, default engine settings",
        "genuine_pairs": len(genuine),
        "genuine_pairs_with_a_failed_photo": failed_pairs,
        "impostor_pairs": len(impostor),
        "photos": len(named),
        "photos_with_template": len(vectors),
        "operating_points": points,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": datetime.now(UTC).date().isoformat(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
