"""Encoding pixels Candor made itself (face crops) into files; Pillow does the work."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An (H, W, 3) uint8 RGB array as PNG file bytes (lossless; no metadata)."""
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB pixels, got shape {array.shape}")
    buffer = io.BytesIO()
    # zlib level 1: 1.6 ms for a 150 x 150 face chip against 4.5 at the default level 6,
    # for files 8 % larger; it was 7 % of a photo's enrolment CPU (docs/performance.md).
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
