"""The evaluation cache seals its entries under a key of its own (issue 15, item 1).

No file of the cache holds a template in the clear; the key is an owner-only file in the
user's config folder, made on first use; a lost or exposed key costs the entries, never
an error; an older Candor's plaintext entries are misses and are erased; and a photo
dropped on expungement goes from every cache folder this user's Candor has used.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest

from candor.evaluation.cache import (
    PhotoOutcome,
    TemplateCache,
    cache_key_path,
    drop_photos,
    registered_cache_dirs,
)
from candor.faces import EngineSettings
from candor.sealing import is_sealed

PHOTO = hashlib.sha256(b"a photo evaluated").hexdigest()
OTHER = hashlib.sha256(b"another photo").hexdigest()


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of this test's own: the key and the registry start absent."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


def _outcome(sha256: str, seed: int = 1) -> PhotoOutcome:
    return PhotoOutcome(
        path=Path("photo.jpg"),
        sha256=sha256,
        faces_found=1,
        chosen=0,
        quality=None,
        vector=np.random.default_rng(seed).standard_normal(128).astype(np.float32),
        refusal=None,
    )


def _cache(root: Path) -> TemplateCache:
    return TemplateCache(root, EngineSettings(), "model-a", "plain")


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_an_entry_is_sealed_and_reads_back_bit_for_bit(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    outcome = _outcome(PHOTO)
    assert outcome.vector is not None
    _cache(root).put(outcome)

    entries = [path for path in _files(root) if PHOTO in str(path)]
    assert len(entries) == 1
    blob = entries[0].read_bytes()
    assert is_sealed(blob)
    for path in _files(root):
        data = path.read_bytes()
        assert outcome.vector.tobytes() not in data
        assert repr(float(outcome.vector[0])).encode() not in data
    key = cache_key_path()
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600

    found = _cache(root).get(Path("photo.jpg"), PHOTO)
    assert found is not None and found.cached and found.vector is not None
    assert found.vector.tobytes() == outcome.vector.tobytes()


def test_an_entry_moved_to_another_photo_does_not_open(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = _cache(root)
    cache.put(_outcome(PHOTO))
    cache.put(_outcome(OTHER, 2))
    [mine] = [path for path in _files(root) if PHOTO in str(path)]
    [theirs] = [path for path in _files(root) if OTHER in str(path)]
    theirs.write_bytes(mine.read_bytes())

    assert cache.get(Path("x.jpg"), OTHER) is None
    assert not theirs.exists()  # a miss for good: erased
    assert cache.get(Path("x.jpg"), PHOTO) is not None


def test_an_older_candors_plaintext_entries_are_misses_and_are_erased(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = _cache(root)
    cache.put(_outcome(PHOTO))
    [sealed] = [path for path in _files(root) if PHOTO in str(path)]
    # Format 2 wrote the entry as JSON with the template's floats, beside where the
    # sealed entry goes.
    plain = sealed.with_suffix(".json")
    vector = [0.25] * 128
    entry = {"format": 2, "faces_found": 1, "chosen": 0, "quality": None, "vector": vector}
    plain.write_text(json.dumps(entry))
    sealed.unlink()

    assert cache.get(Path("x.jpg"), PHOTO) is None
    assert not plain.exists()


def test_a_folder_an_older_candor_filled_is_swept_when_first_opened(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    folder = root / "photos" / PHOTO[:2] / PHOTO
    folder.mkdir(parents=True)
    (folder / ("c" * 64 + ".json")).write_text('{"format": 2, "vector": [0.5]}')
    unfiled = root / "templates" / "ab"
    unfiled.mkdir(parents=True)
    (unfiled / ("ab" + "0" * 62 + ".json")).write_text('{"vector": [0.25, 0.5]}')

    _cache(root)

    assert not list(root.rglob("*.json"))
    assert not (root / "templates").exists()


def test_a_lost_key_costs_the_entries_not_an_error(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    _cache(root).put(_outcome(PHOTO))
    cache_key_path().unlink()

    cache = _cache(root)  # a new key is made; the old entries can no longer open

    assert cache.get(Path("x.jpg"), PHOTO) is None
    assert not [path for path in _files(root) if PHOTO in str(path)]
    cache.put(_outcome(PHOTO))
    assert _cache(root).get(Path("x.jpg"), PHOTO) is not None


def test_a_key_file_others_may_read_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    _cache(root).put(_outcome(PHOTO))
    key = cache_key_path()
    old = key.read_bytes()
    key.chmod(0o644)

    cache = _cache(root)

    assert key.read_bytes() != old
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cache.get(Path("x.jpg"), PHOTO) is None


def test_without_a_writable_config_folder_nothing_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    root = tmp_path / "cache"
    cache = _cache(root)
    cache.put(_outcome(PHOTO))
    assert cache.get(Path("x.jpg"), PHOTO) is None
    assert not root.exists() or not [path for path in _files(root) if PHOTO in str(path)]


def test_dropping_a_photo_reaches_every_cache_folder_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An evaluation ran with CANDOR_CACHE=first; the expungement runs with another.
    first, second = tmp_path / "first", tmp_path / "second"
    _cache(first).put(_outcome(PHOTO))
    _cache(first).put(_outcome(OTHER, 2))
    _cache(second).put(_outcome(PHOTO, 3))
    monkeypatch.setenv("CANDOR_CACHE", str(tmp_path / "elsewhere"))
    assert {first.resolve(), second.resolve()} <= set(registered_cache_dirs())

    assert drop_photos([PHOTO]) == 2

    assert _cache(first).get(Path("x.jpg"), PHOTO) is None
    assert _cache(second).get(Path("x.jpg"), PHOTO) is None
    assert _cache(first).get(Path("x.jpg"), OTHER) is not None
    # A folder registered once and since removed is no error.
    for path in sorted(second.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    second.rmdir()
    assert drop_photos([OTHER]) == 1
