"""A whole photo with a face's box drawn on it, for a person to judge a comparison.

Review shows the probe and the gallery photo whole, not as crops: a crop hides the
context (lighting, angle, what else is in the frame) an examiner weighs, and a box shows
which face the search used. The picture is scaled down to `MAX_SIDE` (enough to judge
on a screen, small enough to send inline with the page) and sent as JPEG.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

# The longest side of an annotated photo, in pixels.
MAX_SIDE = 1024
# The box: a light line on a dark one, visible on pale and dark skin and backgrounds alike.
_LIGHT = (255, 214, 0)
_DARK = (0, 0, 0)
_JPEG_QUALITY = 85


def photo_with_box(
    pixels: npt.NDArray[np.uint8],
    box: tuple[int, int, int, int] | None,
    *,
    max_side: int = MAX_SIDE,
) -> bytes:
    """JPEG bytes of the (height, width, 3) RGB photo, scaled to fit `max_side`, with `box`
    (left, top, right, bottom, in the photo's pixels) drawn; no box drawn when None.

    The box is clipped to the photo (a detector may place it partly outside).
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"an RGB photo is (height, width, 3), not {pixels.shape}")
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    picture = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    width, height = picture.size
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    if box is not None:
        _draw_box(picture, box, scale)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def _draw_box(picture: Image.Image, box: tuple[int, int, int, int], scale: float) -> None:
    width, height = picture.size
    left, top, right, bottom = (round(value * scale) for value in box)
    left, right = max(0, min(left, width - 1)), max(0, min(right, width - 1))
    top, bottom = max(0, min(top, height - 1)), max(0, min(bottom, height - 1))
    if right <= left or bottom <= top:
        return  # nothing of the box lies in the photo
    line = max(2, max(width, height) // 250)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((left, top, right, bottom), outline=_DARK, width=line + 2)
    inset = 1
    draw.rectangle(
        (left + inset, top + inset, right - inset, bottom - inset), outline=_LIGHT, width=line
    )


__all__ = ["MAX_SIDE", "photo_with_box"]
