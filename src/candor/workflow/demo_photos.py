"""Photos made from two public-domain portraits that installed packages carry.

NASA's photo of astronaut Eileen Collins (scikit-image) and the US Navy's portrait of
Grace Hopper (matplotlib): the demo enrols them and searches with variants of them, and
a simulation uses more variants as its probes. Nothing comes from the network. Two
people show mechanics, never accuracy.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

COLLINS = ("skimage", "data/astronaut.png")
HOPPER = ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
# Crops around each face alone: the Collins portrait shows a second, false "face" on her
# suit, which a probe must leave out so that it shows one face.
COLLINS_FACE = (100, 0, 400, 300)
HOPPER_FACE = (60, 40, 460, 480)


def packaged_portrait(package: str, resource: str) -> Image.Image:
    """A portrait file shipped inside an installed package, as RGB."""
    data = files(package).joinpath(resource).read_bytes()
    return Image.open(io.BytesIO(data)).convert("RGB")


def portraits() -> tuple[Image.Image, Image.Image]:
    """The Collins and Hopper portraits, whole."""
    return packaged_portrait(*COLLINS), packaged_portrait(*HOPPER)


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """Two pictures on one canvas, 40 px apart: a photo of two people."""
    canvas = Image.new("RGB", (left.width + right.width + 40, max(left.height, right.height)))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 40, 0))
    return canvas


def demo_variants() -> dict[str, Image.Image]:
    """The demo's photos: both portraits, a probe of each, a blurred one, two people."""
    collins, hopper = portraits()
    return {
        "collins.png": collins,
        "hopper.jpg": hopper,
        # Tighter crop, smaller and brighter: a different photo of the same face.
        "collins-probe.jpg": ImageEnhance.Brightness(
            collins.crop(COLLINS_FACE).resize((240, 240))
        ).enhance(1.3),
        # Darker, cropped and slightly soft.
        "hopper-probe.jpg": ImageEnhance.Brightness(hopper.crop(HOPPER_FACE))
        .enhance(0.7)
        .filter(ImageFilter.GaussianBlur(1)),
        # Too blurred for the quality gate.
        "hopper-blurred.png": hopper.filter(ImageFilter.GaussianBlur(6)),
        "two-people.jpg": side_by_side(
            collins.crop(COLLINS_FACE), hopper.crop(HOPPER_FACE).resize((300, 330))
        ),
    }


def probe_variants(count: int, *, seed: int = 0) -> dict[str, Image.Image]:
    """`count` distinct probe photos, alternating Collins and Hopper: each a shifted crop
    around the face, rescaled, with its own exposure and, for some, a little blur.

    The same seed gives the same pictures. Names say whose face it is
    (collins-NN.jpg, hopper-NN.jpg).
    """
    if count < 1:
        raise ValueError(f"ask for at least one probe photo, not {count}")
    rng = np.random.default_rng(seed)
    collins, hopper = portraits()
    sources = (("collins", collins, COLLINS_FACE), ("hopper", hopper, HOPPER_FACE))
    variants: dict[str, Image.Image] = {}
    for number in range(count):
        name, portrait, (left, top, right, bottom) = sources[number % 2]
        # Shifts of a tenth of the crop keep the whole face in and the suit's "face" out.
        margin = (right - left) // 10
        shifts = [int(shift) for shift in rng.integers(-margin, margin + 1, size=4)]
        box = (
            max(0, left + shifts[0]),
            max(0, top + shifts[1]),
            min(portrait.width, right + shifts[2]),
            min(portrait.height, bottom + shifts[3]),
        )
        scale = float(rng.uniform(0.7, 1.2))
        picture = portrait.crop(box)
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)),
            Image.Resampling.LANCZOS,
        )
        picture = ImageEnhance.Brightness(picture).enhance(float(rng.uniform(0.75, 1.25)))
        picture = ImageEnhance.Contrast(picture).enhance(float(rng.uniform(0.85, 1.15)))
        if rng.random() < 0.3:
            picture = picture.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.0))))
        variants[f"{name}-{number:02d}.jpg"] = picture
    return variants


def save_photos(pictures: Mapping[str, Image.Image], folder: Path) -> dict[str, Path]:
    """Write each picture to `folder` under its name (JPEG at quality 92 for .jpg)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, picture in pictures.items():
        path = folder / name
        if name.endswith(".jpg"):
            picture.save(path, quality=92)
        else:
            picture.save(path)
        paths[name] = path
    return paths
