"""Safe decoding of untrusted image bytes: see `candor.images.decode` for the decisions."""

from candor.images.decode import (
    ALLOWED_FORMATS,
    PROBE_LIMITS,
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
    read_image_file,
)
from candor.images.encode import encode_png

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
    "encode_png",
    "load_image",
    "read_image_file",
]
