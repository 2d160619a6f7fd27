"""GalleryIndex under threads: searches beside adds and removals, replays and forgetting."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from candor.index import GalleryIndex
from tests.index.test_gallery_index import KEY, MODEL, clustered, opened_bytes


def test_an_add_replayed_with_the_same_vector_is_skipped_another_vector_refused() -> None:
    vectors = clustered(8)
    index = GalleryIndex(MODEL)
    index.add([1, 2], vectors[:2])
    index.add([2, 3], vectors[1:3])  # 2 again, as a catch-up racing an enrolment does
    assert sorted(index.ids.tolist()) == [1, 2, 3]
    with pytest.raises(ValueError, match="id 3 is already in the index"):
        index.add([3], vectors[5:6])


def test_a_forgotten_id_is_never_added_again(tmp_path: Path) -> None:
    vectors = clustered(8)
    index = GalleryIndex(MODEL, tmp_path / "idx", key=KEY)
    index.add([1, 2], vectors[:2])
    assert index.forget([2, 7]) == 1
    index.add([2, 4], vectors[1:3])  # read before the removal committed: 2 stays out
    assert sorted(index.ids.tolist()) == [1, 4]
    index.flush()
    assert vectors[1].astype(np.float32).tobytes() not in opened_bytes(tmp_path / "idx")


@pytest.mark.parametrize("approximate_from", [10**9, 2_000])
def test_searches_beside_adds_and_removals_see_whole_batches(
    tmp_path: Path, approximate_from: int
) -> None:
    # Batches of ten templates of one person each: a search sees a batch whole or not at
    # all, and never a template removed before it began.
    people, size = 400, 10
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((people, MODEL.dimension)).astype(np.float32)
    index = GalleryIndex(MODEL, tmp_path / "idx", key=KEY, approximate_from=approximate_from)
    index.add(range(1, size + 1), centres[0] + 0.01 * rng.standard_normal((size, MODEL.dimension)))
    removed: set[int] = set()
    failures: list[BaseException] = []
    done = threading.Event()

    def batch(person: int) -> range:
        return range(person * size + 1, person * size + size + 1)

    def writer() -> None:
        try:
            for person in range(1, people):
                noise = 0.01 * rng.standard_normal((size, MODEL.dimension))
                index.add(batch(person), centres[person] + noise)
                if person % 3 == 0:
                    index.remove(batch(person - 1))
                    removed.update(batch(person - 1))
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            done.set()

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            while not done.is_set():
                person = int(local.integers(1, people))
                gone = set(removed)
                hits = index.search(centres[person], size)
                ids = {template_id for template_id, _ in hits}
                assert not ids & gone, sorted(ids & gone)
                mine = ids & set(batch(person))
                assert len(mine) in (0, size) or len(hits) < size, (person, sorted(ids))
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    assert len(index) == people * size - len(removed)
