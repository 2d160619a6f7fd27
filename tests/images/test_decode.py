"""Decoding untrusted image bytes: formats, limits, damage, orientation and colour modes."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from candor.images import (
    CorruptImageError,
    DecodedImage,
    ImageError,
    ImageLimits,
    ImageTooLargeError,
    ImageTooSmallError,
    TruncatedImageError,
    UnreadableImageError,
    UnsupportedFormatError,
    decode_image,
    load_image,
)
from candor.images.decode import _to_rgb

RED = (220, 20, 30)
BLUE = (20, 40, 200)


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def noise(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + payload)
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG built by hand, so a test controls every header field and sample value."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def sixteen_bit_rows(samples: np.ndarray) -> bytes:
    """Filter-type-0 scanlines of big-endian 16-bit samples, shape (H, W) or (H, W, C)."""
    big_endian = samples.astype(">u2")
    return b"".join(b"\x00" + row.tobytes() for row in big_endian)


# --- accepted formats ------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_rgb_uint8(image_format: str) -> None:
    pixels = noise()
    data = encode(Image.fromarray(pixels), image_format, quality=95)

    decoded = decode_image(data, name="probe")

    assert isinstance(decoded, DecodedImage)
    assert decoded.format == image_format
    assert decoded.pixels.shape == (48, 64, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.flags["C_CONTIGUOUS"]
    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.data == data
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()


def test_png_pixels_are_exact() -> None:
    pixels = noise(seed=3)
    decoded = decode_image(encode(Image.fromarray(pixels), "PNG"))
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_lossless_webp_pixels_are_exact() -> None:
    pixels = noise(seed=4)
    decoded = decode_image(encode(Image.fromarray(pixels), "WEBP", lossless=True))
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_accepts_bytearray_and_memoryview() -> None:
    data = encode(Image.fromarray(noise()), "PNG")
    assert decode_image(bytearray(data)).data == data
    assert decode_image(memoryview(data)).data == data


def test_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


def test_format_is_recognised_from_content_not_name(tmp_path: Path) -> None:
    pixels = noise()
    mislabelled = tmp_path / "photo.jpg"
    mislabelled.write_bytes(encode(Image.fromarray(pixels), "PNG"))

    decoded = load_image(mislabelled)

    assert decoded.format == "PNG"
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_repr_and_equality_do_not_expose_pixels() -> None:
    data = encode(Image.fromarray(noise()), "PNG")
    first = decode_image(data)
    second = decode_image(data)
    other = decode_image(encode(Image.fromarray(noise(seed=9)), "PNG"))

    assert first == second
    assert hash(first) == hash(second)
    assert first != other
    text = repr(first)
    assert "64x48 PNG" in text
    assert len(text) < 120


# --- refused formats -------------------------------------------------------------------


def test_text_file_named_jpg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "suspect.jpg"
    path.write_text("name,case\nsomebody,2024-001\n", encoding="utf-8")

    with pytest.raises(UnsupportedFormatError) as caught:
        load_image(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "text" in message
    assert caught.value.name == str(path)


@pytest.mark.parametrize(
    ("image_format", "word"),
    [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")],
)
def test_other_image_formats_are_refused(image_format: str, word: str) -> None:
    data = encode(Image.fromarray(noise()), image_format)
    with pytest.raises(UnsupportedFormatError, match=rf"^face\.png: the file is an? {word} image"):
        decode_image(data, name="face.png")


def test_random_bytes_are_refused() -> None:
    data = bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))
    with pytest.raises(UnsupportedFormatError, match="does not recognise"):
        decode_image(b"\x01\x02" + data, name="blob")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(CorruptImageError, match=r"empty\.jpg: the file is empty"):
        load_image(path)


def test_animated_gif_is_refused() -> None:
    frames = [Image.fromarray(noise(seed=seed)) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        decode_image(buffer.getvalue(), name="clip.gif")


@pytest.mark.parametrize("image_format", ["WEBP", "PNG"])
def test_animated_webp_and_apng_are_refused(image_format: str) -> None:
    frames = [Image.fromarray(noise(seed=seed)) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, image_format, save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedFormatError, match=r"animated .* with 3 frames"):
        decode_image(buffer.getvalue(), name="clip")


# --- damage ----------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated_files_are_refused(image_format: str, keep: float) -> None:
    data = encode(Image.fromarray(noise(96, 128)), image_format, quality=90)
    cut = data[: int(len(data) * keep)]
    with pytest.raises(TruncatedImageError) as caught:
        decode_image(cut, name="photo.img")
    assert str(caught.value).startswith("photo.img: the file ends early (truncated")


@pytest.mark.parametrize("missing", [1, 2, 12, 16, 20])
def test_png_missing_its_last_bytes_is_refused(missing: int) -> None:
    # Pillow alone accepts these: the pixels are complete once the IDAT data is read.
    data = encode(Image.fromarray(noise()), "PNG")
    with pytest.raises(TruncatedImageError):
        decode_image(data[:-missing])


def test_jpeg_missing_end_marker_is_refused() -> None:
    data = encode(Image.fromarray(noise()), "JPEG")
    assert data.endswith(b"\xff\xd9")
    with pytest.raises(TruncatedImageError, match="truncated JPEG"):
        decode_image(data[:-2])


def test_png_with_damaged_data_is_refused() -> None:
    data = bytearray(encode(Image.fromarray(noise()), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0xFF
    with pytest.raises(CorruptImageError, match="IDAT chunk of the PNG is damaged"):
        decode_image(bytes(data), name="scan.png")


def test_jpeg_with_garbage_after_header_is_refused() -> None:
    with pytest.raises(CorruptImageError, match=r"^x\.jpg: the JPEG data is damaged"):
        decode_image(b"\xff\xd8\xff" + b"not a jpeg at all" * 20, name="x.jpg")


def test_webp_with_damaged_bitstream_is_refused() -> None:
    data = bytearray(encode(Image.fromarray(noise()), "WEBP"))
    data[30:200] = b"\xff" * 170
    with pytest.raises(CorruptImageError, match="the WebP data is damaged"):
        decode_image(bytes(data))


def test_loader_flags_are_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(TruncatedImageError):
        decode_image(encode(Image.fromarray(noise()), "JPEG")[:-200])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert before == Image.MAX_IMAGE_PIXELS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image_format=st.sampled_from(["JPEG", "PNG", "WEBP"]),
    position=st.floats(min_value=0.0, max_value=1.0),
    value=st.integers(min_value=0, max_value=255),
    cut=st.floats(min_value=0.0, max_value=1.0),
)
def test_damaged_files_raise_only_image_errors(
    image_format: str, position: float, value: int, cut: float
) -> None:
    """Whatever the damage, the caller sees a decoded image or an ImageError, nothing else."""
    data = bytearray(encode(Image.fromarray(noise(40, 40)), image_format))
    data[int(position * (len(data) - 1))] = value
    damaged = bytes(data[: max(1, int(cut * len(data)))])
    try:
        decoded = decode_image(damaged)
    except ImageError as error:
        assert str(error).startswith("<bytes>: ")
    else:
        assert decoded.pixels.shape == (40, 40, 3)


# --- limits ----------------------------------------------------------------------------


def test_png_bomb_is_refused_from_its_header() -> None:
    # 30000 x 30000 RGB would need 2.7 GB; the file itself is a few hundred bytes.
    row = b"\x00" + bytes(3 * 30000)
    bomb = raw_png(30000, 30000, 8, 2, row * 4)
    assert len(bomb) < 2000
    with pytest.raises(ImageTooLargeError, match=r"30000 x 30000 pixels .*decompression bomb"):
        decode_image(bomb, name="bomb.png")


def test_jpeg_bomb_is_refused_from_its_header() -> None:
    data = bytearray(encode(Image.fromarray(noise()), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 60000, 60000)
    with pytest.raises(ImageTooLargeError, match="60000 x 60000"):
        decode_image(bytes(data))


def vp8x_webp(width: int, height: int) -> bytes:
    payload = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def test_webp_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLargeError, match="16000 x 16000"):
        decode_image(vp8x_webp(16000, 16000))


def test_pillow_own_bomb_check_is_reported_as_too_large() -> None:
    # Our limit raised above Pillow's: Pillow's WebP reader refuses first, same error type.
    limits = ImageLimits(max_pixels=1_000_000_000)
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        decode_image(vp8x_webp(16000, 16000), limits=limits)


def test_pixel_limit_is_configurable() -> None:
    data = encode(Image.fromarray(noise(100, 100)), "PNG")
    decode_image(data, limits=ImageLimits(max_pixels=10_000))
    with pytest.raises(ImageTooLargeError):
        decode_image(data, limits=ImageLimits(max_pixels=9_999))


def test_byte_limit_is_checked() -> None:
    data = encode(Image.fromarray(noise()), "PNG")
    with pytest.raises(ImageTooLargeError, match=r"^p: the file is .*, over the limit of 1000"):
        decode_image(data, name="p", limits=ImageLimits(max_bytes=1000))


def test_load_refuses_oversized_file_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as handle:
        handle.truncate(31 * 1024 * 1024)  # sparse: stat says 31 MiB, nothing is written
    with pytest.raises(ImageTooLargeError, match=r"31\.0 MiB, over the limit of 30\.0 MiB"):
        load_image(path)


def test_small_pictures_are_refused() -> None:
    data = encode(Image.fromarray(noise(20, 64)), "PNG")
    with pytest.raises(ImageTooSmallError, match="64 x 20 pixels"):
        decode_image(data)
    decode_image(data, limits=ImageLimits(min_side=20))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        ImageLimits(max_pixels=0)


# --- files -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="no such file"):
        load_image(tmp_path / "absent.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="folder"):
        load_image(tmp_path)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated, because chmod 0 does not stop root (CI containers often run as root).
    path = tmp_path / "locked.png"
    path.write_bytes(encode(Image.fromarray(noise()), "PNG"))

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(
        UnreadableImageError, match=r"locked\.png: the file cannot be read \(permission denied\)"
    ):
        load_image(path)


@pytest.mark.faces
def test_shared_webp_named_jpg_decodes_as_webp(faces_dir: Path) -> None:
    path = faces_dir / "deepface-tests" / "deepface_id03" / "img47.jpg"
    decoded = load_image(path)
    assert decoded.format == "WEBP"
    assert (decoded.width, decoded.height) == (1350, 1800)
    assert decoded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- orientation -----------------------------------------------------------------------


def marked_picture() -> np.ndarray:
    """60 wide, 40 high, blue, with a red 12 x 12 block in the top-left corner."""
    pixels = np.empty((40, 60, 3), dtype=np.uint8)
    pixels[:] = BLUE
    pixels[:12, :12] = RED
    return pixels


# Orientation tag value -> what a viewer does to show the stored pixels upright.
ROTATIONS = {
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, -1),  # 90 degrees clockwise
    8: lambda a: np.rot90(a, 1),  # 90 degrees anticlockwise
}


@pytest.mark.parametrize("orientation", sorted(ROTATIONS))
def test_exif_orientation_png_exact(orientation: int) -> None:
    pixels = marked_picture()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(pixels), "PNG", exif=exif)

    decoded = decode_image(data)

    np.testing.assert_array_equal(decoded.pixels, ROTATIONS[orientation](pixels))
    assert decoded.pixels.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(3, "bottom-right"), (6, "top-right"), (8, "bottom-left")],
)
def test_exif_orientation_jpeg_moves_the_marker(orientation: int, corner: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(marked_picture()), "JPEG", quality=95, exif=exif)

    pixels = decode_image(data).pixels.astype(int)

    expected_shape = (40, 60, 3) if orientation == 3 else (60, 40, 3)
    assert pixels.shape == expected_shape
    corners = {
        "top-left": pixels[2:8, 2:8],
        "top-right": pixels[2:8, -8:-2],
        "bottom-left": pixels[-8:-2, 2:8],
        "bottom-right": pixels[-8:-2, -8:-2],
    }
    for where, block in corners.items():
        colour = RED if where == corner else BLUE
        assert np.abs(block.mean(axis=(0, 1)) - colour).max() < 12, where


# --- colour modes ----------------------------------------------------------------------


def test_grey_becomes_equal_channels() -> None:
    grey = np.random.default_rng(2).integers(0, 256, (40, 40), dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(grey, "L"), "PNG"))
    for channel in range(3):
        np.testing.assert_array_equal(decoded.pixels[:, :, channel], grey)


def test_grey_alpha_is_composited_on_white() -> None:
    la = np.zeros((40, 40, 2), dtype=np.uint8)
    la[:, :, 0] = 100
    la[:, :20, 1] = 255  # opaque
    la[:, 20:30, 1] = 0  # fully transparent
    la[:, 30:, 1] = 128  # half
    decoded = decode_image(encode(Image.fromarray(la, "LA"), "PNG"))
    assert decoded.pixels[0, 0].tolist() == [100, 100, 100]
    assert decoded.pixels[0, 25].tolist() == [255, 255, 255]
    half = round((100 * 128 + 255 * 127) / 255)
    assert decoded.pixels[0, 35].tolist() == [half] * 3


def test_rgba_is_composited_on_white_not_dropped() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[:, :, :3] = (10, 0, 0)  # a near-black hidden under full transparency
    rgba[:20, :, 3] = 0
    rgba[20:, :, :3] = RED
    rgba[20:, :, 3] = 255
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert decoded.pixels[5, 5].tolist() == [255, 255, 255]
    assert decoded.pixels[30, 5].tolist() == list(RED)


def test_rgba_webp_is_composited_on_white() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[:, :, :3] = RED
    rgba[:, 20:, 3] = 255
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True))
    assert decoded.format == "WEBP"
    assert decoded.pixels[5, 5].tolist() == [255, 255, 255]
    assert decoded.pixels[5, 30].tolist() == list(RED)


def test_palette_with_transparency() -> None:
    indices = np.zeros((40, 40), dtype=np.uint8)
    indices[:, 20:] = 1
    palette = Image.fromarray(indices, "P")
    palette.putpalette([0, 0, 0, *RED])
    data = encode(palette, "PNG", transparency=0)
    decoded = decode_image(data)
    assert decoded.pixels[0, 0].tolist() == [255, 255, 255]
    assert decoded.pixels[0, 30].tolist() == list(RED)


def test_palette_without_transparency() -> None:
    indices = np.zeros((40, 40), dtype=np.uint8)
    indices[:, 20:] = 1
    palette = Image.fromarray(indices, "P")
    palette.putpalette([*BLUE, *RED])
    decoded = decode_image(encode(palette, "PNG"))
    assert decoded.pixels[0, 0].tolist() == list(BLUE)
    assert decoded.pixels[0, 30].tolist() == list(RED)


def test_rgb_transparent_colour_becomes_white() -> None:
    pixels = np.zeros((40, 40, 3), dtype=np.uint8)
    pixels[:, :] = BLUE
    pixels[:, 20:] = RED
    decoded = decode_image(encode(Image.fromarray(pixels), "PNG", transparency=BLUE))
    assert decoded.pixels[0, 0].tolist() == [255, 255, 255]
    assert decoded.pixels[0, 30].tolist() == list(RED)


def test_one_bit() -> None:
    bits = np.zeros((40, 40), dtype=bool)
    bits[:, 20:] = True
    decoded = decode_image(encode(Image.fromarray(bits), "PNG"))
    assert decoded.pixels[0, 0].tolist() == [0, 0, 0]
    assert decoded.pixels[0, 30].tolist() == [255, 255, 255]


def test_cmyk_jpeg() -> None:
    pixels = np.zeros((48, 48, 3), dtype=np.uint8)
    pixels[:, :24] = RED
    pixels[:, 24:] = BLUE
    cmyk = Image.fromarray(pixels).convert("CMYK")
    data = encode(cmyk, "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"

    decoded = decode_image(data)

    assert np.abs(decoded.pixels[10, 5].astype(int) - RED).max() < 12
    assert np.abs(decoded.pixels[10, 40].astype(int) - BLUE).max() < 12


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    samples = np.zeros((40, 40), dtype=np.uint16)
    samples[:, :10] = 0x0000
    samples[:, 10:20] = 0x00FF  # clipping would keep 255; scaling gives 0
    samples[:, 20:30] = 0x1234
    samples[:, 30:] = 0xFFFF
    data = raw_png(40, 40, 16, 0, sixteen_bit_rows(samples))
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "I;16"

    decoded = decode_image(data)

    assert decoded.pixels[0, [0, 15, 25, 35]].tolist() == [
        [0, 0, 0],
        [0, 0, 0],
        [0x12] * 3,
        [0xFF] * 3,
    ]


def test_sixteen_bit_rgb_png_keeps_high_bytes() -> None:
    samples = np.zeros((40, 40, 3), dtype=np.uint16)
    samples[:, :] = (0xAB01, 0x00FF, 0x7FFF)
    decoded = decode_image(raw_png(40, 40, 16, 2, sixteen_bit_rows(samples)))
    assert decoded.pixels[3, 3].tolist() == [0xAB, 0x00, 0x7F]


@pytest.mark.parametrize(
    ("mode", "dtype"),
    [("I;16", "<u2"), ("I;16B", ">u2"), ("I", "<i4")],
)
def test_sixteen_bit_modes_scale_by_high_byte(mode: str, dtype: str) -> None:
    values = np.array([[0, 0x00FF, 0x0100, 0x8000, 0xFFFF]], dtype=dtype)
    image = Image.frombytes(mode, (5, 1), values.tobytes())
    assert image.mode == mode
    rgb = _to_rgb(image)
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 0x80, 0xFF]
    assert rgb.shape == (1, 5, 3)
    assert rgb.flags["C_CONTIGUOUS"]


def test_opaque_rgba_keeps_its_colours() -> None:
    rgba = np.dstack([noise(40, 40), np.full((40, 40), 255, dtype=np.uint8)])
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(decoded.pixels, rgba[:, :, :3])
    assert decoded.pixels.flags["C_CONTIGUOUS"]
