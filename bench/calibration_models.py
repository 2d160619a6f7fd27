"""Each model's own thresholds, as `candor calibrate --model` derives them, on lfw-dev.

For dlib's ResNet and an operator's ONNX model (read as `candor model add` reads it, named
"mobilefacenet" version "1" as the registry names it, so the evaluation cache is shared
with bench/models_lfw.py), on the same labelled folder and detector, in one run:
- the 1:1 verify threshold at FMR 1e-3 with its measured FMR and FNMR and pair counts
  (every pair of the folder's photos; a mated pair with a photo without template fails);
- the repeat-search similarity: the cosine at which the model passes the share of impostor
  pairs that dlib passes at the example policies' 0.95 (dlib's shipped calibration);
- the quality gate's sharpness limit matched to the share dlib's default (4) refuses.
Baselines: dlib's shipped figures (bench/results/verification_lfw.json: 0.926, FMR 1e-3,
FNMR 0.072 over LFW's matched pairs), the policy's 0.95 and dlib's limit 4. The dlib row
recomputes its threshold with the new code on the same people: it should land near 0.926.

    .venv/bin/python bench/calibration_models.py [--faces ../shared/faces] [--photos 1500]
        [--model-file ../shared/models/mobilefacenet/mobilefacenet.onnx] [--workers 2]

--photos: the first lfw-dev people (sorted) whose photos add up to about this many (0: all).
Writes bench/results/calibration_models.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import write_results
from candor.evaluation.calibration import measure_model
from candor.evaluation.identification import list_people
from candor.faces import EngineSettings, QualityThresholds
from candor.faces.onnx_models import inspect_model_file
from candor.workflow.calibration import VERIFY_TARGET_FMR, derive_repeat_similarity

POLICY_SIMILARITY = 0.95  # the example policies' repeat.similarity
SHIPPED = {"verify_threshold": 0.926, "verify_fmr": 0.001, "verify_fnmr": 0.072}


def subset(faces: Path, photos: int, into: Path) -> Path:
    """A folder of symlinks to the first people whose photos reach `photos` (0: all)."""
    if photos == 0:
        return faces
    total = 0
    for name, listed in list_people(faces):
        (into / name).mkdir(parents=True)
        for photo in listed:
            (into / name / photo.name).symlink_to(photo.absolute())
        total += len(listed)
        if total >= photos:
            break
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_faces = Path(os.environ.get("CANDOR_FACES", "../shared/faces"))
    default_models = Path(os.environ.get("CANDOR_MODELS", "../shared/models"))
    parser.add_argument("--faces", type=Path, default=default_faces)
    parser.add_argument(
        "--model-file", type=Path, default=default_models / "mobilefacenet" / "mobilefacenet.onnx"
    )
    parser.add_argument("--photos", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    base = EngineSettings()
    facts = inspect_model_file(args.model_file.absolute())
    operator = replace(base, embedder_model=facts.spec("mobilefacenet", "1"))
    dlib_limit = QualityThresholds().min_sharpness
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = subset(args.faces / "lfw-dev", args.photos, Path(scratch))
        for name, settings, reference in (
            ("dlib", base, None),
            ("mobilefacenet", operator, base),
        ):

            def report(done: int, total: int, name: str = name) -> None:
                if done == total or done % 500 == 0:
                    print(f"\r{name}: {done}/{total}", end="", file=sys.stderr, flush=True)

            measured = measure_model(
                folder,
                settings,
                reference=reference,
                reference_min_sharpness=dlib_limit,
                target_fmr=VERIFY_TARGET_FMR,
                workers=args.workers,
                progress=report,
            )
            print(file=sys.stderr)
            verify = measured.verify
            repeat = derive_repeat_similarity(POLICY_SIMILARITY, measured.cosine)
            rows[name] = {
                "model_key": measured.cosine.model_key,
                "templates": measured.cosine.templates,
                "faces": measured.faces,
                "verify_threshold": None if verify is None else round(verify.threshold, 5),
                "verify_fmr": None if verify is None else verify.false_match_rate,
                "verify_fnmr": None if verify is None else round(verify.false_non_match_rate, 4),
                "impostor_pairs": None if verify is None else verify.impostor_pairs,
                "mated_pairs": None if verify is None else verify.mated_pairs,
                "mated_pairs_without_template": None
                if verify is None
                else verify.mated_pairs_without_template,
                "repeat_similarity": round(repeat.similarity, 5),
                "repeat_impostor_rate": repeat.impostor_rate,
                "repeat_extrapolated": repeat.extrapolated,
                "min_sharpness": round(measured.min_sharpness, 3),
                "sharpness_refused_share": round(measured.refused_share, 5),
                "dlib_refused_share": round(measured.reference_refused_share, 5),
            }
            print(f"{name}: {rows[name]}", flush=True)
        people = len(list_people(folder))
    path = write_results(
        "calibration_models",
        {
            "description": __doc__,
            "dataset": f"lfw-dev, first {people} people (sorted)",
            "detector": base.key,
            "model_file": {"name": args.model_file.name, "sha256": facts.sha256},
            "baseline": {
                "dlib_shipped": SHIPPED,
                "policy_repeat_similarity": POLICY_SIMILARITY,
                "dlib_min_sharpness": dlib_limit,
            },
            "models": rows,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "workers": args.workers,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
