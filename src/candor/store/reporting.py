"""The rows reports and the simulation's summary read: plain tuples and counts.

Reports (candor.reports.snapshot) read the log, its checkpoints and the governance rows
in one read transaction (`read_report_rows`); the caller holds the session, so all of
it comes from one snapshot. Rows are read as plain tuples on the session's connection: a
report over tens of thousands of searches must not build an ORM object for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from candor.store.audit_log import checkpoint_notes, entry_bodies
from candor.store.governance import (
    Approval,
    AuditEntry,
    Candidate,
    LeadOutcome,
    PolicyRecord,
    Release,
    SearchRequest,
    User,
    Verdict,
)
from candor.store.models import GalleryImage

# The columns of a search request a report reads, in the order of `ReportRows.searches`.
SEARCH_COLUMNS = (
    "id",
    "kind",
    "requester_id",
    "case_number",
    "offence_category",
    "purpose",
    "requesting_agency",
    "requesting_unit",
    "status",
    "decision",
    "probe_purged_at",
)


@dataclass(frozen=True)
class ReportRows:
    """Everything a report reads from the store, as of one read transaction."""

    entries: list[bytes]  # the log's canonical entries, in order
    notes: list[str]  # signed checkpoint notes, by tree size
    usernames: dict[int, str]  # user id -> username
    units: dict[str, str]  # username -> unit
    searches: Sequence[Row[*tuple[Any, ...]]]  # one tuple per request, SEARCH_COLUMNS
    approvals: dict[int, str]  # search id -> the supervisor's decision
    candidate_counts: dict[int, int]  # search id -> candidates on its list
    verdicts: Sequence[Row[int, int, int, str]]  # (search id, candidate id, examiner id, verdict)
    releases: Sequence[Row[int, int]]  # (search id, candidate id)
    # (candidate id, outcome) of every recorded lead outcome, oldest first: the last one
    # for a candidate is what its requester says came of the lead now.
    lead_outcomes: Sequence[Row[int, str]]
    image_sources: dict[int, str]  # gallery image id -> source type
    policy_sources: Sequence[Row[str, str]]  # (sha256, TOML text) of every policy ever added


def read_report_rows(session: Session) -> ReportRows:
    """The log, checkpoints and governance rows, read in `session`'s transaction."""
    connection = session.connection()
    search = SearchRequest.__table__.c
    return ReportRows(
        entries=entry_bodies(session),
        notes=checkpoint_notes(session),
        usernames={i: name for i, name in session.execute(select(User.id, User.username))},
        units={name: unit for name, unit in session.execute(select(User.username, User.unit))},
        searches=connection.execute(select(*(search[name] for name in SEARCH_COLUMNS))).all(),
        approvals={
            search_id: decision
            for search_id, decision in session.execute(
                select(Approval.search_id, Approval.decision)
            )
        },
        candidate_counts={
            search_id: count
            for search_id, count in session.execute(
                select(Candidate.search_id, func.count()).group_by(Candidate.search_id)
            )
        },
        verdicts=session.execute(
            select(
                Candidate.search_id, Verdict.candidate_id, Verdict.examiner_id, Verdict.verdict
            ).join(Candidate, Candidate.id == Verdict.candidate_id)
        ).all(),
        releases=session.execute(
            select(Candidate.search_id, Release.candidate_id).join(
                Candidate, Candidate.id == Release.candidate_id
            )
        ).all(),
        lead_outcomes=session.execute(
            select(Release.candidate_id, LeadOutcome.outcome)
            .join(LeadOutcome, LeadOutcome.release_id == Release.id)
            .order_by(LeadOutcome.id)
        ).all(),
        image_sources={
            image_id: source
            for image_id, source in session.execute(
                select(GalleryImage.id, GalleryImage.source_type)
            )
        },
        policy_sources=session.execute(select(PolicyRecord.sha256, PolicyRecord.source)).all(),
    )


@dataclass(frozen=True)
class ActivityCounts:
    """Requests and what came of them, counted over the whole store."""

    by_status: dict[str, int]
    denied_decisions: list[dict[str, Any]]  # the decision of each denied request
    approval_decisions: dict[str, int]
    verdicts: dict[str, int]
    lists_reviewed: int  # searches with at least one verdict on a candidate
    candidate_lists: int  # completed searches (not verifications)
    releases: int
    requests_by_user: dict[str, int]  # username -> requests made, by username


def activity_counts(session: Session) -> ActivityCounts:
    """Counts of requests by status, decisions, verdicts and releases, in one transaction."""
    return ActivityCounts(
        by_status=dict(
            session.execute(
                select(SearchRequest.status, func.count()).group_by(SearchRequest.status)
            ).all()
        ),
        denied_decisions=list(
            session.scalars(select(SearchRequest.decision).where(SearchRequest.status == "denied"))
        ),
        approval_decisions=dict(
            session.execute(
                select(Approval.decision, func.count()).group_by(Approval.decision)
            ).all()
        ),
        verdicts=dict(
            session.execute(select(Verdict.verdict, func.count()).group_by(Verdict.verdict)).all()
        ),
        lists_reviewed=session.scalar(
            select(func.count(func.distinct(Candidate.search_id))).join(
                Verdict, Verdict.candidate_id == Candidate.id
            )
        )
        or 0,
        candidate_lists=session.scalar(
            select(func.count())
            .select_from(SearchRequest)
            .where(SearchRequest.status == "completed", SearchRequest.kind == "search")
        )
        or 0,
        releases=session.scalar(select(func.count()).select_from(Release)) or 0,
        requests_by_user=dict(
            session.execute(
                select(User.username, func.count())
                .join(SearchRequest, SearchRequest.requester_id == User.id)
                .group_by(User.username)
                .order_by(User.username)
            ).all()
        ),
    )


def published_entries(session: Session) -> list[tuple[int, bytes]]:
    """(seq, body) of every `report.published` entry, newest first (a handful a year)."""
    query = (
        select(AuditEntry.seq, AuditEntry.body)
        .where(AuditEntry.action == "report.published")
        .order_by(AuditEntry.seq.desc())
    )
    return [(seq, body) for seq, body in session.execute(query)]
