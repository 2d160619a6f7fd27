"""Pictures made for tests of size limits."""

from __future__ import annotations

import io

from PIL import Image


def flat_png(width: int, height: int) -> bytes:
    """A plain grey PNG declaring width x height pixels, yet only tens of kB long.

    Like the 143 kB PNG declaring 7000 x 7000 of issue 12 (fault 4): small on the wire,
    costly to detect faces in at full size.
    """
    buffer = io.BytesIO()
    Image.new("L", (width, height), 200).save(buffer, format="PNG")
    return buffer.getvalue()
