"""A probe photo has its own, lower pixel limit, refused from the header with a sentence.

Issue 12, fault 4: a 143 kB PNG declaring 7000 x 7000 (under the general 50-megapixel
cap) held the server for minutes. A probe is decoded while the server's workflow waits
for it, so its limit is `PROBE_LIMITS`; gallery and evaluation photos keep theirs.
"""

from __future__ import annotations

import pytest

from candor.images import PROBE_LIMITS, ImageLimits, ImageTooLargeError, decode_image
from tests.images.pictures import flat_png


@pytest.fixture(scope="module")
def huge() -> bytes:
    data = flat_png(7000, 7000)
    assert len(data) < 150_000
    return data


def test_a_probe_declaring_7000_by_7000_is_refused_saying_what_and_the_limit(
    huge: bytes,
) -> None:
    with pytest.raises(ImageTooLargeError) as refused:
        decode_image(huge, name="probe.png", limits=PROBE_LIMITS)
    assert str(refused.value) == (
        "probe.png: the picture declares 7000 x 7000 pixels (49.0 megapixels), over the "
        "limit of 25.0 megapixels for a probe photo; it was refused unread (a copy scaled "
        "down or cropped to at most that can be used)."
    )


def test_the_probe_limit_passes_the_usual_camera_sizes() -> None:
    assert PROBE_LIMITS.max_pixels >= 6000 * 4000  # a 24-megapixel camera
    assert PROBE_LIMITS.max_pixels < 7000 * 7000
    assert PROBE_LIMITS.max_pixels < ImageLimits().max_pixels
    assert PROBE_LIMITS.max_bytes == ImageLimits().max_bytes
    decode_image(flat_png(4000, 3000), name="phone.png", limits=PROBE_LIMITS)


def test_the_general_limit_still_speaks_of_a_decompression_bomb() -> None:
    with pytest.raises(ImageTooLargeError, match=r"2000 x 2000 pixels .*decompression bomb"):
        decode_image(flat_png(2000, 2000), limits=ImageLimits(max_pixels=1_000_000))
    with pytest.raises(ImageTooLargeError, match=r"over the limit of 1\.0 megapixels for a scan"):
        decode_image(
            flat_png(2000, 2000), limits=ImageLimits(max_pixels=1_000_000, applies_to="a scan")
        )
