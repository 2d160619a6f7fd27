from __future__ import annotations

import numpy as np

from candor.images import decode_image, encode_png


def test_png_round_trips_through_the_safe_decoder() -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(40, 33, 3), dtype=np.uint8)
    decoded = decode_image(encode_png(pixels), name="chip.png")
    assert decoded.format == "PNG"
    np.testing.assert_array_equal(decoded.pixels, pixels)
