"""Per-photo extraction results cached on disk, for test and evaluation data only.

A result is keyed by (image sha256, model id, detector settings, the view set that makes
the template), so changing any of them misses the cache instead of reusing stale
templates. The cache lives under `CANDOR_CACHE` (default: the user cache folder), never
beside the photos, which may be read-only. Operational templates never pass through here.

Photos are extracted with the quality gate open (`OPEN_GATE`), so the cache holds the
chosen face's measures and template whatever the limits; each run then judges the cached
measures with its own limits through `judge_quality`, the function the gate itself uses.
The outcome is the one `extract_faces` gives with those limits, and a sweep over quality
limits costs no extraction.

Entries are filed by photo (photos/ab/<sha256>/<context>.sealed), so that everything
cached of one photo can be erased at once (`drop_photos`). An expungement in any workspace
drops the photo from every cache folder this user's Candor has used (they are listed
beside the key, `registered_cache_dirs`), not only from the one its own process would use:
an evaluation run with another CANDOR_CACHE must not keep the expunged face's template.

Each entry is sealed (AES-256-GCM, `candor.sealing`) under the cache's own key, a key file
(0600) in the user's config folder made on first use, with the context
"evaluation:<sha256>:<context key>". The cache is scratch space: a key that is lost,
replaced or unreadable costs only the entries (each folder records the fingerprint of
the key its entries are sealed under, and is emptied when the key changes), never an
error for the user. Entries an older Candor wrote in the clear (<context>.json, and the
unfiled templates/ folder) are erased when a folder is first opened with a key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import platformdirs

from candor.faces import EngineSettings, FaceEngine, QualityReport, QualityThresholds
from candor.faces.extraction import (
    FaceExtraction,
    extract_faces,
    no_face_refusal,
    quality_refusal,
)
from candor.faces.onnx_models import alignment_key
from candor.faces.quality import OPEN_GATE, judge_quality
from candor.faces.recipe import Views
from candor.sealing import (
    KeyFileError,
    UndecryptableError,
    create_key_file,
    key_fingerprint,
    open_sealed,
    read_key_file,
    seal,
)

_FORMAT = 3
_PHOTOS = "photos"
_ENTRY_SUFFIX = ".sealed"
# What an older Candor wrote in the clear (format 2): a miss, and erased.
_PLAIN_SUFFIX = ".json"
# In each cache folder: the fingerprint of the key its entries are sealed under.
_KEY_MARK = "sealed-with"
# In the user's config folder: the cache's key, and the cache folders used with it.
KEY_FILE_NAME = "evaluation-cache.key"
REGISTRY_NAME = "evaluation-caches"
# Before entries were filed by photo, their names hashed the photo with the settings
# together; such a folder cannot be searched by photo.
_UNFILED = "templates"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PUT_ATTEMPTS = 3


def default_cache_dir() -> Path:
    """`CANDOR_CACHE` if set, else platformdirs' user cache folder for "candor"."""
    configured = os.environ.get("CANDOR_CACHE")
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("candor"))


def config_dir() -> Path:
    """The user's config folder for "candor", where the cache's key and registry live."""
    return platformdirs.user_config_path("candor")


def cache_key_path() -> Path:
    """The evaluation cache's key file."""
    return config_dir() / KEY_FILE_NAME


def _cache_key() -> bytes | None:
    """The cache's key, made on first use; None when no key can be read or made here.

    A key file that does not hold a key, or that others may read, is replaced: it only
    guards a cache, and a key others could read guards nothing. A new key is written
    beside the final name and linked into place, so a reader never sees half a key file.
    """
    path = cache_key_path()
    for _attempt in range(_PUT_ATTEMPTS):
        try:
            return read_key_file(path, "evaluation cache key")
        except KeyFileError:
            if path.exists() or path.is_symlink():
                with contextlib.suppress(OSError):
                    _erase_file(path)
        spare = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            key = create_key_file(spare)
        except KeyFileError:
            return None  # no config folder can be written here: cache nothing
        try:
            os.link(spare, path)
            return key
        except FileExistsError:
            continue  # another process made one meanwhile: read theirs
        except OSError:
            return None
        finally:
            spare.unlink(missing_ok=True)
    return None


def _registry_path() -> Path:
    return config_dir() / REGISTRY_NAME


def registered_cache_dirs() -> list[Path]:
    """Every cache folder this user's Candor has sealed entries in (existing or not)."""
    try:
        text = _registry_path().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [Path(line) for line in dict.fromkeys(text.splitlines()) if line.strip()]


def _register(root: Path) -> None:
    """List `root` in the user's registry, so that expungements drop from it too."""
    folder = str(root.resolve())
    if "\n" in folder or Path(folder) in registered_cache_dirs():
        return
    try:
        fd = os.open(_registry_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return
    try:
        # One short write with O_APPEND: concurrent registrations do not interleave.
        os.write(fd, (folder + "\n").encode("utf-8"))
    finally:
        os.close(fd)


@dataclass(frozen=True, eq=False)
class PhotoOutcome:
    """The part of a FaceExtraction the harness needs, small enough to cache.

    faces_found: faces detected. chosen: choose_face's index (None without faces).
    quality: of the chosen face. vector: raw template of the chosen face, only when it
    passed the gate. refusal: why there is no template. cached: read from the cache.
    """

    path: Path
    sha256: str | None
    faces_found: int
    chosen: int | None
    quality: QualityReport | None
    vector: npt.NDArray[np.float32] | None
    refusal: str | None
    cached: bool = False

    @property
    def usable(self) -> bool:
        """True when the photo gave a template."""
        return self.vector is not None


def _open_outcome(extraction: FaceExtraction) -> PhotoOutcome:
    """An open-gate extraction as an outcome: the chosen face's template is always there."""
    quality = None
    if extraction.chosen is not None:
        quality = extraction.faces[extraction.chosen].quality
    vector = None if extraction.template is None else extraction.template.vector
    return PhotoOutcome(
        path=extraction.path,
        sha256=extraction.sha256,
        faces_found=len(extraction.faces),
        chosen=extraction.chosen,
        quality=quality,
        vector=vector,
        refusal=extraction.refusal,
    )


def _gated(outcome: PhotoOutcome, thresholds: QualityThresholds) -> PhotoOutcome:
    """An open-gate outcome as the gate with `thresholds` would have left it."""
    if outcome.quality is None:
        if outcome.sha256 is not None and outcome.faces_found == 0:
            return replace(outcome, refusal=no_face_refusal(outcome.path))
        return outcome
    quality = judge_quality(outcome.quality, thresholds)
    if quality.passed:
        return replace(outcome, quality=quality, refusal=None)
    return replace(
        outcome,
        quality=quality,
        vector=None,
        refusal=quality_refusal(outcome.path, quality.reasons),
    )


def _entry_of(outcome: PhotoOutcome) -> dict[str, Any]:
    quality = outcome.quality
    return {
        "format": _FORMAT,
        "faces_found": outcome.faces_found,
        "chosen": outcome.chosen,
        "quality": None
        if quality is None
        else {
            "eye_distance_px": quality.eye_distance_px,
            "sharpness": quality.sharpness,
            "yaw_degrees": quality.yaw_degrees,
            "roll_degrees": quality.roll_degrees,
            "detector_confidence": quality.detector_confidence,
        },
        # float32 -> float -> float32 is exact, so JSON keeps the template bit for bit.
        "vector": None if outcome.vector is None else [float(x) for x in outcome.vector],
    }


def _outcome_from_entry(path: Path, sha256: str, entry: dict[str, Any]) -> PhotoOutcome:
    raw_quality = entry["quality"]
    quality = (
        None
        if raw_quality is None
        else QualityReport(
            eye_distance_px=float(raw_quality["eye_distance_px"]),
            sharpness=float(raw_quality["sharpness"]),
            yaw_degrees=float(raw_quality["yaw_degrees"]),
            roll_degrees=float(raw_quality["roll_degrees"]),
            detector_confidence=float(raw_quality["detector_confidence"]),
            reasons=(),
        )
    )
    raw_vector = entry["vector"]
    vector = None if raw_vector is None else np.asarray(raw_vector, dtype=np.float32)
    return PhotoOutcome(
        path=path,
        sha256=sha256,
        faces_found=int(entry["faces_found"]),
        chosen=None if entry["chosen"] is None else int(entry["chosen"]),
        quality=quality,
        vector=vector,
        refusal=None,
        cached=True,
    )


def _template_context(views: Views) -> str:
    # One plain view is what the foundation's templates were; its old key keeps the
    # caches made before view sets existed valid (the templates are bit for bit the same).
    return "choose_face-v1/jitter=0" if views == "plain" else f"choose_face-v1/views={views}"


class TemplateCache:
    """A folder of sealed JSON entries, one per (photo, model, detector settings, view set).

    Without a key (no config folder can be written) it holds nothing: every get misses
    and every put is dropped, so evaluation runs uncached rather than in the clear.
    """

    def __init__(
        self, root: Path, settings: EngineSettings, model_key: str, views: Views = "plain"
    ) -> None:
        self.root = root
        parts = [model_key, settings.key, _template_context(views), settings.quality.key]
        if settings.embedder_model is not None:
            # The points an ONNX model's chips are cut on: entries made before the alignment
            # was named (eye centres, or an earlier nose base) are not read as today's.
            parts.append(alignment_key(settings.embedder_model.alignment))
        context = "\n".join(parts)
        self._context_key = hashlib.sha256(context.encode()).hexdigest()
        self._key = _cache_key()
        if self._key is not None:
            _open_folder(root, self._key)

    def _file(self, image_sha256: str) -> Path:
        return _photo_folder(self.root, image_sha256) / f"{self._context_key}{_ENTRY_SUFFIX}"

    def _context(self, image_sha256: str) -> str:
        return f"evaluation:{image_sha256}:{self._context_key}"

    def get(self, path: Path, image_sha256: str) -> PhotoOutcome | None:
        """The cached outcome for these bytes, or None (also for an unreadable entry).

        An entry that does not open under the key (damaged, or sealed under a lost key)
        and one an older Candor wrote in the clear are erased: they are misses for good.
        """
        target = self._file(image_sha256)
        plain = target.with_suffix(_PLAIN_SUFFIX)
        if plain.exists():
            _erase_file(plain)
        if self._key is None:
            return None
        try:
            blob = target.read_bytes()
        except OSError:
            return None
        try:
            entry = json.loads(open_sealed(self._key, blob, self._context(image_sha256)))
        except (UndecryptableError, ValueError):
            _erase_file(target)
            return None
        if not isinstance(entry, dict) or entry.get("format") != _FORMAT:
            return None
        try:
            return _outcome_from_entry(path, image_sha256, entry)
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, outcome: PhotoOutcome) -> None:
        """Store an outcome atomically (a concurrent reader sees the old file or the new)."""
        if outcome.sha256 is None or self._key is None:
            return
        target = self._file(outcome.sha256)
        sealed = seal(
            self._key,
            json.dumps(_entry_of(outcome)).encode("utf-8"),
            self._context(outcome.sha256),
        )
        for attempt in range(_PUT_ATTEMPTS):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            except FileNotFoundError:
                # drop_photos removed the photo's folder meanwhile: make it again.
                if attempt == _PUT_ATTEMPTS - 1:
                    raise
                continue
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(sealed)
                Path(temporary).replace(target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            return


def _photo_folder(root: Path, image_sha256: str) -> Path:
    if not _SHA256.fullmatch(image_sha256):
        raise ValueError("a photo's content address is 64 lower-case hex digits")
    return root / _PHOTOS / image_sha256[:2] / image_sha256


def _open_folder(root: Path, key: bytes) -> None:
    """Make `root` a folder of entries sealed under `key`.

    A folder first opened with a key may hold an older Candor's plaintext entries: they
    are erased. A folder sealed under another key (the key file was lost or replaced)
    holds nothing that opens any more: it is emptied.
    """
    fingerprint = key_fingerprint(key)
    mark = root / _KEY_MARK
    try:
        recorded: str | None = mark.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        recorded = None
    if recorded == fingerprint:
        _register(root)
        return
    photos = root / _PHOTOS
    if recorded is None:
        if photos.is_dir():
            for plain in photos.rglob(f"*{_PLAIN_SUFFIX}"):
                _erase_file(plain)
    elif photos.is_dir():
        _erase_tree(photos)
    unfiled = root / _UNFILED
    if unfiled.is_dir():
        _erase_tree(unfiled)
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=root, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="ascii") as stream:
            stream.write(fingerprint + "\n")
        Path(temporary).replace(mark)
    except OSError:
        return  # a read-only cache folder: its entries are still sealed
    _register(root)


def drop_photos(image_sha256s: Iterable[str], cache_dir: Path | None = None) -> int:
    """Erase everything cached of these photos, under every model and setting.

    cache_dir: that folder only; by default the default folder and every folder this
    user's Candor has cached in (`registered_cache_dirs`), so that an expungement reaches
    evaluations run with another CANDOR_CACHE.

    Entries made before the cache was filed by photo cannot be told apart, so when any
    remain they are all erased (they are only a cache). Files are overwritten with
    zeros before they are unlinked, as the vault does. Returns how many files went.
    """
    shas = list(image_sha256s)
    roots = (
        [cache_dir]
        if cache_dir is not None
        else list(dict.fromkeys([default_cache_dir().resolve(), *registered_cache_dirs()]))
    )
    erased = 0
    failure: OSError | None = None
    for root in roots:
        try:
            for image_sha256 in shas:
                folder = _photo_folder(root, image_sha256)
                if folder.is_dir():
                    erased += _erase_tree(folder)
            unfiled = root / _UNFILED
            if unfiled.is_dir():
                erased += _erase_tree(unfiled)
        except OSError as error:
            failure = failure or error  # the other folders are still erased
    if failure is not None:
        raise failure
    return erased


def _erase_tree(folder: Path) -> int:
    erased = 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):  # a concurrent put may have refilled it
                path.rmdir()
        else:
            _erase_file(path)
            erased += 1
    with contextlib.suppress(OSError):
        folder.rmdir()
    return erased


def _erase_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return
    except OSError:
        path.unlink(missing_ok=True)  # a link or a special file: only its name is ours
        return
    try:
        remaining = os.fstat(fd).st_size
        while remaining > 0:
            remaining -= os.write(fd, bytes(min(remaining, 1 << 16)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def extract_photos(
    paths: Sequence[Path],
    settings: EngineSettings | None = None,
    cache_dir: Path | None = None,
    *,
    views: Views = "plain",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[PhotoOutcome]:
    """Outcomes for `paths` in order, as `extract_faces` with `settings` and `views` gives them.

    Extraction runs with the gate open and cached results are reused (see the module
    docstring); the gate of `settings.quality` is applied last. Decoding failures are not
    cached (they are cheap, and a fixed decoder should see the file again).
    `progress(done, total)` is called as photos complete.
    """
    chosen_settings = settings or EngineSettings()
    open_settings = replace(chosen_settings, quality=OPEN_GATE)
    model_key = FaceEngine(open_settings).model.key
    cache = TemplateCache(cache_dir or default_cache_dir(), open_settings, model_key, views)
    outcomes: list[PhotoOutcome | None] = []
    missing: list[int] = []
    for index, path in enumerate(paths):
        digest = _file_sha256(path)
        found = None if digest is None else cache.get(path, digest)
        outcomes.append(found)
        if found is None:
            missing.append(index)
    total = len(paths)
    done = total - len(missing)
    if progress is not None:
        progress(done, total)
    fresh = extract_faces([paths[i] for i in missing], open_settings, workers=workers, views=views)
    for index, extraction in zip(missing, fresh, strict=True):
        outcome = _open_outcome(extraction)
        if extraction.error is None:
            cache.put(outcome)
        outcomes[index] = outcome
        done += 1
        if progress is not None:
            progress(done, total)
    return [_gated(outcome, chosen_settings.quality) for outcome in outcomes if outcome is not None]
