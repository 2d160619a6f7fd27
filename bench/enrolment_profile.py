"""Where enrolment time goes, in CPU time per photo: decode, HOG, landmarks, ResNet.

Run: .venv/bin/python bench/enrolment_profile.py [--photos 60]

CPU time (time.process_time) rather than wall time, so the figures hold on a shared,
busy machine: with two cores and no other load, photos per second cannot exceed
2 / (CPU seconds per photo). The ResNet is timed one chip at a time, on all chips as one
batch, and in batches of 8 (dlib's compute_face_descriptor accepts a list of chips), and
the batched templates are compared with the one-at-a-time ones.
Writes bench/results/enrolment_profile.json.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dlib
import numpy as np

from _common import write_results
from candor.faces import FaceEngine
from candor.images import load_image

T = TypeVar("T")


def cpu_ms(work: Callable[[], T], count: int) -> tuple[T, float, float]:
    """(result, CPU ms per item, wall ms per item)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return (
        result,
        (time.process_time() - cpu) / count * 1e3,
        (time.perf_counter() - wall) / count * 1e3,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument(
        "--faces", default=str(Path(__file__).resolve().parents[2] / "shared/faces")
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    paths = sorted((Path(args.faces) / "lfw-dev").glob("*/*.jpg"))[: args.photos]
    engine = FaceEngine()
    images, decode_ms, _ = cpu_ms(lambda: [load_image(path) for path in paths], len(paths))
    _, hog_ms, _ = cpu_ms(lambda: [engine.detector.detect(i.pixels) for i in images], len(paths))
    faces, detect_ms, _ = cpu_ms(lambda: [engine.detect_faces(i) for i in images], len(paths))
    chips = [engine.aligned_chip(i, f[0]) for i, f in zip(images, faces, strict=True) if f]
    network: Any = dlib.face_recognition_model_v1(str(engine.embedder._files.resnet))  # type: ignore[attr-defined]
    count = len(chips)
    network.compute_face_descriptor(chips[0], 0)  # loads the weights outside the timing
    single, single_ms, single_wall = cpu_ms(
        lambda: [np.asarray(network.compute_face_descriptor(c, 0)) for c in chips], count
    )
    batch, batch_ms, batch_wall = cpu_ms(
        lambda: np.asarray(network.compute_face_descriptor(chips, 0)), count
    )
    eights, eight_ms, eight_wall = cpu_ms(
        lambda: [
            np.asarray(network.compute_face_descriptor(chips[i : i + 8], 0))
            for i in range(0, count, 8)
        ],
        count,
    )
    per_photo = decode_ms + detect_ms + single_ms * count / len(paths)
    result = {
        "description": __doc__.split("\n\n")[2].replace("\n", " "),
        "photos": len(paths),
        "faces_embedded": count,
        "cpu_ms_per_photo": {
            "decode": round(decode_ms, 1),
            "hog_detector": round(hog_ms, 1),
            "detect_faces_hog_landmarks_chip_quality": round(detect_ms, 1),
        },
        "resnet_cpu_ms_per_face": {
            "one_at_a_time": round(single_ms, 1),
            f"one_batch_of_{count}": round(batch_ms, 1),
            "batches_of_8": round(eight_ms, 1),
        },
        "resnet_wall_ms_per_face": {
            "one_at_a_time": round(single_wall, 1),
            f"one_batch_of_{count}": round(batch_wall, 1),
            "batches_of_8": round(eight_wall, 1),
        },
        "batched_templates_max_abs_difference": float(
            max(
                np.abs(np.stack(single) - batch).max(),
                np.abs(np.stack(single) - np.vstack(eights)).max(),
            )
        ),
        "cpu_ms_per_photo_total": round(per_photo, 1),
        "two_core_ceiling_photos_per_second": round(2000.0 / per_photo, 1),
        "dlib": dlib.__version__,
        "dlib_use_blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
        "dlib_use_avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)),
        "load_average_1min": os.getloadavg()[0],
    }
    print(result)
    if not args.no_write:
        write_results("enrolment_profile", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
