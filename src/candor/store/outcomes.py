"""What came of released leads (model `LeadOutcome` in candor.store.governance): the
requester's records, newest standing, earlier ones kept as history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from candor.store.governance import LEAD_OUTCOMES, LeadOutcome, Release

# The count of released leads with no outcome recorded yet, beside LEAD_OUTCOMES's.
NOT_RECORDED = "not_recorded"


def add_lead_outcome(
    session: Session,
    release: Release,
    outcome: str,
    note: str,
    recorded_by: int,
    at: datetime,
) -> LeadOutcome:
    """A new outcome of `release`, flushed; it stands from now, the earlier ones stay."""
    row = LeadOutcome(
        release_id=release.id,
        outcome=outcome,
        note=note,
        recorded_by=recorded_by,
        recorded_at=at,
    )
    session.add(row)
    session.flush()
    session.refresh(release)
    return row


def lead_outcome_counts(
    session: Session, released_from: datetime, released_to: datetime
) -> dict[str, int]:
    """How many leads released in [released_from, released_to) stand at each outcome: the
    newest outcome recorded for each (by id), every one of LEAD_OUTCOMES as a key (0 when
    none), and NOT_RECORDED for the leads with no outcome recorded.

    For the oversight report ("what came of each lead"); the outcome that stands is the
    newest recorded by now, whenever it was recorded.
    """
    newest = (
        select(LeadOutcome.release_id, func.max(LeadOutcome.id).label("newest"))
        .group_by(LeadOutcome.release_id)
        .subquery()
    )
    rows = session.execute(
        select(LeadOutcome.outcome, func.count(Release.id))
        .select_from(Release)
        .outerjoin(newest, newest.c.release_id == Release.id)
        .outerjoin(LeadOutcome, LeadOutcome.id == newest.c.newest)
        .where(Release.released_at >= released_from, Release.released_at < released_to)
        .group_by(LeadOutcome.outcome)
    )
    counts = dict.fromkeys((*LEAD_OUTCOMES, NOT_RECORDED), 0)
    for outcome, count in rows:
        counts[NOT_RECORDED if outcome is None else str(outcome)] += int(count)
    return counts


__all__ = ["NOT_RECORDED", "add_lead_outcome", "lead_outcome_counts"]
