"""Extraction workers keep their BLAS to one thread unless the operator set it."""

from __future__ import annotations

import os

import pytest

from candor.faces.extraction import _one_blas_thread_per_worker


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
