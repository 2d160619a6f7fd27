"""The jobs pages: background jobs with their progress, and cancel and resume buttons.

Served to admins and auditors (the roles that can queue jobs: gallery work, retention
and evaluations); which jobs each one sees and may stop is the workflow's rule
(candor.workflow.jobs): their own, every job for admins and auditors, and only the
requester or an admin cancels or resumes. A job the caller may not see is a 404.

The gallery's web enrolment takes uploaded photos and enrols them at once: a job runs
later, from files its runner can read, so that page has no "run in background" choice
(`candor enrol --background` queues a folder).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from candor.server.api import CallerDep, StateDep, run
from candor.server.errors import USER_ERRORS, RefusedError, as_refused, one_line
from candor.server.state import ServerState
from candor.server.web import render, see
from candor.workflow.jobs import (
    JobNotFoundError,
    JobView,
    cancel_job,
    job_view,
    job_views,
    may_control,
    resume_job,
)

page_router = APIRouter(include_in_schema=False)
JobId = Annotated[int, Path(ge=1, le=2**62)]


def _found(state: ServerState, function: Callable[..., JobView], *args: Any) -> JobView:
    """Call `function` as `run` does, a job the caller may not see being a 404."""
    try:
        return state.call(function, *args)
    except JobNotFoundError as error:
        raise RefusedError(404, one_line(error)) from None
    except USER_ERRORS as error:
        raise as_refused(error) from None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _row(view: JobView, actor: Any) -> dict[str, Any]:
    return {
        "job": view,
        "progress": f"{view.done}" if view.total is None else f"{view.done} of {view.total}",
        "rate": "-" if view.rate is None else f"{view.rate:.2f}/s",
        "to_finish": _duration(view.seconds_left),
        "may_cancel": may_control(actor, view)
        and view.state in ("queued", "running")
        and view.cancel_requested_by is None,
        "may_resume": may_control(actor, view) and _resumable(view),
    }


def _resumable(view: JobView) -> bool:
    """Failed and cancelled jobs, and running ones whose runner stopped renewing its lease."""
    if view.state == "running":
        return view.lease_until is not None and view.lease_until < datetime.now(UTC)
    return view.state in ("failed", "cancelled")


@page_router.get("/jobs")
def jobs_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    actor = who.signed_in
    views = run(state, job_views, state.workflow, actor)
    rows = [_row(view, actor) for view in views]
    return render(request, "jobs.html", title="Jobs", rows=rows)


@page_router.get("/jobs/{job_id}")
def job_page(request: Request, state: StateDep, who: CallerDep, job_id: JobId) -> Response:
    actor = who.signed_in
    view = _found(state, job_view, state.workflow, actor, job_id)
    return render(request, "job.html", title=f"Job {job_id}", row=_row(view, actor))


@page_router.post("/jobs/{job_id}/cancel")
def job_cancel(state: StateDep, who: CallerDep, job_id: JobId) -> Response:
    _found(state, cancel_job, state.workflow, who.signed_in, job_id)
    return see(f"/jobs/{job_id}")


@page_router.post("/jobs/{job_id}/resume")
def job_resume(state: StateDep, who: CallerDep, job_id: JobId) -> Response:
    _found(state, resume_job, state.workflow, who.signed_in, job_id)
    return see(f"/jobs/{job_id}")
