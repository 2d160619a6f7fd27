"""The probe cache is bounded by bytes, not by count (issue 15, item 6).

At the probe limits one probe holds about 105 MB of pixels and file bytes, so the 64
probes the cache used to keep could reach gigabytes. It now counts what each probe
holds and drops the least recently used until the total is within its bound.
"""

from __future__ import annotations

import hashlib

import numpy as np

from candor.faces import ModelId, Template
from candor.images import DecodedImage
from candor.workflow.context import ProbeCache, probe_bytes
from candor.workflow.limits import PROBE_CACHE_BYTES
from candor.workflow.probes import Probe, ProbeFace

MODEL = ModelId("test-model", "1", "0" * 64, 128)


def _probe(seed: int, side: int = 100) -> Probe:
    data = f"probe photo {seed}".encode() * 50
    sha256 = hashlib.sha256(data).hexdigest()
    image = DecodedImage(
        pixels=np.full((side, side, 3), seed % 256, dtype=np.uint8),
        sha256=sha256,
        format="PNG",
        data=data,
    )
    face = ProbeFace(sha256, 0, 1, (0, 0, side, side), {})
    return Probe(image, face, Template(np.ones(128, dtype=np.float32), MODEL))


def _put(cache: ProbeCache, probe: Probe) -> None:
    cache.put(probe.image.sha256, None, probe)


def _held(cache: ProbeCache, probe: Probe) -> bool:
    return cache.get(probe.image.sha256, None) is not None


def test_a_probe_counts_its_pixels_its_file_and_its_template() -> None:
    probe = _probe(1, side=200)
    counted = probe_bytes(probe)
    assert counted >= 200 * 200 * 3 + len(probe.image.data) + 128 * 4
    # A view keeps its whole base alive, and is counted so.
    base = np.zeros((400, 400, 3), dtype=np.uint8)
    view = DecodedImage(base[:10, :10], probe.image.sha256, "PNG", probe.image.data)
    assert probe_bytes(Probe(view, probe.face, probe.template)) >= base.nbytes


def test_filling_past_the_bound_evicts_the_oldest_and_stays_under_it() -> None:
    probes = [_probe(seed) for seed in range(8)]
    size = probe_bytes(probes[0])
    cache = ProbeCache(max_bytes=5 * size + size // 2)

    for probe in probes:
        _put(cache, probe)
        assert cache.nbytes <= cache.max_bytes

    assert len(cache) == 5
    assert cache.nbytes == sum(probe_bytes(probe) for probe in probes[3:])
    assert [_held(cache, probe) for probe in probes] == [False] * 3 + [True] * 5


def test_a_probe_used_again_is_kept_over_older_ones() -> None:
    probes = [_probe(seed) for seed in range(4)]
    cache = ProbeCache(max_bytes=3 * probe_bytes(probes[0]))
    for probe in probes[:3]:
        _put(cache, probe)
    assert _held(cache, probes[0])  # now the most recently used

    _put(cache, probes[3])

    assert [_held(cache, probe) for probe in probes] == [True, False, True, True]


def test_putting_the_same_probe_again_does_not_count_it_twice() -> None:
    probe = _probe(1)
    cache = ProbeCache(max_bytes=10 * probe_bytes(probe))
    _put(cache, probe)
    _put(cache, probe)
    assert (len(cache), cache.nbytes) == (1, probe_bytes(probe))


def test_a_probe_larger_than_the_bound_is_not_kept_and_evicts_nothing() -> None:
    small, large = _probe(1), _probe(2, side=400)
    cache = ProbeCache(max_bytes=2 * probe_bytes(small))
    _put(cache, small)

    _put(cache, large)

    assert not _held(cache, large)
    assert _held(cache, small)
    assert cache.nbytes == probe_bytes(small)


def test_the_default_bound_is_the_named_limit() -> None:
    assert ProbeCache().max_bytes == PROBE_CACHE_BYTES
