"""Nearest-neighbour search over the templates of one face model."""

from candor.index.exact import TemplateIndex

__all__ = ["TemplateIndex"]
