"""Background jobs: bulk enrolment, re-enrolment, an evaluation or a retention run, queued
by a person and run later by a job runner (candor.workflow.jobs). Revision 0009_jobs.

- jobs: id, kind, state, who asked (user id and username), when, the action's parameters
  (JSON: what the direct action was given), progress (total, done, refused, cursor: the
  items finished, so a resumed job starts after them; rate in items per second over the
  current run), the runner's lease (owner, until, last heartbeat), a cancellation asked
  for (by whom, when), and the outcome (result JSON, error).

A runner claims a job with a lease: on PostgreSQL with SELECT ... FOR UPDATE SKIP LOCKED,
so two runners never take the same row; on SQLite inside the write transaction
(`session.begin()` is BEGIN IMMEDIATE), which serialises claims. A runner that dies
stops renewing its lease; once it has run out, any runner claims the job again and
continues from its cursor. Every write of progress names the lease owner, so a runner
whose job was taken over (its lease expired, or `candor jobs resume`) learns it at its
next batch and stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    Index,
    Integer,
    String,
    Text,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.store.models import NEVER_REUSED_IDS, Base, UTCDateTime, _sql_list

JOB_KINDS: Final = ("enrol", "reenrol", "evaluate", "retention")
QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
JOB_STATES: Final = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED_STATES: Final = (DONE, FAILED, CANCELLED)


class Job(Base):
    """One background job and its progress."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_sql_list(JOB_KINDS)})", name="kind_known"),
        CheckConstraint(f"state IN ({_sql_list(JOB_STATES)})", name="state_known"),
        CheckConstraint("done >= 0 AND refused >= 0 AND cursor >= 0", name="progress_counts"),
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_requested_by_id", "requested_by", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_by_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


def add_job(
    session: Session,
    *,
    kind: str,
    requested_by: str,
    requested_by_id: int,
    params: Mapping[str, Any],
    total: int | None,
    now: datetime,
) -> Job:
    """Queue a job; its id is set on return (flushed)."""
    job = Job(
        kind=kind,
        state=QUEUED,
        requested_by=requested_by,
        requested_by_id=requested_by_id,
        created_at=now,
        params=dict(params),
        total=total,
        done=0,
        refused=0,
        cursor=0,
    )
    session.add(job)
    session.flush()
    return job


def job_by_id(session: Session, job_id: int) -> Job | None:
    """The job with this id, or None."""
    return session.get(Job, job_id)


def list_jobs(
    session: Session, *, requested_by: str | None = None, limit: int | None = None
) -> list[Job]:
    """Jobs newest first, only one person's when `requested_by` is given."""
    query = select(Job).order_by(Job.id.desc())
    if requested_by is not None:
        query = query.where(Job.requested_by == requested_by)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def claim_job(session: Session, *, owner: str, now: datetime, lease_until: datetime) -> Job | None:
    """Take the oldest job that is queued, or running under a lease that ran out.

    Call inside `session.begin()`: on SQLite that transaction holds the write lock; on
    PostgreSQL the row is locked and rows other runners hold are skipped.
    """
    query = (
        select(Job)
        .where(
            or_(
                Job.state == QUEUED,
                (Job.state == RUNNING) & or_(Job.lease_until.is_(None), Job.lease_until < now),
            )
        )
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job = session.scalars(query).first()
    if job is None:
        return None
    job.state = RUNNING
    job.lease_owner = owner
    job.lease_until = lease_until
    job.heartbeat_at = now
    if job.started_at is None:
        job.started_at = now
    job.rate = None
    session.flush()
    return job


def renew_lease(
    session: Session,
    job_id: int,
    *,
    owner: str,
    now: datetime,
    lease_until: datetime,
    progress: Mapping[str, Any] | None = None,
) -> bool:
    """Extend the lease and write progress; False when `owner` no longer holds the job."""
    values: dict[str, Any] = {"heartbeat_at": now, "lease_until": lease_until, **(progress or {})}
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.state == RUNNING)
        .values(**values)
    )
    return bool(getattr(changed, "rowcount", 0))


def cancel_requested(session: Session, job_id: int) -> bool:
    """Whether someone asked to cancel the job."""
    asked = session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id))
    return asked is not None


def finish_job(
    session: Session,
    job_id: int,
    *,
    owner: str,
    state: str,
    now: datetime,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """End the job in `state` (done, failed, cancelled) if `owner` still holds it."""
    if state not in FINISHED_STATES:
        raise ValueError(f"{state!r} is not a finished state")
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.state == RUNNING)
        .values(
            state=state,
            finished_at=now,
            lease_owner=None,
            lease_until=None,
            result=None if result is None else dict(result),
            error=error,
        )
    )
    return bool(getattr(changed, "rowcount", 0))


def mark_cancel(session: Session, job: Job, *, by: str, now: datetime) -> None:
    """Ask for the job to stop: a queued job ends at once, a running one between batches."""
    job.cancel_requested_by = by
    job.cancel_requested_at = now
    if job.state == QUEUED:
        job.state = CANCELLED
        job.finished_at = now
    session.flush()


def release_for_resume(session: Session, job: Job) -> None:
    """Make the job claimable again from its cursor (the runner holding it is gone)."""
    job.state = QUEUED
    job.lease_owner = None
    job.lease_until = None
    job.finished_at = None
    job.error = None
    job.cancel_requested_by = None
    job.cancel_requested_at = None
    session.flush()


def jobs_in_states(session: Session, states: Sequence[str]) -> int:
    """How many jobs are in any of `states`."""
    return len(list(session.scalars(select(Job.id).where(Job.state.in_(states)))))
