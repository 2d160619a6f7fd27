"""The index folder holds templates: owner-only, like every other part of the workspace."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from candor.index import GalleryIndex
from tests.index.test_gallery_index import KEY, MODEL, clustered


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_index_folder_its_parents_and_files_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir(mode=0o700)
    folder = home / "index" / "synthetic_1"
    index = GalleryIndex(MODEL, folder, key=KEY, approximate_from=4)
    index.add(list(range(1, 9)), clustered(8))  # past approximate_from: codes, centre, planes
    index.flush()
    assert mode_of(home / "index") == 0o700
    assert mode_of(folder) == 0o700
    names = sorted(path.name for path in folder.iterdir())
    assert {"meta.json", "vectors.sealed", "centre.sealed"} <= set(names)
    assert {name: mode_of(folder / name) for name in names} == dict.fromkeys(names, 0o600)
    del index


def test_a_reopened_index_rewrites_meta_json_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "index" / "synthetic_1"
    index = GalleryIndex(MODEL, folder, key=KEY)
    index.add([1], clustered(1))
    index.flush()
    del index
    (folder / "meta.json").chmod(0o644)  # as made by an earlier release
    reopened = GalleryIndex.open(folder, MODEL, key=KEY)
    reopened.add([2], np.ones((1, MODEL.dimension), dtype=np.float32))
    reopened.flush()
    assert mode_of(folder / "meta.json") == 0o600
    del reopened
