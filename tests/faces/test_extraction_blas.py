"""A template is the same bit for bit whatever the BLAS thread count of the process.

dlib's network runs on OpenBLAS, whose result depends on how many threads share the work.
A fresh machine's process starts one thread per core, extraction workers one each; these
tests force the thread counts explicitly, so they catch a network pass that is not held
to one thread even on a machine where both would have been the same.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from candor.faces import FaceEngine
from candor.faces.extraction import _one_blas_thread_per_worker, extract_faces
from candor.images import load_image


def test_workers_get_one_blas_thread_and_the_parent_keeps_its_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with _one_blas_thread_per_worker():
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    with _one_blas_thread_per_worker():
        assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"


def lfw_photos(faces_dir: Path) -> list[Path]:
    names = ("Aaron_Peirsol", "Abdullah_Gul", "Adam_Sandler")
    return [faces_dir / "lfw-dev" / name / f"{name}_0001.jpg" for name in names]


def in_process_vectors(paths: list[Path], blas_threads: int) -> list[np.ndarray]:
    """Templates made in this process while its BLAS is set to `blas_threads` threads."""
    engine = FaceEngine()
    vectors = []
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        # The setting must have reached the BLAS under dlib, or the test proves nothing.
        blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
        assert blas and {info["num_threads"] for info in blas} == {blas_threads}
        for path in paths:
            image = load_image(path)
            vectors.append(engine.face_template(image, engine.detect_faces(image)[0]).vector)
    return vectors


def pooled_vectors(paths: list[Path]) -> list[np.ndarray]:
    results = list(extract_faces(paths, workers=2))
    assert all(result.template is not None for result in results)
    return [result.template.vector for result in results if result.template is not None]


@pytest.mark.faces
def test_a_process_on_two_blas_threads_gives_the_workers_templates(faces_dir: Path) -> None:
    paths = lfw_photos(faces_dir)
    for here, there in zip(in_process_vectors(paths, 2), pooled_vectors(paths), strict=True):
        np.testing.assert_array_equal(here, there)


@pytest.mark.faces
def test_workers_told_to_use_two_blas_threads_give_the_same_templates(
    faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator's setting reaches the workers (see _one_blas_thread_per_worker), and
    # must not reach their templates.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    paths = lfw_photos(faces_dir)
    for here, there in zip(in_process_vectors(paths, 1), pooled_vectors(paths), strict=True):
        np.testing.assert_array_equal(here, there)
