"""Search and verify requests (model `SearchRequest` in candor.store.governance): the
lists interfaces show of them. The governed path's own reads and writes are still in
candor.workflow.governed (docs/architecture.md, what remains)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from candor.store.governance import SearchRequest


def request_by_id(session: Session, search_id: int) -> SearchRequest | None:
    """The request with this id, or None."""
    return session.get(SearchRequest, search_id)


def latest_requests_by(session: Session, requester_id: int, limit: int) -> list[SearchRequest]:
    """The requester's own latest `limit` requests, newest first."""
    return list(
        session.scalars(
            select(SearchRequest)
            .where(SearchRequest.requester_id == requester_id)
            .order_by(SearchRequest.id.desc())
            .limit(limit)
        )
    )


def latest_completed_searches_not_by(
    session: Session, user_id: int, limit: int
) -> list[SearchRequest]:
    """The latest `limit` completed searches (not verifications) someone else requested,
    newest first."""
    return list(
        session.scalars(
            select(SearchRequest)
            .where(
                SearchRequest.kind == "search",
                SearchRequest.status == "completed",
                SearchRequest.requester_id != user_id,
            )
            .order_by(SearchRequest.id.desc())
            .limit(limit)
        )
    )
