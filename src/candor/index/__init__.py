"""Nearest-neighbour search over the templates of one face model."""

from candor.index.exact import TemplateIndex
from candor.index.gallery import (
    APPROXIMATE_FROM,
    GalleryIndex,
    IndexFileError,
    IndexFolderBusyError,
    IndexFolderError,
)

__all__ = [
    "APPROXIMATE_FROM",
    "GalleryIndex",
    "IndexFileError",
    "IndexFolderBusyError",
    "IndexFolderError",
    "TemplateIndex",
]
