"""photo_with_box: the whole photo, scaled to fit, with the face's box drawn."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from candor.images.annotate import photo_with_box


def _decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "JPEG"
        return np.asarray(picture.convert("RGB"), dtype=np.int16)


def test_the_box_is_drawn_on_the_whole_photo() -> None:
    grey = np.full((300, 400, 3), 128, dtype=np.uint8)
    out = _decoded(photo_with_box(grey, (100, 50, 200, 150)))
    assert out.shape == (300, 400, 3)  # whole, not a crop
    # The box's edge differs from the grey photo; its middle and far corner do not.
    assert np.abs(out[50:54, 150] - 128).max() > 60
    assert np.abs(out[100, 150] - 128).max() < 12
    assert np.abs(out[280, 380] - 128).max() < 12


def test_a_large_photo_is_scaled_to_fit_and_the_box_with_it() -> None:
    grey = np.full((1000, 3000, 3), 128, dtype=np.uint8)
    out = _decoded(photo_with_box(grey, (1500, 300, 2100, 900), max_side=600))
    assert out.shape == (200, 600, 3)
    assert np.abs(out[60:64, 360] - 128).max() > 60  # top edge at 300 / 5


def test_no_box_and_a_box_outside_the_photo_draw_nothing() -> None:
    grey = np.full((100, 100, 3), 128, dtype=np.uint8)
    for box in (None, (200, 200, 300, 300)):
        assert np.abs(_decoded(photo_with_box(grey, box)) - 128).max() < 12


def test_not_an_rgb_photo_is_refused() -> None:
    with pytest.raises(ValueError, match="height, width, 3"):
        photo_with_box(np.zeros((10, 10), dtype=np.uint8), None)
