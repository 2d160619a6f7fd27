"""One consistent read of everything a report needs: the log, its checkpoints, the store.

All of it is read in a single database transaction, so the log and the rows it is
reconciled with come from the same moment (SQLite in WAL mode gives a read transaction a
fixed snapshot). Rows are read as plain tuples: a report over tens of thousands of
searches must not build an ORM object for each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from candor.store import (
    Approval,
    AuditCheckpoint,
    AuditEntry,
    Candidate,
    GalleryImage,
    PolicyRecord,
    Release,
    ReportCard,
    SearchRequest,
    User,
    Verdict,
    Workspace,
)


@dataclass(frozen=True)
class StoredSearch:
    """A search_requests row, reduced to what the log also records."""

    search_id: int
    kind: str
    requester: str
    case_number: str
    offence_category: str
    purpose: str
    requesting_agency: str
    requesting_unit: str
    status: str
    outcome: str | None
    reasons: tuple[str, ...]
    approval: str | None
    probe_purged: bool


@dataclass(frozen=True)
class StoredReportCard:
    """The latest accuracy report card recorded in the store."""

    created_at: datetime
    dataset: str
    dataset_sha256: str
    model_key: str
    settings: dict[str, object]
    result: dict[str, object]
    dataset_limits: str


@dataclass
class StoreSnapshot:
    """The log, its checkpoints and the store's rows, as of one read transaction."""

    purpose: str
    timezone: str
    entries: list[bytes]
    notes: list[str]
    units: dict[str, str]
    searches: dict[int, StoredSearch]
    candidates: dict[int, int]
    verdicts: dict[int, set[tuple[int, str, str]]]
    releases: dict[int, set[int]]
    images: dict[int, str]
    home_agencies: dict[str, str]
    report_card: StoredReportCard | None = None


def read_snapshot(workspace: Workspace) -> StoreSnapshot:
    """Read the log, checkpoints and governance rows of `workspace` in one transaction."""
    # Reads only: an autobegun session, one snapshot, no write lock (begin() takes it).
    with workspace.session() as session:
        # Core rows on the session's connection: the ORM's per-row loading would cost
        # more than everything else here on a log of tens of thousands of entries.
        connection = session.connection()
        log = AuditEntry.__table__.c
        entries = [body for (body,) in connection.execute(select(log.body).order_by(log.seq))]
        notes = list(
            session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size))
        )
        usernames = {i: name for i, name in session.execute(select(User.id, User.username))}
        units = {name: unit for name, unit in session.execute(select(User.username, User.unit))}
        return StoreSnapshot(
            purpose=workspace.purpose,
            timezone=workspace.timezone,
            entries=entries,
            notes=notes,
            units=units,
            searches=_searches(session, usernames),
            candidates=_candidate_counts(session),
            verdicts=_verdicts(session, usernames),
            releases=_releases(session),
            images={
                image_id: source
                for image_id, source in session.execute(
                    select(GalleryImage.id, GalleryImage.source_type)
                )
            },
            home_agencies=_home_agencies(session),
            report_card=_latest_report_card(session),
        )


def _searches(session: Session, usernames: dict[int, str]) -> dict[int, StoredSearch]:
    approvals = {
        search_id: decision
        for search_id, decision in session.execute(select(Approval.search_id, Approval.decision))
    }
    column = SearchRequest.__table__.c
    rows = session.connection().execute(
        select(
            column.id,
            column.kind,
            column.requester_id,
            column.case_number,
            column.offence_category,
            column.purpose,
            column.requesting_agency,
            column.requesting_unit,
            column.status,
            column.decision,
            column.probe_purged_at,
        )
    )
    searches = {}
    for row in rows:
        search_id, kind, requester_id, case, offence, purpose, agency, unit = row[:8]
        status, decision, purged_at = row[8:]
        reasons = decision.get("reasons") if isinstance(decision, dict) else None
        outcome = decision.get("outcome") if isinstance(decision, dict) else None
        searches[search_id] = StoredSearch(
            search_id=search_id,
            kind=kind,
            requester=usernames.get(requester_id, f"user id {requester_id}"),
            case_number=case,
            offence_category=offence,
            purpose=purpose,
            requesting_agency=agency,
            requesting_unit=unit,
            status=status,
            outcome=outcome if isinstance(outcome, str) else None,
            reasons=tuple(
                str(reason.get("code")) for reason in reasons or [] if isinstance(reason, dict)
            ),
            approval=approvals.get(search_id),
            probe_purged=purged_at is not None,
        )
    return searches


def _candidate_counts(session: Session) -> dict[int, int]:
    rows = session.execute(select(Candidate.search_id, func.count()).group_by(Candidate.search_id))
    return {search_id: count for search_id, count in rows}


def _verdicts(session: Session, usernames: dict[int, str]) -> dict[int, set[tuple[int, str, str]]]:
    rows = session.execute(
        select(
            Candidate.search_id, Verdict.candidate_id, Verdict.examiner_id, Verdict.verdict
        ).join(Candidate, Candidate.id == Verdict.candidate_id)
    )
    verdicts: dict[int, set[tuple[int, str, str]]] = defaultdict(set)
    for search_id, candidate_id, examiner_id, verdict in rows:
        examiner = usernames.get(examiner_id, f"user id {examiner_id}")
        verdicts[search_id].add((candidate_id, examiner, verdict))
    return dict(verdicts)


def _releases(session: Session) -> dict[int, set[int]]:
    rows = session.execute(
        select(Candidate.search_id, Release.candidate_id).join(
            Candidate, Candidate.id == Release.candidate_id
        )
    )
    releases: dict[int, set[int]] = defaultdict(set)
    for search_id, candidate_id in rows:
        releases[search_id].add(candidate_id)
    return dict(releases)


def _home_agencies(session: Session) -> dict[str, str]:
    """policy sha256 -> its home agency, read from the policy text as it was added.

    Reports may not use the policy part, so the one value needed is read with tomllib;
    the text was validated by the policy parser when the policy was added.
    """
    import tomllib

    agencies = {}
    for sha256, source in session.execute(select(PolicyRecord.sha256, PolicyRecord.source)):
        try:
            agency = tomllib.loads(source)["agency"]["home_agency"]
        except (tomllib.TOMLDecodeError, KeyError, TypeError):
            continue
        if isinstance(agency, str):
            agencies[sha256] = agency
    return agencies


def _latest_report_card(session: Session) -> StoredReportCard | None:
    card = session.scalar(
        select(ReportCard).order_by(ReportCard.created_at.desc(), ReportCard.id.desc()).limit(1)
    )
    if card is None:
        return None
    return StoredReportCard(
        created_at=card.created_at,
        dataset=card.dataset,
        dataset_sha256=card.dataset_sha256,
        model_key=card.model_key,
        settings=dict(card.settings),
        result=dict(card.result),
        dataset_limits=card.dataset_limits,
    )
