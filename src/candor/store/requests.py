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

import numpy as np
from sqlalchemy import ColumnElement, Select, case, distinct, func, insert, inspect, select, update
from sqlalchemy.orm import Session, selectinload

from candor.sealing.envelope import MAGIC as SEALED_HEADER
from candor.store.data_keys import DataKeys
from candor.store.governance import (
    Approval,
    Candidate,
    LeadOutcome,
    Release,
    SearchRequest,
    User,
    Verdict,
)
from candor.store.models import FaceTemplate
from candor.store.vault import BiometricVault, probe_template_context

_REQUESTS = SearchRequest.__table__.c
_TEMPLATES = FaceTemplate.__table__.c


def request_by_id(session: Session, search_id: int) -> SearchRequest | None:
    """The request with this id, or None."""
    return session.get(SearchRequest, search_id)


def request_by_idempotency_key(
    session: Session, requester_id: int, idempotency_key: str
) -> SearchRequest | None:
    """The requester's request made with this Idempotency-Key, or None."""
    return session.scalars(
        select(SearchRequest).where(
            SearchRequest.requester_id == requester_id,
            SearchRequest.idempotency_key == idempotency_key,
        )
    ).one_or_none()


def requests_by_page(
    session: Session,
    requester_id: int,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
    case_number: str | None = None,
) -> tuple[list[SearchRequest], int]:
    """One page of the requester's own requests, oldest first, with how many match in all;
    only those in `status` or of `case_number` when given. Candidates come loaded."""
    conditions = [SearchRequest.requester_id == requester_id]
    if status is not None:
        conditions.append(SearchRequest.status == status)
    if case_number is not None:
        conditions.append(SearchRequest.case_number == case_number)
    rows = session.scalars(
        select(SearchRequest)
        .options(selectinload(SearchRequest.candidates))
        .where(*conditions)
        .order_by(SearchRequest.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), _count(session, conditions)


def _count(session: Session, conditions: Sequence[ColumnElement[bool]]) -> int:
    return int(session.scalar(select(func.count(SearchRequest.id)).where(*conditions)) or 0)


def _examiners_of_list() -> ColumnElement[int]:
    """How many distinct examiners gave a blind (not resolving) verdict on the list."""
    return (
        select(func.count(distinct(Verdict.examiner_id)))
        .join(Candidate, Verdict.candidate_id == Candidate.id)
        .where(Candidate.search_id == SearchRequest.id, Verdict.resolves.is_(False))
        .scalar_subquery()
    )


def _unsettled(extra: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    """Some candidate of the list has blind verdicts that disagree (possible_match against
    not_a_match) and no resolving verdict yet; `extra` narrows which candidate."""

    def said(verdict: str) -> ColumnElement[bool]:
        return (
            select(Verdict.id)
            .where(
                Verdict.candidate_id == Candidate.id,
                Verdict.verdict == verdict,
                Verdict.resolves.is_(False),
            )
            .exists()
        )

    resolved = (
        select(Verdict.id)
        .where(Verdict.candidate_id == Candidate.id, Verdict.resolves.is_(True))
        .exists()
    )
    conditions = [
        Candidate.search_id == SearchRequest.id,
        said("possible_match"),
        said("not_a_match"),
        ~resolved,
    ]
    if extra is not None:
        conditions.append(extra)
    return select(Candidate.id).where(*conditions).exists()


def _review_open(reviewers_required: int, resolving: bool) -> ColumnElement[bool]:
    """A completed search's candidate list whose review is not finished: no lead of it
    released, and fewer distinct examiners than the policy's reviewers have reviewed it
    (given a verdict on any of its candidates) or, where the policy names who settles a
    disagreement (`resolving`), a disagreement on one of its candidates waits for them.
    The SQL form of `candor.store.review_state.list_under_review` (the usage report's,
    from the log): a list with no candidates has nothing to review, so it never waits."""
    has_candidates = select(Candidate.id).where(Candidate.search_id == SearchRequest.id).exists()
    released = (
        select(Release.id)
        .join(Candidate, Release.candidate_id == Candidate.id)
        .where(Candidate.search_id == SearchRequest.id)
        .exists()
    )
    still_open = _examiners_of_list() < reviewers_required
    if resolving:
        still_open = still_open | _unsettled()
    return still_open & ~released & has_candidates


def _waiting_for(
    examiner_id: int, reviewers_required: int, may_resolve: bool
) -> ColumnElement[bool]:
    """The list waits for this examiner: she has given no verdict on it while it needs
    more examiners, or (`may_resolve`) a disagreement on a candidate she did not judge
    waits for a resolving verdict."""
    given = (
        select(Verdict.id)
        .join(Candidate, Verdict.candidate_id == Candidate.id)
        .where(Candidate.search_id == SearchRequest.id, Verdict.examiner_id == examiner_id)
        .exists()
    )
    waiting = ~given & (_examiners_of_list() < reviewers_required)
    if may_resolve:
        judged = (
            select(Verdict.id)
            .where(Verdict.candidate_id == Candidate.id, Verdict.examiner_id == examiner_id)
            .exists()
        )
        waiting = waiting | _unsettled(~judged)
    return waiting


def _review_conditions(
    *,
    reviewers_required: int,
    resolving: bool,
    not_by: int | None,
    waiting_for: int | None,
    may_resolve: bool,
    ran_before: datetime | None,
    case_number: str | None,
    requester_unit: str | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        SearchRequest.kind == "search",
        SearchRequest.status == "completed",
        _review_open(reviewers_required, resolving),
    ]
    if not_by is not None:
        conditions.append(SearchRequest.requester_id != not_by)
    if waiting_for is not None:
        conditions.append(_waiting_for(waiting_for, reviewers_required, may_resolve))
    if ran_before is not None:
        conditions.append(SearchRequest.ran_at < ran_before)
    if case_number is not None:
        conditions.append(SearchRequest.case_number == case_number)
    if requester_unit is not None:
        unit_of = select(User.id).where(
            User.id == SearchRequest.requester_id, User.unit == requester_unit
        )
        conditions.append(unit_of.exists())
    return conditions


def review_lists_by_page(
    session: Session,
    *,
    reviewers_required: int,
    limit: int,
    offset: int,
    resolving: bool = False,
    not_by: int | None = None,
    waiting_for: int | None = None,
    may_resolve: bool = False,
    ran_before: datetime | None = None,
    case_number: str | None = None,
    requester_unit: str | None = None,
) -> tuple[list[SearchRequest], int]:
    """One page of the candidate lists still under review, oldest run first, with how many
    match in all: completed searches with no lead released that fewer than
    `reviewers_required` examiners have reviewed, or (`resolving`: the policy names who
    settles a disagreement) with a disagreement waiting to be settled.

    not_by: not requested by this user; waiting_for: waiting for this examiner (she has
    not reviewed it, or `may_resolve` and a disagreement she did not take part in waits);
    ran_before: run before this time (overdue); requester_unit: requested by someone of
    this unit. Candidates, their verdicts and releases come loaded (one query per
    relationship, not one per candidate).
    """
    conditions = _review_conditions(
        reviewers_required=reviewers_required,
        resolving=resolving,
        not_by=not_by,
        waiting_for=waiting_for,
        may_resolve=may_resolve,
        ran_before=ran_before,
        case_number=case_number,
        requester_unit=requester_unit,
    )
    rows = session.scalars(
        select(SearchRequest)
        .options(
            selectinload(SearchRequest.candidates).options(
                selectinload(Candidate.verdicts), selectinload(Candidate.release)
            )
        )
        .where(*conditions)
        .order_by(SearchRequest.ran_at, SearchRequest.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), _count(session, conditions)


def overdue_review_lists(
    session: Session, *, reviewers_required: int, ran_before: datetime, resolving: bool = False
) -> list[tuple[int, str, str, datetime | None]]:
    """(search id, case number, requester's username, ran at) of every candidate list still
    under review (as `review_lists_by_page` says) that ran before `ran_before`, oldest
    first: the lists a policy's review_within_days calls overdue."""
    conditions = _review_conditions(
        reviewers_required=reviewers_required,
        resolving=resolving,
        not_by=None,
        waiting_for=None,
        may_resolve=False,
        ran_before=ran_before,
        case_number=None,
        requester_unit=None,
    )
    rows = session.execute(
        select(SearchRequest.id, SearchRequest.case_number, User.username, SearchRequest.ran_at)
        .join(User, User.id == SearchRequest.requester_id)
        .where(*conditions)
        .order_by(SearchRequest.ran_at, SearchRequest.id)
    )
    return [(int(i), str(case), str(user), ran) for i, case, user, ran in rows]


def requests_in_status_by_page(
    session: Session,
    status: str,
    *,
    limit: int,
    offset: int,
    case_number: str | None = None,
    not_by: int | None = None,
) -> tuple[list[SearchRequest], int]:
    """One page of the requests in `status`, oldest first, with how many match in all;
    only those of `case_number`, or not requested by `not_by`, when given."""
    conditions = [SearchRequest.status == status]
    if case_number is not None:
        conditions.append(SearchRequest.case_number == case_number)
    if not_by is not None:
        conditions.append(SearchRequest.requester_id != not_by)
    rows = session.scalars(
        select(SearchRequest)
        .where(*conditions)
        .order_by(SearchRequest.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), _count(session, conditions)


def searches_by_ids(session: Session, ids: Collection[int]) -> dict[int, SearchRequest]:
    """The requests with these ids that still exist, by id."""
    if not ids:
        return {}
    rows = session.scalars(select(SearchRequest).where(SearchRequest.id.in_(ids)))
    return {row.id: row for row in rows}


def leads_without_outcome(
    session: Session, requester_id: int, *, limit: int
) -> tuple[list[tuple[int, int, str, datetime]], int]:
    """(search id, candidate rank, case number, released at) of the oldest `limit` released
    leads of the requester's searches with no outcome recorded yet, and how many in all."""
    recorded = select(LeadOutcome.id).where(LeadOutcome.release_id == Release.id).exists()
    conditions = [SearchRequest.requester_id == requester_id, ~recorded]
    joined = (
        select(SearchRequest.id, Candidate.rank, SearchRequest.case_number, Release.released_at)
        .select_from(Release)
        .join(Candidate, Candidate.id == Release.candidate_id)
        .join(SearchRequest, SearchRequest.id == Candidate.search_id)
        .where(*conditions)
    )
    rows = session.execute(joined.order_by(Release.released_at, Release.id).limit(limit))
    total = session.scalar(
        select(func.count(Release.id))
        .join(Candidate, Candidate.id == Release.candidate_id)
        .join(SearchRequest, SearchRequest.id == Candidate.search_id)
        .where(*conditions)
    )
    return [(int(s), int(r), str(c), at) for s, r, c, at in rows], int(total or 0)


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


def seal_plaintext_probe_templates(
    session: Session, keys: DataKeys, vault: BiometricVault, *, batch_size: int = 1000
) -> int:
    """Seal up to `batch_size` requests' probe templates still stored in the clear (a
    workspace from before encryption at rest) under their probes' keys, made where missing;
    returns how many. For `candor upgrade`, with `gallery.seal_plaintext_templates`: call
    again, committing in between, until it returns 0. A sealed one is never touched again.

    Plain is told from sealed by the sealed header: a float32 template starting with those
    four bytes exactly would need a first value of 3.07e-9 to the last bit."""
    rows = (
        session.connection()
        .execute(
            _plaintext_probe_templates(
                _REQUESTS.id,
                _REQUESTS.probe_sha256,
                _REQUESTS.probe_model_key,
                _REQUESTS.probe_template,
            )
            .order_by(_REQUESTS.id)
            .limit(batch_size)
        )
        .all()
    )
    sealed: list[dict[str, Any]] = []
    for search_id, sha256, model_key, blob in rows:
        key = keys.probe_key(session, sha256, create=True)
        vector = np.frombuffer(blob, dtype="<f4")
        context = probe_template_context(sha256, model_key or "")
        sealed.append(
            {"id": search_id, "probe_template": vault.encode_template(vector, key, context)}
        )
    if sealed:
        session.execute(update(SearchRequest), sealed)
    return len(sealed)


def plaintext_probe_template_count(session: Session) -> int:
    """How many requests' probe templates are still stored in the clear."""
    return int(session.connection().execute(_plaintext_probe_templates(func.count())).scalar() or 0)


def _plaintext_probe_templates(*columns: Any) -> Select[Any]:
    return select(*columns).where(
        _REQUESTS.probe_template.is_not(None),
        func.substr(_REQUESTS.probe_template, 1, len(SEALED_HEADER)) != SEALED_HEADER,
    )


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
    *,
    resolves: bool = False,
) -> Verdict:
    """An examiner's verdict on `candidate`, flushed; `candidate.verdicts` then holds it.

    resolves: the verdict settles a disagreement of the blind verdicts (the policy's
    review.resolve_disagreement_by)."""
    row = Verdict(
        candidate_id=candidate.id,
        examiner_id=examiner_id,
        verdict=verdict,
        rationale=rationale,
        created_at=at,
        resolves=resolves,
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
