from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from candor.faces import ModelId, ModelMismatchError, dlib_resnet_model_id
from candor.faces.registry import (
    dlib_model_files,
    file_sha256,
    require_same_model,
    weights_digest,
)


def test_key_is_name_version_and_short_digest() -> None:
    model = ModelId("dlib-resnet-v1", "1", "0123456789abcdef" + "0" * 48, 128)
    assert model.key == "dlib-resnet-v1/1/0123456789abcdef"


def test_file_digest_matches_hashlib_and_follows_changes(tmp_path: Path) -> None:
    weights = tmp_path / "w.dat"
    weights.write_bytes(b"first")
    assert file_sha256(weights) == hashlib.sha256(b"first").hexdigest()
    weights.write_bytes(b"second version")
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_sha256(weights) == hashlib.sha256(b"second version").hexdigest()


def test_digest_of_several_files_is_a_sha256sum_listing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dat", tmp_path / "b.dat"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    listing = (
        f"{hashlib.sha256(b'A').hexdigest()}  a.dat\n{hashlib.sha256(b'B').hexdigest()}  b.dat\n"
    )
    assert weights_digest([a, b]) == hashlib.sha256(listing.encode()).hexdigest()
    assert weights_digest([a]) == hashlib.sha256(b"A").hexdigest()
    with pytest.raises(ValueError):
        weights_digest([])


def test_dlib_model_is_pinned_to_resnet_and_landmark_weights() -> None:
    files = dlib_model_files()
    model = dlib_resnet_model_id()
    assert (model.name, model.version, model.dimension) == ("dlib-resnet-v1", "1", 128)
    assert model.weights_sha256 == weights_digest([files.resnet, files.landmarks_5])
    assert model == dlib_resnet_model_id()


def test_same_model_passes_and_other_model_raises() -> None:
    model = dlib_resnet_model_id()
    require_same_model(model, ModelId(model.name, model.version, model.weights_sha256, 128))
    changed = ModelId(model.name, model.version, "f" * 64, 128)
    with pytest.raises(ModelMismatchError, match="re-enrol"):
        require_same_model(model, changed)
