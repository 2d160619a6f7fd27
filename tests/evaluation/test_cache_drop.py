"""The evaluation cache forgets a photo on request: an expungement must not leave its template.

Issue 12, fault 8: an expunged person's templates stayed in the evaluation cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from candor.evaluation.cache import PhotoOutcome, TemplateCache, drop_photos
from candor.faces import EngineSettings

KEPT = hashlib.sha256(b"a photo that stays").hexdigest()
DROPPED = hashlib.sha256(b"a photo of someone expunged").hexdigest()


def _outcome(sha256: str, seed: int) -> PhotoOutcome:
    return PhotoOutcome(
        path=Path(f"{seed}.jpg"),
        sha256=sha256,
        faces_found=1,
        chosen=0,
        quality=None,
        vector=np.random.default_rng(seed).standard_normal(128).astype(np.float32),
        refusal=None,
    )


def _caches(root: Path) -> list[TemplateCache]:
    settings = EngineSettings()
    return [
        TemplateCache(root, settings, "model-a", "plain"),
        TemplateCache(root, settings, "model-b", "flip"),
    ]


def test_dropping_a_photo_erases_its_entries_under_every_model_and_setting(
    tmp_path: Path,
) -> None:
    caches = _caches(tmp_path)
    for seed, cache in enumerate(caches):
        cache.put(_outcome(KEPT, seed))
        cache.put(_outcome(DROPPED, seed + 10))
    assert all(cache.get(Path("x.jpg"), DROPPED) is not None for cache in caches)

    assert drop_photos([DROPPED], tmp_path) == 2

    for cache in caches:
        assert cache.get(Path("x.jpg"), DROPPED) is None
        kept = cache.get(Path("x.jpg"), KEPT)
        assert kept is not None and kept.vector is not None
    leftovers = [p for p in tmp_path.rglob("*") if DROPPED in p.name]
    assert leftovers == []
    # Dropping what is not cached is no error.
    assert drop_photos([DROPPED], tmp_path) == 0


def test_entries_made_before_the_cache_was_filed_by_photo_are_dropped_whole(
    tmp_path: Path,
) -> None:
    # The old layout named files by a hash of photo and settings together: they cannot
    # be told apart, and one of them may hold the expunged photo's template.
    unfiled = tmp_path / "templates" / "ab"
    unfiled.mkdir(parents=True)
    (unfiled / ("ab" + "0" * 62 + ".json")).write_text('{"vector": [0.25, 0.5]}')
    drop_photos([DROPPED], tmp_path)
    assert not (tmp_path / "templates").exists()


def test_the_default_cache_folder_is_the_one_dropped_from(
    tmp_path: Path, isolated_cache: Path
) -> None:
    cache = _caches(isolated_cache)[0]
    cache.put(_outcome(DROPPED, 1))
    drop_photos([DROPPED])
    assert cache.get(Path("x.jpg"), DROPPED) is None
