"""One way to page a list, for the web, the command line and the API alike.

A list is read a page at a time: `limit` items from `offset`, with the total that match,
so an interface can say "51-100 of 240" and offer the next page. Lists that drive work
(review queues, approvals, requests) come oldest first, so nothing waits out of sight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from candor.workflow.errors import WorkflowError

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# An offset beyond any list Candor holds; it keeps SQL OFFSET within a 32-bit integer.
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True)
class PageRequest:
    """Which page: `limit` items starting at `offset` (0 is the first item)."""

    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise WorkflowError(f"limit must be from 1 to {MAX_PAGE_SIZE}, not {self.limit}")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise WorkflowError(f"offset must be from 0 to {MAX_OFFSET}, not {self.offset}")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and where they lie in the whole."""

    items: Sequence[T]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page, or None on the last."""
        following = self.offset + len(self.items)
        return following if following < self.total else None

    @property
    def previous_offset(self) -> int | None:
        """The offset of the previous page, or None on the first."""
        return None if self.offset == 0 else max(0, self.offset - self.limit)

    def describe(self) -> str:
        """'51-100 of 240', or 'none' for an empty list."""
        if not self.items:
            return "none" if self.total == 0 else f"none past {self.offset} of {self.total}"
        return f"{self.offset + 1}-{self.offset + len(self.items)} of {self.total}"


def page_of(items: Sequence[T], total: int, request: PageRequest) -> Page[T]:
    """A Page of `items` read for `request`, `total` of them matching in all."""
    return Page(items=items, total=total, limit=request.limit, offset=request.offset)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Page",
    "PageRequest",
    "page_of",
]
