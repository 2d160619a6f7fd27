"""Search and verify requests (model `SearchRequest` in candor.store.governance) and what
hangs off them: candidates, examiners' verdicts, releases, supervisors' approvals.

The request path's reads and writes (`count_requests_since`, `recent_request_probes`,
`template_owners`, `insert_request`, `insert_candidates`) run Core statements on the
session's connection with table columns, off the ORM: each ORM-enabled select cost 0.3
to 0.4 ms more than its query, and a search makes several (bench/governed_overhead.py,
docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, inspect, select, update
from sqlalchemy.orm import Session, selectinload

from candor.store.governance import Approval, Candidate, Release, SearchRequest, Verdict
from candor.store.models import FaceTemplate

_REQUESTS = SearchRequest.__table__.c
_TEMPLATES = FaceTemplate.__table__.c


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
    newest first, with their candidates, verdicts and releases loaded (a review queue
    reads them all: one query per relationship, not one per candidate)."""
    return list(
        session.scalars(
            select(SearchRequest)
            .options(
                selectinload(SearchRequest.candidates).options(
                    selectinload(Candidate.verdicts), selectinload(Candidate.release)
                )
            )
            .where(
                SearchRequest.kind == "search",
                SearchRequest.status == "completed",
                SearchRequest.requester_id != user_id,
            )
            .order_by(SearchRequest.id.desc())
            .limit(limit)
        )
    )


def requests_with_status(session: Session, status: str) -> list[SearchRequest]:
    """Every request in `status`, oldest first."""
    return list(
        session.scalars(
            select(SearchRequest).where(SearchRequest.status == status).order_by(SearchRequest.id)
        )
    )


# -- the request path ---------------------------------------------------------------------


def count_requests_since(
    session: Session,
    requester_id: int,
    statuses: Collection[str],
    first: datetime,
    second: datetime,
) -> tuple[int, int]:
    """The requester's requests in `statuses` made since each of two times, in one query."""

    def since(start: datetime) -> ColumnElement[int]:
        counted = func.sum(case((_REQUESTS.created_at >= start, 1), else_=0))
        return func.coalesce(counted, 0)

    one, two = (
        session.connection()
        .execute(
            select(since(first), since(second)).where(
                _REQUESTS.requester_id == requester_id,
                _REQUESTS.created_at >= min(first, second),
                _REQUESTS.status.in_(statuses),
            )
        )
        .one()
    )
    return int(one), int(two)


def recent_request_probes(
    session: Session, kind: str, since: datetime, statuses: Collection[str]
) -> list[tuple[int, str, str | None, bytes | None]]:
    """(id, probe sha256, probe model key, probe template) of each request of `kind` in
    `statuses` made since `since`, newest first."""
    rows = session.connection().execute(
        select(
            _REQUESTS.id,
            _REQUESTS.probe_sha256,
            _REQUESTS.probe_model_key,
            _REQUESTS.probe_template,
        )
        .where(
            _REQUESTS.kind == kind,
            _REQUESTS.created_at >= since,
            _REQUESTS.status.in_(statuses),
        )
        .order_by(_REQUESTS.id.desc())
    )
    return list(rows.all())


def template_owners(session: Session, template_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Each existing template's (subject id, image id), by template id."""
    if not template_ids:
        return {}
    rows = session.connection().execute(
        select(_TEMPLATES.id, _TEMPLATES.subject_id, _TEMPLATES.image_id).where(
            _TEMPLATES.id.in_(template_ids)
        )
    )
    return {template_id: (subject_id, image_id) for template_id, subject_id, image_id in rows}


def insert_request(session: Session, row: SearchRequest) -> int | None:
    """Insert a new request's row on the session's connection, off the ORM; its id.

    The row object stays outside the session: nothing in the request's transaction reads
    it back, and a flush of the unit of work cost 0.3 to 0.4 ms more than the INSERT.
    """
    state = inspect(row)
    values = {
        attribute.columns[0].key: state.dict[attribute.key]
        for attribute in state.mapper.column_attrs
        if attribute.key in state.dict and attribute.key != "id"
    }
    inserted = session.connection().execute(insert(SearchRequest), values)
    key = inserted.inserted_primary_key
    return None if key is None else int(key[0])


def insert_candidates(session: Session, candidates: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Insert a run's candidate rows in one INSERT; each new id by its rank.

    ORM objects for rows the run's transaction never reads back cost more than the
    insert itself.
    """
    inserted = session.connection().execute(
        insert(Candidate).returning(Candidate.id, Candidate.rank), list(candidates)
    )
    return {rank: candidate_id for candidate_id, rank in inserted}


# -- review, release, approval ------------------------------------------------------------


def add_verdict(
    session: Session,
    candidate: Candidate,
    examiner_id: int,
    verdict: str,
    rationale: str,
    at: datetime,
) -> Verdict:
    """An examiner's verdict on `candidate`, flushed; `candidate.verdicts` then holds it."""
    row = Verdict(
        candidate_id=candidate.id,
        examiner_id=examiner_id,
        verdict=verdict,
        rationale=rationale,
        created_at=at,
    )
    session.add(row)
    session.flush()
    session.refresh(candidate)
    return row


def add_release(
    session: Session, candidate: Candidate, released_by: int, reason: str, at: datetime
) -> Release:
    """`candidate` released as a lead, flushed; `candidate.release` then holds it."""
    row = Release(candidate_id=candidate.id, released_by=released_by, reason=reason, released_at=at)
    session.add(row)
    session.flush()
    session.refresh(candidate)
    return row


def decide_request(
    session: Session,
    request: SearchRequest,
    supervisor_id: int,
    decision: str,
    reason: str,
    at: datetime,
) -> Approval:
    """A supervisor's decision ("approved" or "rejected") on `request`, which takes it
    as its status."""
    row = Approval(
        search_id=request.id,
        supervisor_id=supervisor_id,
        decision=decision,
        reason=reason,
        decided_at=at,
    )
    session.add(row)
    request.status = decision
    return row


# -- retention ----------------------------------------------------------------------------


def requests_made_before(
    session: Session, before: datetime, *, probe_held: bool = False
) -> list[SearchRequest]:
    """The requests made before `before`; only those still holding their probe when
    `probe_held`."""
    query = select(SearchRequest).where(SearchRequest.created_at < before)
    if probe_held:
        query = query.where(SearchRequest.probe_purged_at.is_(None))
    return list(session.scalars(query))


def requests_holding_probes(session: Session) -> list[SearchRequest]:
    """The requests whose probe has not been purged."""
    return list(
        session.scalars(select(SearchRequest).where(SearchRequest.probe_purged_at.is_(None)))
    )


def purge_request_probes(session: Session, rows: Sequence[SearchRequest], at: datetime) -> None:
    """Each request's probe template dropped and its probe marked purged at `at`, flushed."""
    for row in rows:
        row.probe_template = None
        row.probe_purged_at = at
    session.flush()


def delete_requests(session: Session, rows: Sequence[SearchRequest]) -> None:
    """The requests deleted (their candidates, approvals, verdicts and releases with them),
    flushed; later requests naming one as their earlier search are kept, unlinked."""
    ids = [row.id for row in rows]
    session.execute(
        update(SearchRequest)
        .where(SearchRequest.earlier_search_id.in_(ids))
        .values(earlier_search_id=None)
    )
    for row in rows:
        session.delete(row)
    session.flush()
