"""Safe decoding of untrusted image bytes into an RGB pixel array.

Every photo that enters Candor (a probe, a gallery image, an evaluation file) passes
through `decode_image` or `load_image`. The bytes come from outside and are treated as
hostile: a failure is always one of the `ImageError` subclasses below, whose message is a
single sentence naming the file and what is wrong with it, never a Pillow traceback.

Decisions, and why:

- Accepted formats are JPEG, PNG and WebP, recognised from the first bytes of the file,
  never from its name (a WebP saved as ``photo.jpg`` decodes as WEBP). These three cover
  cameras, phones, booking systems and screenshots. GIF (256 colours, usually animated),
  BMP, TIFF (a container of many codecs, pages and libtiff quirks), HEIC/AVIF and JPEG 2000
  are refused with a message saying what the file is: every decoder we do not run is one
  less attack surface, and an operator can convert such a file with a tool they trust.
- Animated images (animated WebP, APNG) are refused, not reduced to their first frame.
  A search must be about a picture a person has looked at; silently searching frame one
  of an animation, which a viewer may never show on its own, would not be.
- Transparency is composited onto white, not dropped. The colour under fully transparent
  pixels is arbitrary (often black, sometimes leftover content a viewer never shows), so
  dropping alpha can put a face the examiner never saw in front of the detector;
  compositing on white gives the picture as a viewer displays it on a white page.
- 16-bit greyscale (modes ``I;16``, ``I;16B``, ``I``) is scaled to 8 bits by keeping the
  high byte (``>> 8``); Pillow's own ``convert("L")`` clips at 255, which would turn
  almost every 16-bit photo white. 16-bit colour PNGs are already reduced to their high
  bytes by Pillow's decoder.
- EXIF orientation is applied, so ``pixels`` is upright as a viewer shows it.
- Limits are checked before decoding: the byte count first, then the width and height
  declared in the header against ``ImageLimits.max_pixels``, so a small file declaring
  a huge canvas (a decompression bomb) is refused without allocating it. WebP is checked
  from its header by this module because Pillow's WebP reader allocates the canvas while
  opening the file. Pillow's global ``Image.MAX_IMAGE_PIXELS`` is left untouched; when
  its own bomb check fires first (above twice that value), the error is reported as
  `ImageTooLargeError` all the same.
- Truncated files are refused: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set, the
  image is fully loaded here, a PNG must reach its ``IEND`` chunk with valid chunk
  checksums, and a WebP must be as long as its RIFF header says.
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

__all__ = [
    "ALLOWED_FORMATS",
    "PROBE_LIMITS",
    "CorruptImageError",
    "DecodedImage",
    "ImageError",
    "ImageLimits",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "TruncatedImageError",
    "UnreadableImageError",
    "UnsupportedFormatError",
    "decode_image",
    "load_image",
]

ALLOWED_FORMATS: Final = ("JPEG", "PNG", "WEBP")
"""Formats `decode_image` accepts, as Pillow names them."""

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

# Magic numbers of formats we refuse, so the message can say what the file actually is.
_REFUSED_SIGNATURES: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"BM", 0, "a BMP image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", 0, "a JPEG 2000 image"),
    (b"ftypheic", 4, "a HEIC image"),
    (b"ftypheix", 4, "a HEIC image"),
    (b"ftypmif1", 4, "a HEIF image"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"%PDF", 0, "a PDF document"),
    (b"PK\x03\x04", 0, "a ZIP archive"),
    (b"\x00\x00\x01\x00", 0, "an ICO icon"),
)

# What Pillow's decoders raise on malformed input (the same set ImageFile.__init__ turns
# into SyntaxError, plus the errors raised while decoding pixel data).
_PILLOW_INPUT_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    ZeroDivisionError,
)


class ImageError(ValueError):
    """An image was refused; ``str(error)`` is one sentence naming the file and the problem.

    Attributes:
        name: the file name or label given to `decode_image` / `load_image`.
        problem: what is wrong, without the name (lower case, no final full stop).
    """

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}.")
        self.name = name
        self.problem = problem


class UnsupportedFormatError(ImageError):
    """The content is not a JPEG, PNG or WebP still image (whatever the file name says)."""


class ImageTooLargeError(ImageError):
    """The file's bytes or its declared pixel count exceed `ImageLimits` (decompression bombs)."""


class ImageTooSmallError(ImageError):
    """The picture's shorter side is under `ImageLimits.min_side` pixels."""


class TruncatedImageError(ImageError):
    """The file ends before the image data does."""


class CorruptImageError(ImageError):
    """The file is empty or its structure or compressed data is damaged."""


class UnreadableImageError(ImageError):
    """`load_image` could not read the file: missing, a folder, or no permission."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on an untrusted image, all checked before the pixel data is decoded.

    Attributes:
        max_bytes: largest accepted file, in bytes (default 30 MiB).
        max_pixels: largest accepted ``width * height`` as declared in the file header
            (default 50 million pixels, e.g. 8660 x 5773).
        min_side: smallest accepted width or height, in pixels (default 32).
        applies_to: what the limits are for, as a refusal names it ("a probe photo");
            None for the general limits, whose refusal of a huge canvas says it may be a
            decompression bomb.

    `PROBE_LIMITS` are the limits of a probe photo.
    """

    max_bytes: int = 30 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 32
    applies_to: str | None = None

    def __post_init__(self) -> None:
        for field in ("max_bytes", "max_pixels", "min_side"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageLimits.{field} must be a positive integer, got {value!r}")


PROBE_LIMITS: Final = ImageLimits(max_pixels=25_000_000, applies_to="a probe photo")
"""Limits of a probe photo (a search, a verification, a probe check).

A probe is decoded while a server holds its workflow, so what one costs is what every
other request waits for. 25 million pixels passes a 24-megapixel camera's 6000 x 4000 and
a phone's usual 4032 x 3024; such a photo decodes in 0.3 s of one core as a JPEG and 1.8 s
as a semi-transparent PNG, at 270-340 MB at most (docs/performance.md). Faces are found
on a copy of at most 800,000 pixels in any case (`candor.faces.EngineSettings`), so more
pixels would cost without finding more. A larger photo is refused unread, saying so: a
copy scaled down or cropped around the face can be used.
"""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded, upright RGB picture and the exact bytes it came from.

    Attributes:
        pixels: (height, width, 3) uint8 RGB array, C-contiguous, EXIF orientation applied.
        sha256: lowercase hex sha256 of `data` (the content address of the original file).
        format: the format recognised from the content: "JPEG", "PNG" or "WEBP".
        data: the original file bytes, unchanged, for the content-addressed store.

    Equality compares the original bytes (two decodings of the same file are equal). The
    repr shows size, format and digest only, so the picture never lands in a log by way of
    a debug print.
    """

    pixels: np.ndarray
    sha256: str
    format: str
    data: bytes

    @property
    def width(self) -> int:
        """Width in pixels, after EXIF orientation."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels, after EXIF orientation."""
        return int(self.pixels.shape[0])

    def __repr__(self) -> str:
        return (
            f"DecodedImage({self.width}x{self.height} {self.format}, "
            f"{len(self.data)} bytes, sha256={self.sha256[:16]}...)"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecodedImage):
            return NotImplemented
        return self.sha256 == other.sha256 and self.data == other.data

    def __hash__(self) -> int:
        return hash(self.sha256)


def decode_image(
    data: bytes | bytearray | memoryview,
    *,
    name: str = "<bytes>",
    limits: ImageLimits = ImageLimits(),
) -> DecodedImage:
    """Decode untrusted image bytes into an upright 8-bit RGB `DecodedImage`.

    Args:
        data: the complete file contents (copied into an immutable `bytes`).
        name: how to name the file in error messages (a file name or other label).
        limits: byte, pixel-count and minimum-side bounds (default `ImageLimits()`).

    Returns:
        The decoded picture with the sha256 and the original bytes.

    Raises:
        UnsupportedFormatError: not a JPEG, PNG or WebP still image.
        ImageTooLargeError: more than ``limits.max_bytes`` bytes or ``limits.max_pixels``
            declared pixels.
        ImageTooSmallError: a side shorter than ``limits.min_side`` pixels.
        TruncatedImageError: the file ends early.
        CorruptImageError: empty, or damaged structure or data.
        TypeError: `data` is not bytes-like.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image needs bytes, got {type(data).__name__}")
    content = bytes(data)
    if not content:
        raise CorruptImageError(name, "the file is empty (0 bytes)")
    if len(content) > limits.max_bytes:
        raise ImageTooLargeError(
            name,
            f"the file is {_human_bytes(len(content))}, over the limit of "
            f"{_human_bytes(limits.max_bytes)}",
        )
    image_format = _identify(content, name)
    if image_format == "PNG":
        _check_png_chunks(content, name)
    elif image_format == "WEBP":
        _check_webp_container(content, name, limits)

    pixels = _decode_pixels(content, image_format, name, limits)
    return DecodedImage(
        pixels=pixels,
        sha256=hashlib.sha256(content).hexdigest(),
        format=image_format,
        data=content,
    )


def load_image(path: Path, *, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Read and decode one image file, checking its size before reading it.

    Args:
        path: the file; its name is used in error messages, never to guess the format.
        limits: byte, pixel-count and minimum-side bounds (default `ImageLimits()`).

    Returns:
        The decoded picture (see `decode_image`).

    Raises:
        UnreadableImageError: the file is missing, is not a regular file, or cannot be read.
        ImageTooLargeError: the file is larger than ``limits.max_bytes`` (before reading).
        ImageError: any other refusal of `decode_image`.
    """
    return decode_image(read_image_file(path, limits=limits), name=str(path), limits=limits)


def read_image_file(path: Path, *, limits: ImageLimits = ImageLimits()) -> bytes:
    """The bytes of an image file, undecoded, after the checks `load_image` makes first.

    For a caller that must know the bytes (their hash) before deciding to decode them;
    pass them to `decode_image` with ``name=str(path)``. Raises UnreadableImageError or
    ImageTooLargeError as `load_image` does.
    """
    name = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UnreadableImageError(name, "there is no such file") from None
    except OSError as error:
        reason = _os_reason(error)
        raise UnreadableImageError(name, f"the file cannot be examined ({reason})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableImageError(name, "this is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableImageError(name, "this is not a regular file (a device, pipe or socket)")
    if info.st_size > limits.max_bytes:
        raise ImageTooLargeError(
            name,
            f"the file is {_human_bytes(info.st_size)}, over the limit of "
            f"{_human_bytes(limits.max_bytes)}",
        )
    try:
        with path.open("rb") as handle:
            # One byte more than allowed tells a file that grew after stat() from one at the limit.
            return handle.read(limits.max_bytes + 1)
    except OSError as error:
        raise UnreadableImageError(name, f"the file cannot be read ({_os_reason(error)})") from None


def _identify(data: bytes, name: str) -> str:
    """The Pillow format name of `data` from its magic bytes, or an UnsupportedFormatError."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    accepted = "Candor accepts JPEG, PNG and WebP images"
    what = "an image format Candor does not recognise"
    for magic, offset, description in _REFUSED_SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            what = description
            break
    else:
        if _looks_like_text(data):
            what = "text, not an image"
    raise UnsupportedFormatError(name, f"the file is {what}; {accepted}")


def _looks_like_text(data: bytes) -> bool:
    head = data[:1024]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A cut in the middle of a multi-byte character at the 1024-byte boundary.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(char.isprintable() or char in "\t\r\n\f" for char in text)


def _check_png_chunks(data: bytes, name: str) -> None:
    """Walk the PNG chunks up to IEND: refuse a file that ends early or has a bad checksum.

    Pillow stops reading once it has the pixels, so a PNG missing its last bytes (the end
    of the final IDAT chunk, its checksum, IEND) would otherwise decode without complaint.
    """
    view = memoryview(data)
    position = len(_PNG_SIGNATURE)
    first = True
    while True:
        if position + 8 > len(data):
            raise TruncatedImageError(
                name, "the file ends early (truncated PNG: no IEND chunk), so it cannot be used"
            )
        length, chunk_type = struct.unpack_from(">I4s", data, position)
        if first and chunk_type != b"IHDR":
            raise CorruptImageError(name, "the PNG does not start with its IHDR header chunk")
        first = False
        if length > 0x7FFFFFFF or not chunk_type.isalpha():
            raise CorruptImageError(name, "the PNG chunk structure is damaged")
        end = position + 12 + length
        if end > len(data):
            raise TruncatedImageError(
                name,
                f"the file ends early (truncated PNG, inside a {chunk_type.decode('ascii')} "
                "chunk), so it cannot be used",
            )
        (expected_crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[position + 4 : end - 4]) != expected_crc:
            raise CorruptImageError(
                name,
                f"a {chunk_type.decode('ascii')} chunk of the PNG is damaged "
                "(checksum mismatch), so it cannot be used",
            )
        if chunk_type == b"IEND":
            return
        position = end


def _check_webp_container(data: bytes, name: str, limits: ImageLimits) -> None:
    """Check a WebP's RIFF length and its declared canvas before Pillow allocates it."""
    (riff_length,) = struct.unpack_from("<I", data, 4)
    if len(data) < riff_length + 8:
        raise TruncatedImageError(
            name, "the file ends early (truncated WebP), so it cannot be used"
        )
    size = _webp_declared_size(data)
    if size is None:
        raise CorruptImageError(name, "the WebP header is damaged or of an unknown kind")
    _check_declared_size(size, name, limits)


def _webp_declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first chunk of a WebP file, per the WebP container spec."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _check_declared_size(size: tuple[int, int], name: str, limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        declared = f"the picture declares {width} x {height} pixels ({_megapixels(width * height)})"
        if limits.applies_to is None:
            raise ImageTooLargeError(
                name,
                f"{declared}, over the limit of {_megapixels(limits.max_pixels)}; it was "
                "refused unread as a possible decompression bomb",
            )
        raise ImageTooLargeError(
            name,
            f"{declared}, over the limit of {_megapixels(limits.max_pixels)} for "
            f"{limits.applies_to}; it was refused unread (a copy scaled down or cropped "
            "to at most that can be used)",
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(
            name,
            f"the picture is only {width} x {height} pixels; "
            f"each side must be at least {limits.min_side} pixels",
        )


def _open(data: bytes, image_format: str) -> ImageFile.ImageFile:
    """Open with exactly one Pillow reader: the one the magic bytes named.

    The reader classes are used directly rather than `Image.open` because `Image.open`
    emits a DecompressionBombWarning through the process-wide warnings machinery before
    we get to compare the size with our own (usually lower) limit.
    """
    stream = io.BytesIO(data)
    if image_format == "JPEG":
        # Plain JPEG reader: an MPO (multi-picture) file is read as its first, primary JPEG.
        return JpegImagePlugin.JpegImageFile(stream)
    if image_format == "PNG":
        return PngImagePlugin.PngImageFile(stream)
    return WebPImagePlugin.WebPImageFile(stream)


def _decode_pixels(data: bytes, image_format: str, name: str, limits: ImageLimits) -> np.ndarray:
    label = "WebP" if image_format == "WEBP" else image_format
    try:
        image = _open(data, image_format)
        try:
            # Header only so far: nothing has been allocated for the pixels yet.
            _check_declared_size(image.size, name, limits)
            frames = int(getattr(image, "n_frames", 1))
            if frames > 1:
                raise UnsupportedFormatError(
                    name,
                    f"the file is an animated {label} with {frames} frames; Candor accepts "
                    "still images only (save the frame you mean as a still picture)",
                )
            # load() decodes everything now, so a truncated file fails here and not later.
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return _to_rgb(image)
        finally:
            image.close()
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            name,
            "the picture declares more pixels than the image library will decode; it was "
            "refused unread as a possible decompression bomb",
        ) from None
    except _PILLOW_INPUT_ERRORS as error:
        if "truncated" in str(error).lower():
            raise TruncatedImageError(
                name, f"the file ends early (truncated {label}), so it cannot be used"
            ) from None
        raise CorruptImageError(
            name, f"the {label} data is damaged and cannot be decoded"
        ) from None


_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_BLEND_ROWS: Final = 256


def _to_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 C-contiguous RGB from any mode the three accepted formats produce."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        wide = np.asarray(image)
        # Mode "I" reaches us only from 16-bit greyscale PNG, so its range is 0..65535.
        grey = (np.clip(wide, 0, 0xFFFF).astype(np.uint32) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, np.newaxis], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image if mode == "RGBA" else image.convert("RGBA"))
        if rgba[:, :, 3].min() == 255:  # opaque after all: skip the wide arithmetic
            return np.ascontiguousarray(rgba[:, :, :3])
        blended = np.empty((*rgba.shape[:2], 3), dtype=np.uint8)
        # In bands of rows: the 16-bit arithmetic on a whole 25-megapixel picture at once
        # needed 700 MB, in bands a few MB beyond the picture itself.
        for top in range(0, rgba.shape[0], _BLEND_ROWS):
            wide = rgba[top : top + _BLEND_ROWS].astype(np.uint16)
            alpha = wide[:, :, 3:4]
            # Exact rounding of (colour * a + white * (255 - a)) / 255, in integers.
            blended[top : top + _BLEND_ROWS] = (
                wide[:, :, :3] * alpha + 255 * (255 - alpha) + 127
            ) // 255
        return blended
    if mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _human_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f} megapixels"


def _os_reason(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()
