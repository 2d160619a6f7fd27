"""extract_faces: the one way to turn many photo files into templates.

Bulk enrolment (workflow) and the accuracy harness (evaluation) both call it, so both
apply the same decoding, face choice and quality gate. With workers > 1 it runs a process
pool of the "spawn" kind with one FaceEngine per worker: dlib's model objects crash when
shared between threads, and a fork pool hangs once the parent has used dlib.

Which face: by default `choose_face` (the largest face nearest the centre), recorded in
`FaceExtraction.chosen`. A caller that wants another face passes `face_index` for the
call (useful for one probe file; every file of the call gets that index) or uses
`FaceEngine.detect_faces` and `FaceEngine.face_template` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Final

from candor.faces.engine import EngineSettings, FaceEngine, choose_face
from candor.faces.recipe import Views
from candor.faces.records import DetectedFace, Template
from candor.images import ImageError, encode_png, load_image


@dataclass(frozen=True, eq=False)
class FaceExtraction:
    """What came of one file: its faces, the chosen one and its template, or why none.

    path: the file as given. sha256: hex digest of its bytes (None when it could not be
    decoded). data: the original bytes, with keep_data=True. error: the ImageError message
    when decoding failed. faces: every face found, largest first. chosen: index into faces
    of choose_face's pick or the caller's face_index. template: of the chosen face, only
    when it passed the quality gate. chip_png: the chosen face's aligned chip as PNG, with
    keep_data=True. requested_face: the face_index the caller asked for, if any.
    image_format, width, height: the decoded image's format (as recognised from its
    content) and size in pixels after EXIF orientation; None when it could not be decoded.
    """

    path: Path
    sha256: str | None
    data: bytes | None
    error: str | None
    faces: tuple[DetectedFace, ...]
    chosen: int | None
    template: Template | None
    chip_png: bytes | None
    requested_face: int | None = None
    image_format: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def refusal(self) -> str | None:
        """One sentence saying why there is no template; None when there is one."""
        if self.template is not None:
            return None
        if self.error is not None:
            return self.error
        if not self.faces:
            return no_face_refusal(self.path)
        if self.chosen is None:
            return (
                f"face {self.requested_face} was asked for, but {self.path.name} has "
                f"{len(self.faces)} face(s), numbered from 0."
            )
        return quality_refusal(self.path, self.faces[self.chosen].quality.reasons)


def no_face_refusal(path: Path) -> str:
    """The refusal sentence for a photo where the detector found no face."""
    return f"no face found in {path.name}."


def quality_refusal(path: Path, reasons: Sequence[str]) -> str:
    """The refusal sentence for a face the quality gate refused, with all its reasons."""
    return f"the face in {path.name} was refused: {'; '.join(reasons)}."


def extract_one(
    engine: FaceEngine,
    path: Path,
    *,
    keep_data: bool = False,
    face_index: int | None = None,
    views: Views = "plain",
) -> FaceExtraction:
    """Decode one file, find its faces, choose one and make its template if it passes.

    views: the recipe's view set for this role (enrolment or search); see
    `FaceEngine.face_template`.
    """
    try:
        image = load_image(path)
    except (ImageError, OSError) as exc:
        return FaceExtraction(path, None, None, str(exc), (), None, None, None, face_index)
    faces: list[DetectedFace] = engine.detect_faces(image)
    chosen: int | None
    if face_index is not None:
        chosen = face_index if 0 <= face_index < len(faces) else None
    elif faces:
        height, width = image.pixels.shape[:2]
        chosen = choose_face(faces, width, height)
    else:
        chosen = None
    template: Template | None = None
    chip_png: bytes | None = None
    if chosen is not None:
        face = faces[chosen]
        if face.quality.passed:
            template = engine.face_template(image, face, views)
        if keep_data:
            chip_png = encode_png(engine.aligned_chip(image, face))
    return FaceExtraction(
        path=path,
        sha256=image.sha256,
        data=image.data if keep_data else None,
        error=None,
        faces=tuple(faces),
        chosen=chosen,
        template=template,
        chip_png=chip_png,
        requested_face=face_index,
        image_format=image.format,
        width=image.pixels.shape[1],
        height=image.pixels.shape[0],
    )


# Set in each worker process by _start_worker; never at import.
_worker_engine: FaceEngine | None = None


def _start_worker(settings: EngineSettings) -> None:
    global _worker_engine
    _worker_engine = FaceEngine(settings)


_Job = tuple[Path, bool, int | None, Views]


def _extract_in_worker(job: _Job) -> FaceExtraction:
    if _worker_engine is None:
        raise RuntimeError("worker started without an engine")
    path, keep_data, face_index, views = job
    return extract_one(
        _worker_engine, path, keep_data=keep_data, face_index=face_index, views=views
    )


def extract_faces(
    paths: Sequence[Path],
    settings: EngineSettings | None = None,
    *,
    workers: int = 1,
    keep_data: bool = False,
    face_index: int | None = None,
    views: Views = "plain",
) -> Iterator[FaceExtraction]:
    """One FaceExtraction per path, yielded in input order.

    workers: 1 runs in this process (one engine, made on first use); more starts a spawn
        process pool with one FaceEngine per worker (about 1 s to start each).
    keep_data: also return the file bytes and the chosen face's aligned chip (PNG), for
        the content-addressed store.
    face_index: pick this face (0 = largest) in every file instead of `choose_face`; a file
        with fewer faces gets no template and a refusal saying so.
    views: how each template is made (see `candor.faces.recipe`): "plain" (the default),
        "flip" or "jitter", at 1, 2 or 6 network passes per face.
    A file that cannot be decoded yields an extraction with `error` set; it does not stop
    the others.
    """
    if workers < 1:
        raise ValueError("workers must be 1 or more")
    if face_index is not None and face_index < 0:
        raise ValueError("face_index counts from 0")
    jobs: list[_Job] = [(Path(path), keep_data, face_index, views) for path in paths]
    # Checked above, before the first next(): a generator would defer these errors.
    return _run_jobs(jobs, settings or EngineSettings(), workers)


def _run_jobs(jobs: list[_Job], settings: EngineSettings, workers: int) -> Iterator[FaceExtraction]:
    if not jobs:
        return
    if workers == 1 or len(jobs) == 1:
        engine = FaceEngine(settings)
        for path, keep, index, views in jobs:
            yield extract_one(engine, path, keep_data=keep, face_index=index, views=views)
        return
    context = get_context("spawn")
    with _one_blas_thread_per_worker():  # the workers start in the constructor
        pool = context.Pool(
            processes=min(workers, len(jobs)),
            initializer=_start_worker,
            initargs=(settings,),
        )
    with pool:
        # Small chunks keep progress even across workers; pickling results is cheap.
        yield from pool.imap(_extract_in_worker, jobs, chunksize=4)


# OpenBLAS (under dlib's network) reads this when a worker loads it, to size its pool.
_BLAS_THREADS: Final = "OPENBLAS_NUM_THREADS"


@contextmanager
def _one_blas_thread_per_worker() -> Iterator[None]:
    """Workers started here start their BLAS with one thread, unless the operator chose.

    The network holds itself to one BLAS thread whatever this says (see
    `candor.faces.dlib_models`), so templates never depend on it; it only spares each
    worker a pool of BLAS threads it would never use.
    """
    if _BLAS_THREADS in os.environ:
        yield
        return
    os.environ[_BLAS_THREADS] = "1"
    try:
        yield
    finally:
        os.environ.pop(_BLAS_THREADS, None)
