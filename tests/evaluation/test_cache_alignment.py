"""An evaluation cache entry of an ONNX model names the points its chip was cut on.

Issue 16's note, item 2: the cache's key held the model key but not the alignment, so
entries cut on the eye centres (before issue 16) or on an earlier nose point were read as
today's. dlib's entries keep their key: its alignment is its own and never changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import candor.faces.onnx_models as onnx_models
from candor.evaluation.cache import TemplateCache, _template_context
from candor.faces import EngineSettings
from candor.faces.onnx_models import OnnxModelSpec


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of this test's own: the cache's key starts absent."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


def _onnx_settings(tmp_path: Path) -> EngineSettings:
    spec = OnnxModelSpec(name="tiny", version="1", path=tmp_path / "a.onnx", sha256="ab" * 32)
    return EngineSettings(embedder_model=spec)


def _unversioned(settings: EngineSettings, model_key: str) -> str:
    """The context key every entry had before the alignment was part of it."""
    parts = [model_key, settings.key, _template_context("plain"), settings.quality.key]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def test_an_onnx_models_entries_are_keyed_by_its_alignments_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _onnx_settings(tmp_path)
    today = TemplateCache(tmp_path / "cache", settings, "tiny/1/abab", "plain")
    assert today._context_key != _unversioned(settings, "tiny/1/abab")
    # The same name and model key with other points (an edit that forgot to rename).
    moved = onnx_models.Alignment(112, "combined", (55.963, 76.5))
    monkeypatch.setitem(onnx_models.ALIGNMENTS, "arcface-112", moved)
    edited = TemplateCache(tmp_path / "cache", settings, "tiny/1/abab", "plain")
    assert edited._context_key != today._context_key


def test_dlibs_entries_keep_their_key(tmp_path: Path) -> None:
    settings = EngineSettings()
    cache = TemplateCache(tmp_path / "cache", settings, "dlib/x/y", "plain")
    assert cache._context_key == _unversioned(settings, "dlib/x/y")
