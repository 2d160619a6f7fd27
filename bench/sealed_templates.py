"""What sealing templates in the database costs: at enrolment, and when an index is built
from the database (100k templates by default), sealed against plain in the same run.

Run: .venv/bin/python bench/sealed_templates.py [--templates 100000] [--rounds 3]

A SQLite workspace gets N subjects with one picture and one 128-d template each, through
the store's bulk path (`add_gallery_bulk`, as a synthetic gallery is loaded; no image
files: only the rows matter here). Then:

- enrolment: per template, `encode_template` sealing it (AES-256-GCM under the subject's
  key, a fresh nonce) against the float32 encoding alone (what was stored before); per
  subject, wrapping its new data key under the KEK (`add_subject_keys`).
- load: `templates_for_model` over every template (what `Workflow` does to build or
  reconcile an index): the rows with their image's sha256 (the context), the subject keys
  a batch at a time (`subject_keys`: one query per 500 subjects, each key unwrapped), each
  template opened. The baseline is the code before sealing: the same rows made plain (one
  UPDATE), read by the former query (no join) and `np.frombuffer`. The breakdown times
  the sealed path's parts alone: the query, the keys, the opening.

Wall seconds, median of the rounds; the machine is shared, so compare each figure with
its baseline from this run, not across runs. Writes bench/results/sealed_templates.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from sqlalchemy import select, text

from _common import write_results
from candor.sealing import new_data_key, open_sealed, wrap_key
from candor.store import FaceTemplate, GalleryImage, Provenance, Workspace, templates_for_model
from candor.store.gallery import BulkImage, BulkSubject, add_gallery_bulk
from candor.store.vault import template_context

DIMENSION = 128
BATCH = 10_000


class Model:
    """Shaped like candor.faces.ModelId (the store's TemplateModel)."""

    name = "bench-model"
    version = "1"
    weights_sha256 = "ab" * 32
    dimension = DIMENSION
    key = f"bench-model/1/{'ab' * 8}"


MODEL = Model()
PROVENANCE = Provenance(
    source_type="booking_photo",
    source_ref="bench",
    legal_basis="bench",
    collected_on=date(2024, 3, 1),
    retain_until=date(2034, 3, 1),
)


def timed(work: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """The median wall seconds of `rounds` runs of `work`, and its last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(rounds):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sha_of(number: int) -> str:
    return hashlib.sha256(f"bench picture {number}".encode()).hexdigest()


def build(workspace: Workspace, vectors: np.ndarray, progress: Progress) -> None:
    task = progress.add_task("gallery", total=len(vectors))
    now = datetime.now(UTC)
    for start in range(0, len(vectors), BATCH):
        subjects = []
        for number in range(start, min(start + BATCH, len(vectors))):
            key = new_data_key()
            sha256 = sha_of(number)
            blob = workspace.vault.encode_template(
                vectors[number], key, template_context(sha256, MODEL.key)
            )
            subjects.append(BulkSubject(f"B-{number:08d}", [BulkImage(sha256, 1000, blob)], key))
        with workspace.session() as session, session.begin():
            add_gallery_bulk(
                session,
                subjects,
                image_format="PNG",
                width=64,
                height=64,
                provenance=PROVENANCE,
                allowed_source_types=workspace.allowed_source_types(),
                today=date.today(),
                enrolled_by="bench",
                enrolled_at=now,
                face_choice="largest-central",
                face_box=(0, 0, 64, 64),
                quality={},
                model=MODEL,
                detector_key="bench",
                recipe="bench",
                keys=workspace.keys,
            )
        progress.advance(task, len(subjects))


def enrolment_costs(workspace: Workspace, vectors: np.ndarray, rounds: int) -> dict[str, Any]:
    count = min(len(vectors), 20_000)
    sample = vectors[:count]
    keys = [new_data_key() for _ in range(count)]
    contexts = [template_context(sha_of(n), MODEL.key) for n in range(count)]
    vault = workspace.vault
    kek = new_data_key()

    def sealed() -> None:
        for vector, key, context in zip(sample, keys, contexts, strict=True):
            vault.encode_template(vector, key, context)

    def plain() -> None:
        for vector in sample:
            vector.astype("<f4").tobytes()

    def wrapped() -> None:
        for key in keys:
            wrap_key(kek, key)

    sealed_s, _ = timed(sealed, rounds)
    plain_s, _ = timed(plain, rounds)
    wrap_s, _ = timed(wrapped, rounds)
    return {
        "templates": count,
        "seal_template_us": round(sealed_s / count * 1e6, 2),
        "baseline_plain_encode_us": round(plain_s / count * 1e6, 2),
        "wrap_subject_key_us": round(wrap_s / count * 1e6, 2),
    }


def load_sealed(workspace: Workspace) -> int:
    with workspace.session() as session:
        rows = templates_for_model(session, MODEL.key, workspace.vault, workspace.keys)
        return sum(1 for _ in rows)


def load_plain_as_before(workspace: Workspace) -> int:
    """The streaming read before sealing (store/gallery.py at 62be77a)."""
    query = (
        select(
            FaceTemplate.id,
            FaceTemplate.subject_id,
            FaceTemplate.image_id,
            FaceTemplate.dimension,
            FaceTemplate.vector,
        )
        .where(FaceTemplate.model_key == MODEL.key)
        .order_by(FaceTemplate.id)
        .execution_options(yield_per=10_000)
    )
    count = 0
    with workspace.session() as session:
        for _, _, _, dimension, blob in session.execute(query):
            np.frombuffer(blob, dtype="<f4", count=dimension).astype(np.float32)
            count += 1
    return count


def sealed_parts(workspace: Workspace, rounds: int) -> dict[str, float]:
    query = (
        select(
            FaceTemplate.subject_id,
            FaceTemplate.vector,
            GalleryImage.sha256,
        )
        .join(GalleryImage, GalleryImage.id == FaceTemplate.image_id)
        .where(FaceTemplate.model_key == MODEL.key)
        .order_by(FaceTemplate.id)
    )
    with workspace.session() as session:
        query_s, rows = timed(lambda: session.execute(query).all(), rounds)
        keys_s, keys = timed(
            lambda: workspace.keys.subject_keys(session, (r[0] for r in rows)), rounds
        )

    def opened() -> None:
        for subject_id, blob, sha256 in rows:
            open_sealed(keys[subject_id], blob, template_context(sha256, MODEL.key))

    open_s, _ = timed(opened, rounds)
    return {
        "query_with_image_sha256_s": round(query_s, 3),
        "subject_keys_s": round(keys_s, 3),
        "open_templates_s": round(open_s, 3),
    }


def make_plain(workspace: Workspace, vectors: np.ndarray) -> None:
    """Every template back in the clear, as a workspace before sealing held it."""
    with workspace.session() as session, session.begin():
        ids = session.scalars(select(FaceTemplate.id).order_by(FaceTemplate.id)).all()
        session.connection().execute(
            text("UPDATE face_templates SET vector = :vector WHERE id = :id"),
            [
                {"id": template_id, "vector": vectors[n].astype("<f4").tobytes()}
                for n, template_id in enumerate(ids)
            ],
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    vectors = np.random.default_rng(15).standard_normal((args.templates, DIMENSION))
    vectors = vectors.astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="candor-sealed-templates-") as folder:
        os.environ["CANDOR_KEK_FILE"] = str(Path(folder) / "kek")
        workspace = Workspace.create(Path(folder) / "ws")
        try:
            columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns) as progress:
                start = time.perf_counter()
                build(workspace, vectors, progress)
                build_s = time.perf_counter() - start
            enrolment = enrolment_costs(workspace, vectors, args.rounds)
            sealed_s, count = timed(lambda: load_sealed(workspace), args.rounds)
            assert count == args.templates
            parts = sealed_parts(workspace, args.rounds)
            make_plain(workspace, vectors)
            plain_s, count = timed(lambda: load_plain_as_before(workspace), args.rounds)
            assert count == args.templates
        finally:
            workspace.close()
    load = os.getloadavg()
    payload = {
        "templates": args.templates,
        "dimension": DIMENSION,
        "rounds": args.rounds,
        "database": "sqlite",
        "load_average_at_end": [round(x, 2) for x in load],
        "bulk_build_sealed_s": round(build_s, 2),
        "enrolment": enrolment,
        "load_into_index": {
            "sealed_s": round(sealed_s, 3),
            "baseline_plain_s": round(plain_s, 3),
            "sealed_per_template_us": round(sealed_s / args.templates * 1e6, 2),
            "baseline_plain_per_template_us": round(plain_s / args.templates * 1e6, 2),
            "sealed_parts": parts,
        },
    }
    path = write_results("sealed_templates", payload)
    print(path)
    print(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
