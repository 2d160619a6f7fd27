"""CPU time of dlib's ResNet per face, for whichever dlib build runs this script.

The PyPI binary wheel Candor used to pin (dlib-bin) is built without BLAS. dlib built
from its source against OpenBLAS, with AVX, as `make` now installs it, runs the same
network from the same weights. This script times one build; run it under each
interpreter to compare them:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/resnet_cpu_time.py   # Candor's dlib
    /path/to/dlib-bin-venv/bin/python bench/resnet_cpu_time.py          # the old wheel

It aligns the first photo of every 60th lfw-dev person and times
`compute_face_descriptor` on one thread, in CPU time, so the neighbours' load does not
count. To check that two builds give the same templates, save one build's with --save
(outside the repository: they are biometric data of the photos) and pass that file to
the other with --against. Writes bench/results/resnet_cpu_time_<blas|noblas>.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import dlib
import numpy as np

from _common import write_results
from candor.evaluation.identification import list_people
from candor.faces import FaceEngine
from candor.faces.registry import dlib_model_files
from candor.images import load_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument("--save", type=Path, help="write this build's templates here (.npy)")
    parser.add_argument("--against", type=Path, help="templates of another build (.npy)")
    args = parser.parse_args()
    engine = FaceEngine()
    chips = []
    for _, photos in list_people(args.faces / "lfw-dev")[::60]:
        image = load_image(photos[0])
        faces, chosen = engine.chosen_face(image)
        if chosen is not None:
            chips.append(engine.aligned_chip(image, faces[chosen]))
    network = dlib.face_recognition_model_v1(str(dlib_model_files().resnet))
    network.compute_face_descriptor(chips[0], 0)  # first call allocates
    started = time.process_time()
    vectors = np.array([np.array(network.compute_face_descriptor(chip, 0)) for chip in chips])
    per_chip = 1000.0 * (time.process_time() - started) / len(chips)
    build = "blas" if dlib.DLIB_USE_BLAS else "noblas"
    if args.save is not None:
        np.save(args.save, vectors.astype(np.float32))
    difference = None
    if args.against is not None:
        difference = float(np.abs(np.load(args.against) - vectors).max())
    path = write_results(
        f"resnet_cpu_time_{build}",
        {
            "description": __doc__,
            "dlib": dlib.__version__,
            "blas": bool(dlib.DLIB_USE_BLAS),
            "avx": bool(dlib.USE_AVX_INSTRUCTIONS),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "chips": len(chips),
            "cpu_ms_per_chip": per_chip,
            "max_abs_difference_from_other_build": difference,
        },
    )
    print(f"{build}: {per_chip:.1f} ms CPU per chip over {len(chips)}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
