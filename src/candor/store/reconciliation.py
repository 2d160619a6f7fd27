"""The rows the audit log vouches for, read for reconciliation with it.

`audit verify` checks that users, roles, searches, approvals, candidates, verdicts,
releases, gallery images and policies hold what the log's entries imply. Both sides
must come from one moment, so the caller reads the log's entries (`audit_entry_bodies`)
and the rows (`read_reconciled_rows`) in a single read transaction. Rows are plain
tuples: a log of tens of thousands of searches must not build an ORM object per row.

This module also holds the one definition of what the log records of a candidate row
(`CANDIDATE_FIELDS`, `candidate_record`) and of a password hash (`password_digest`), so
the writer and the check cannot drift apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from candor.store.governance import (
    Approval,
    AuditEntry,
    Candidate,
    LeadOutcome,
    PolicyRecord,
    Release,
    SearchRequest,
    User,
    UserRole,
    Verdict,
)
from candor.store.models import GalleryImage

# The order of the values of one candidate in its search's `search.run` entry
# (details "candidate_rows"): internal ids, the threshold flag, and the scores as fixed
# text (the log's canonical JSON carries no floats). No face data, no subject's name.
CANDIDATE_FIELDS = (
    "id",
    "rank",
    "subject_id",
    "image_id",
    "template_id",
    "above_threshold",
    "score",
    "normalised_score",
)
CandidateRecord = list[int | bool | str | None]


def score_text(score: float | None) -> str | None:
    """A score as the log records it: six decimals, or None."""
    return None if score is None else f"{score:.6f}"


def candidate_record(candidate_id: int, columns: Mapping[str, Any]) -> CandidateRecord:
    """One candidate row as its `search.run` entry lists it, in CANDIDATE_FIELDS order.

    columns: the row's values by column name, as inserted (its id comes separately,
        from the insert).
    """
    return [
        candidate_id,
        columns["rank"],
        columns["subject_id"],
        columns["image_id"],
        columns["template_id"],
        bool(columns["above_threshold"]),
        score_text(columns["score"]),
        score_text(columns["normalised_score"]),
    ]


def password_digest(password_hash: str) -> str:
    """The sha256 of a stored (argon2id) password hash: what the log records of it.

    The hash's salt stays in the database, so the digest gives no one a password to guess
    against; it only shows whether the stored hash is the one the log saw set.
    """
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredUser:
    """A users row; the password hash as its digest."""

    id: int
    username: str
    display_name: str
    unit: str
    certificate_ref: str
    certificate_expires: str  # ISO date, as the log writes it
    disabled: bool
    created_by: str
    password_digest: str


@dataclass(frozen=True)
class StoredSearch:
    """The columns of a search_requests row that its request entry records."""

    id: int
    kind: str
    requester_id: int
    case_number: str


@dataclass(frozen=True)
class StoredApproval:
    """An approvals row."""

    id: int
    search_id: int
    supervisor_id: int
    decision: str
    reason: str


@dataclass(frozen=True)
class StoredCandidate:
    """A candidates row."""

    id: int
    search_id: int
    rank: int
    subject_id: int
    image_id: int
    template_id: int
    above_threshold: bool
    score: float
    normalised_score: float | None

    def record(self) -> CandidateRecord:
        """The row as a `search.run` entry lists it."""
        return candidate_record(self.id, asdict(self))


@dataclass(frozen=True)
class StoredVerdict:
    """A verdicts row."""

    id: int
    candidate_id: int
    examiner_id: int
    verdict: str
    rationale: str
    resolves: bool = False


@dataclass(frozen=True)
class StoredOutcome:
    """A lead_outcomes row."""

    id: int
    release_id: int
    outcome: str
    note: str
    recorded_by: int


@dataclass(frozen=True)
class StoredRelease:
    """A releases row."""

    id: int
    candidate_id: int
    released_by: int
    reason: str
    label: str


@dataclass(frozen=True)
class StoredImage:
    """The columns of a gallery_images row that its enrolment entry records."""

    id: int
    subject_id: int
    source_type: str


@dataclass(frozen=True)
class StoredPolicy:
    """A policies row: its recorded sha256, the sha256 of its text, when put in force."""

    id: int
    sha256: str
    text_sha256: str
    activated_at: datetime | None


@dataclass(frozen=True)
class ReconciledRows:
    """Every row `audit verify` reconciles with the log, as of one read transaction."""

    users: tuple[StoredUser, ...]
    roles: tuple[tuple[int, str], ...]  # (user id, role)
    searches: tuple[StoredSearch, ...]
    approvals: tuple[StoredApproval, ...]
    candidates: tuple[StoredCandidate, ...]
    verdicts: tuple[StoredVerdict, ...]
    releases: tuple[StoredRelease, ...]
    images: tuple[StoredImage, ...]
    policies: tuple[StoredPolicy, ...]
    outcomes: tuple[StoredOutcome, ...] = ()


def audit_entry_bodies(session: Session) -> list[bytes]:
    """The log's entries (their canonical bytes), in order."""
    log = AuditEntry.__table__.c
    return [body for (body,) in session.connection().execute(select(log.body).order_by(log.seq))]


def read_reconciled_rows(session: Session) -> ReconciledRows:
    """The rows of every table `audit verify` reconciles, in `session`'s transaction."""
    connection = session.connection()
    users = User.__table__.c
    candidates = Candidate.__table__.c
    policies = PolicyRecord.__table__.c
    return ReconciledRows(
        users=tuple(
            StoredUser(
                id=row.id,
                username=row.username,
                display_name=row.display_name,
                unit=row.unit,
                certificate_ref=row.certificate_ref,
                certificate_expires=row.certificate_expires.isoformat(),
                disabled=bool(row.disabled),
                created_by=row.created_by,
                password_digest=password_digest(row.password_hash),
            )
            for row in connection.execute(
                select(
                    users.id,
                    users.username,
                    users.display_name,
                    users.unit,
                    users.certificate_ref,
                    users.certificate_expires,
                    users.disabled,
                    users.created_by,
                    users.password_hash,
                )
            )
        ),
        roles=tuple(
            (user_id, role)
            for user_id, role in connection.execute(select(UserRole.user_id, UserRole.role))
        ),
        searches=tuple(
            StoredSearch(*row)
            for row in connection.execute(
                select(
                    SearchRequest.id,
                    SearchRequest.kind,
                    SearchRequest.requester_id,
                    SearchRequest.case_number,
                )
            )
        ),
        approvals=tuple(
            StoredApproval(*row)
            for row in connection.execute(
                select(
                    Approval.id,
                    Approval.search_id,
                    Approval.supervisor_id,
                    Approval.decision,
                    Approval.reason,
                )
            )
        ),
        candidates=tuple(
            StoredCandidate(
                row.id,
                row.search_id,
                row.rank,
                row.subject_id,
                row.image_id,
                row.template_id,
                bool(row.above_threshold),
                row.score,
                row.normalised_score,
            )
            for row in connection.execute(
                select(
                    candidates.id,
                    candidates.search_id,
                    candidates.rank,
                    candidates.subject_id,
                    candidates.image_id,
                    candidates.template_id,
                    candidates.above_threshold,
                    candidates.score,
                    candidates.normalised_score,
                )
            )
        ),
        verdicts=tuple(
            StoredVerdict(*row)
            for row in connection.execute(
                select(
                    Verdict.id,
                    Verdict.candidate_id,
                    Verdict.examiner_id,
                    Verdict.verdict,
                    Verdict.rationale,
                    Verdict.resolves,
                )
            )
        ),
        releases=tuple(
            StoredRelease(*row)
            for row in connection.execute(
                select(
                    Release.id,
                    Release.candidate_id,
                    Release.released_by,
                    Release.reason,
                    Release.label,
                )
            )
        ),
        outcomes=tuple(
            StoredOutcome(*row)
            for row in connection.execute(
                select(
                    LeadOutcome.id,
                    LeadOutcome.release_id,
                    LeadOutcome.outcome,
                    LeadOutcome.note,
                    LeadOutcome.recorded_by,
                )
            )
        ),
        images=tuple(
            StoredImage(*row)
            for row in connection.execute(
                select(GalleryImage.id, GalleryImage.subject_id, GalleryImage.source_type)
            )
        ),
        policies=tuple(
            StoredPolicy(
                row.id,
                row.sha256,
                hashlib.sha256(row.source.encode("utf-8")).hexdigest(),
                row.activated_at,
            )
            for row in connection.execute(
                select(policies.id, policies.sha256, policies.source, policies.activated_at)
            )
        ),
    )
