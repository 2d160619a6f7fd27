"""Background jobs: bulk enrolment, re-enrolment, an evaluation or a retention run, queued
now and run by a job runner, with the same permission checks and audit entries as the
direct action.

Queueing (`queue_enrolment`, `queue_reenrolment`, `queue_evaluation`, `queue_retention`)
checks what the direct action checks before any work (permission, provenance, the
folder), stores the action's parameters in a `jobs` row and records `job.queued` naming
who asked, in one transaction. A runner (`JobRunner`: `candor jobs run`, or the one
`candor serve` starts as a process of its own) claims a job with a lease and runs the
same workflow function the direct action calls, as the person who asked: their
permission is checked again when it runs, and every audit entry names them, exactly as
if they had run it themselves. Bulk enrolment goes in batches of files, each one
`enrol_files` call (one short transaction per photo and the batch's
`gallery.enrolment_batch` entry); re-enrolment in `reenrol`'s own batches; an evaluation
and a retention run are one unit each. No runner transaction lasts longer than one
photo's rows, and the runner never touches a server's index or lock, so searches go on.

Progress lives in the job row: items done (the cursor a resumed job starts after),
refused, the rate of the current run, and from them what is left and the time to finish.
A runner renews its lease from a heartbeat thread; a runner that dies stops renewing,
and once the lease has run out (LEASE_SECONDS) any runner takes the job on from its
cursor. `resume_job` hands a job back at once (the runner is known to be gone, or the
job failed or was cancelled). Enrolment skips a photo already in the gallery, so a
photo committed just before a crash is not enrolled twice.

Cancelling takes effect between batches (between photos of re-enrolment; an evaluation
stops at its next progress step and records nothing; a retention run, once started,
finishes).

Who sees and controls which job (the roles of candor.policy.roles):
- the person who queued it sees it, and may cancel and resume it;
- admins see every job and may cancel and resume any (they run the gallery, and a
  runaway job must be stoppable by someone other than its requester);
- auditors see every job, read-only (their work is checking what was done, and a job's
  entries are in the log they read; they queue only evaluations of their own);
- analysts, examiners and supervisors see only their own: the jobs' kinds are gallery,
  evaluation and retention work, not casework, so a supervisor has no oversight role
  over them.
A job another person may not see is reported as not found, never as forbidden.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy.orm import Session

from candor.evaluation.report_card import EvaluationOptions
from candor.store import Provenance, WorkspaceBusyError, user_by_id
from candor.store.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED_STATES,
    QUEUED,
    RUNNING,
    Job,
    add_job,
    cancel_requested,
    claim_job,
    finish_job,
    job_by_id,
    list_jobs,
    mark_cancel,
    release_for_resume,
    renew_lease,
)
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.enrolment import (
    EnrolmentOutcome,
    EnrolmentRequest,
    EnrolmentStatus,
    check_enrolment,
    enrol_files,
)
from candor.workflow.errors import NotFoundError, WorkflowError
from candor.workflow.evaluation_ops import require_evaluator, run_evaluation
from candor.workflow.permissions import PermissionDeniedError, require_permission
from candor.workflow.reenrol import Refused, model_target, recipe_census, reenrol, reenrol_model
from candor.workflow.retention import run_retention

log = logging.getLogger(__name__)

LEASE_SECONDS: Final = 60.0
DEFAULT_BATCH: Final = 16
POLL_SECONDS: Final = 2.0

# Roles that see every job; of them, those that may also cancel and resume any job.
SEE_ALL_ROLES: Final = frozenset({"admin", "auditor"})
CONTROL_ALL_ROLES: Final = frozenset({"admin"})


class JobNotFoundError(NotFoundError):
    """No such job, or one the actor may not see."""


class JobStateError(WorkflowError):
    """The job is not in a state that allows this (cancel a finished job, say)."""


class _StopError(Exception):
    """Internal: the job must stop between batches (cancelled, or its lease was lost)."""

    def __init__(self, lost: bool) -> None:
        self.lost = lost
        super().__init__("lease lost" if lost else "cancelled")


@dataclass(frozen=True)
class JobView:
    """A job as people see it: what, whose, and how far it has got."""

    id: int
    kind: str
    state: str
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total: int | None
    done: int
    refused: int
    left: int | None
    rate: float | None  # items per second in the current (or last) run
    seconds_left: float | None
    cancel_requested_by: str | None
    description: str
    result: dict[str, Any] | None
    error: str | None
    lease_until: datetime | None


def _view(job: Job) -> JobView:
    left = None if job.total is None else max(job.total - job.done, 0)
    seconds_left = None
    if left is not None and job.rate and job.state == RUNNING:
        seconds_left = left / job.rate
    return JobView(
        id=job.id,
        kind=job.kind,
        state=job.state,
        requested_by=job.requested_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        total=job.total,
        done=job.done,
        refused=job.refused,
        left=left,
        rate=job.rate,
        seconds_left=seconds_left,
        cancel_requested_by=job.cancel_requested_by,
        description=_describe(job.kind, job.params),
        result=job.result,
        error=job.error,
        lease_until=job.lease_until,
    )


def _describe(kind: str, params: Mapping[str, Any]) -> str:
    if kind == "enrol" and "nist" in params:
        nist = params["nist"]
        return f"enrol {nist['photos']} photo(s) from {nist['path']} ({nist['source_type']})"
    if kind == "enrol":
        files = params.get("files", [])
        sources = {
            entry[2]["source_type"] for entry in files if len(entry) > 2 and entry[2] is not None
        }
        if any(len(entry) <= 2 or entry[2] is None for entry in files):
            sources.add((params.get("provenance") or {}).get("source_type"))
        return f"enrol {len(files)} file(s) ({', '.join(sorted(map(str, sources)))})"
    if kind == "reenrol":
        model = params.get("target_model")
        if model is not None:
            return f"re-enrol the gallery with model {model}, then switch to it"
        return "re-enrol stale templates"
    if kind == "evaluate":
        return f"evaluate {params.get('dataset')}"
    return "retention run"


# --- queueing ---------------------------------------------------------------------------


def _queue(
    workflow: Workflow,
    actor: Actor,
    kind: str,
    params: Mapping[str, Any],
    total: int | None,
    details: Mapping[str, object],
) -> JobView:
    with workflow.workspace.session() as session, session.begin():
        job = add_job(
            session,
            kind=kind,
            requested_by=actor.username,
            requested_by_id=actor.user_id,
            params=params,
            total=total,
            now=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "job.queued",
            {"job": job.id},
            {"kind": kind, **details},
        )
        return _view(job)


def _provenance_json(provenance: Provenance) -> dict[str, str]:
    return {
        "source_type": provenance.source_type,
        "source_ref": provenance.source_ref,
        "legal_basis": provenance.legal_basis,
        "collected_on": provenance.collected_on.isoformat(),
        "retain_until": provenance.retain_until.isoformat(),
    }


def _provenance_of(params: Mapping[str, Any]) -> Provenance | None:
    given = params.get("provenance")
    return None if given is None else _provenance_from_json(given)


def _provenance_from_json(given: Mapping[str, str]) -> Provenance:
    return Provenance(
        source_type=given["source_type"],
        source_ref=given["source_ref"],
        legal_basis=given["legal_basis"],
        collected_on=date.fromisoformat(given["collected_on"]),
        retain_until=date.fromisoformat(given["retain_until"]),
    )


def queue_enrolment(
    workflow: Workflow,
    actor: Actor,
    requests: Sequence[EnrolmentRequest],
    provenance: Provenance | None,
    *,
    face_index: int | None = None,
) -> JobView:
    """Queue a bulk enrolment; permission, provenance and references are checked now.

    A request's own provenance and origin travel with its file in the job's params; the
    runner checks them again when it runs (the policy may have changed meanwhile).
    """
    if not requests:
        raise WorkflowError("no photos to enrol")
    # Every check enrol_files makes before reading a photo (permission, limits, each
    # photo's provenance against the purpose and the policy); records nothing.
    checked = check_enrolment(workflow, actor, requests, provenance)
    for request in requests:
        if not request.path.is_file():
            where = f"{request.origin}: " if request.origin is not None else ""
            raise WorkflowError(f"{where}{request.path} is not a file")
    params = {
        "files": [_enrol_file_json(request) for request in requests],
        "provenance": None if provenance is None else _provenance_json(provenance),
        "face_index": face_index,
    }
    details = {
        "files": len(requests),
        "source_type": ", ".join(sorted({item.source_type for item in checked})),
    }
    return _queue(workflow, actor, "enrol", params, len(requests), details)


def _enrol_file_json(request: EnrolmentRequest) -> list[Any]:
    """[path, subject] or, with a photo's own provenance or origin, [path, subject,
    provenance or None, origin or None] (jobs queued before either existed stay readable)."""
    entry: list[Any] = [str(request.path.absolute()), request.subject_ref]
    if request.provenance is not None or request.origin is not None:
        own = None if request.provenance is None else _provenance_json(request.provenance)
        entry += [own, request.origin]
    return entry


def _enrol_request_of(entry: Sequence[Any]) -> EnrolmentRequest:
    path, subject_ref = entry[0], entry[1]
    own = entry[2] if len(entry) > 2 else None
    origin = entry[3] if len(entry) > 3 else None
    provenance = None if own is None else _provenance_from_json(own)
    return EnrolmentRequest(Path(path), subject_ref, provenance=provenance, origin=origin)


def queue_nist_enrolment(
    workflow: Workflow, actor: Actor, nist: Mapping[str, Any], *, photos: int, source_type: str
) -> JobView:
    """Queue an ANSI/NIST import that `candor.workflow.nist_import.enrol_nist` has checked.

    The job keeps where the file is and how to read it, never the photos: the runner reads
    the file again (`nist_import.job_requests`), so no plaintext photo waits on disk.
    """
    params: dict[str, Any] = {"files": [], "provenance": None, "face_index": None}
    params["nist"] = dict(nist)
    details = {"files": photos, "source_type": source_type}
    return _queue(workflow, actor, "enrol", params, photos, details)


def queue_reenrolment(workflow: Workflow, actor: Actor, *, model: str | None = None) -> JobView:
    """Queue a re-enrolment of the stale templates (gallery admins), or with `model`: every
    photo's template made with that model, then the switch to it (`reenrol_model`; the
    model's refusals are made now, before anything is queued)."""
    if model is not None:
        model_key, missing = model_target(workflow, actor, model)
        params = {"target_model": model, "model_key": model_key, "recipe": workflow.recipe.key}
        details = {"model": model, "model_key": model_key, "photos_without_template": missing}
        return _queue(workflow, actor, "reenrol", params, missing, details)
    census = recipe_census(workflow, actor)
    params = {"model": census.model_key, "recipe": census.recipe}
    details = {"stale": census.stale, "recipe": census.recipe}
    return _queue(workflow, actor, "reenrol", params, census.stale, details)


def queue_evaluation(
    workflow: Workflow,
    actor: Actor,
    dataset: Path,
    *,
    options: EvaluationOptions | None = None,
    groups_file: Path | None = None,
    workers: int = 1,
) -> JobView:
    """Queue an evaluation of a labelled folder (admins and auditors)."""
    require_evaluator(workflow, actor)
    if not dataset.is_dir():
        raise WorkflowError(f"{dataset} is not a folder")
    if groups_file is not None and not groups_file.is_file():
        raise WorkflowError(f"the groups file {groups_file} is not a file")
    chosen = options or EvaluationOptions()
    params = {
        "dataset": str(dataset.absolute()),
        "groups_file": None if groups_file is None else str(groups_file.absolute()),
        "workers": workers,
        "options": {
            "replicates": chosen.replicates,
            "seed": chosen.seed,
            "level": chosen.level,
            "candidate_list_length": chosen.candidate_list_length,
            "deployment_threshold": chosen.deployment_threshold,
            "limits": chosen.limits,
            "protocol": chosen.protocol,
            "half": chosen.half,
        },
    }
    return _queue(workflow, actor, "evaluate", params, 1, {"dataset": params["dataset"]})


def queue_retention(workflow: Workflow, actor: Actor) -> JobView:
    """Queue a retention run (the policy's `retention.run`)."""
    require_permission(workflow, actor, "retention.run")
    return _queue(workflow, actor, "retention", {}, 1, {})


# --- seeing and controlling -------------------------------------------------------------


def _may_see(actor: Actor, job: Job) -> bool:
    return job.requested_by == actor.username or bool(actor.roles & SEE_ALL_ROLES)


def _may_control(actor: Actor, job: Job) -> bool:
    return job.requested_by == actor.username or bool(actor.roles & CONTROL_ALL_ROLES)


def _require_active(actor: Actor) -> None:
    if actor.disabled:
        raise PermissionDeniedError(f"{actor.username} is disabled")


def _visible(session: Session, actor: Actor, job_id: int) -> Job:
    job = job_by_id(session, job_id)
    if job is None or not _may_see(actor, job):
        raise JobNotFoundError(f"no job {job_id}")
    return job


def job_views(workflow: Workflow, actor: Actor, *, limit: int | None = 100) -> list[JobView]:
    """The jobs the actor may see, newest first."""
    _require_active(actor)
    mine_only = None if actor.roles & SEE_ALL_ROLES else actor.username
    with workflow.workspace.session() as session:
        return [_view(job) for job in list_jobs(session, requested_by=mine_only, limit=limit)]


def job_view(workflow: Workflow, actor: Actor, job_id: int) -> JobView:
    """One job, if the actor may see it (JobNotFoundError otherwise)."""
    _require_active(actor)
    with workflow.workspace.session() as session:
        return _view(_visible(session, actor, job_id))


def may_control(actor: Actor, view: JobView) -> bool:
    """Whether the actor may cancel and resume this job (for pages to offer the buttons)."""
    return view.requested_by == actor.username or bool(actor.roles & CONTROL_ALL_ROLES)


def cancel_job(workflow: Workflow, actor: Actor, job_id: int) -> JobView:
    """Ask a job to stop: a queued job ends now, a running one after its current batch."""
    _require_active(actor)
    with workflow.workspace.session() as session, session.begin():
        job = _visible(session, actor, job_id)
        if not _may_control(actor, job):
            raise PermissionDeniedError(
                f"{actor.username} may not cancel job {job_id} (only {job.requested_by} "
                "or an admin may)"
            )
        if job.state in FINISHED_STATES:
            raise JobStateError(f"job {job_id} has already ended ({job.state})")
        mark_cancel(session, job, by=actor.username, now=workflow.now())
        record(
            session,
            workflow,
            actor.username,
            "job.cancelled",
            {"job": job.id},
            {"kind": job.kind, "state": job.state, "done": job.done},
        )
        return _view(job)


def resume_job(workflow: Workflow, actor: Actor, job_id: int) -> JobView:
    """Hand a job back to the queue to continue from its cursor.

    For a job whose runner is known to be gone (before its lease runs out), or one that
    failed or was cancelled. A runner still holding it notices at its next batch and
    stops, so no item is done by two runners beyond the one in hand (and enrolment skips
    a photo already in the gallery).
    """
    _require_active(actor)
    with workflow.workspace.session() as session, session.begin():
        job = _visible(session, actor, job_id)
        if not _may_control(actor, job):
            raise PermissionDeniedError(
                f"{actor.username} may not resume job {job_id} (only {job.requested_by} "
                "or an admin may)"
            )
        if job.state in (DONE, QUEUED):
            raise JobStateError(f"job {job_id} is {job.state}; there is nothing to resume")
        was = job.state
        release_for_resume(session, job)
        record(
            session,
            workflow,
            actor.username,
            "job.resumed",
            {"job": job.id},
            {"kind": job.kind, "was": was, "done": job.done},
        )
        return _view(job)


# --- running ----------------------------------------------------------------------------


@dataclass
class _Claimed:
    id: int
    kind: str
    params: dict[str, Any]
    requested_by_id: int
    cursor: int
    done: int
    refused: int
    result: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    done_at_start: int = 0


ItemHook = Callable[[int, int], None]


class JobRunner:
    """Claims queued jobs and runs them, one at a time, in this process.

    owner: names this runner in the leases it takes (default: host, pid and a random part).
    batch_size: files per enrolment batch, photos per re-enrolment transaction.
    on_item: called with (job id, items done) after each item; for progress displays and
        tests that need the runner caught in the middle of a batch.
    """

    def __init__(
        self,
        workflow: Workflow,
        *,
        owner: str | None = None,
        batch_size: int = DEFAULT_BATCH,
        lease_seconds: float = LEASE_SECONDS,
        on_item: ItemHook | None = None,
    ) -> None:
        if batch_size < 1:
            raise WorkflowError("the batch size must be 1 or more")
        self.workflow = workflow
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.on_item = on_item

    def run_until_empty(self) -> list[JobView]:
        """Run jobs until none is waiting; returns them as they ended."""
        finished = []
        while (view := self.run_one()) is not None:
            finished.append(view)
        return finished

    def run_forever(self, stop: threading.Event, poll_seconds: float = POLL_SECONDS) -> None:
        """Run jobs as they come until `stop` is set (checked between jobs and polls)."""
        while not stop.is_set():
            try:
                ran = self.run_one()
            except WorkspaceBusyError:
                ran = None
            except Exception:
                # The database went away for a moment, say: a runner beside a server
                # keeps going, and a job it held is taken on again once its lease ends.
                log.exception("the job runner failed; trying again")
                ran = None
            if ran is None:
                stop.wait(poll_seconds)

    def run_one(self) -> JobView | None:
        """Claim the oldest waiting job and run it to its end; None when none waits."""
        claimed = self._claim()
        if claimed is None:
            return None
        with self._heartbeat(claimed.id):
            state, result, error = self._run(claimed)
        with self.workflow.workspace.session() as session, session.begin():
            finish_job(
                session,
                claimed.id,
                owner=self.owner,
                state=state,
                now=self.workflow.now(),
                result=result,
                error=error,
            )
        with self.workflow.workspace.session() as session:
            job = job_by_id(session, claimed.id)
            assert job is not None
            return _view(job)

    def _claim(self) -> _Claimed | None:
        now = self.workflow.now()
        with self.workflow.workspace.session() as session, session.begin():
            job = claim_job(session, owner=self.owner, now=now, lease_until=now + self.lease)
            if job is None:
                return None
            return _Claimed(
                id=job.id,
                kind=job.kind,
                params=dict(job.params),
                requested_by_id=job.requested_by_id,
                cursor=job.cursor,
                done=job.done,
                refused=job.refused,
                result=dict(job.result or {}),
                done_at_start=job.done,
            )

    @contextmanager
    def _heartbeat(self, job_id: int) -> Iterator[None]:
        """Renew the lease every third of its length while the job runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    self._renew(job_id)
                except Exception:  # a missed beat is retried; the lease is long enough
                    log.warning("job %s: heartbeat failed", job_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"job-{job_id}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _renew(self, job_id: int, progress: Mapping[str, Any] | None = None) -> bool:
        now = self.workflow.now()
        with self.workflow.workspace.session() as session, session.begin():
            return renew_lease(
                session,
                job_id,
                owner=self.owner,
                now=now,
                lease_until=now + self.lease,
                progress=progress,
            )

    @staticmethod
    def _progress(job: _Claimed) -> dict[str, Any]:
        elapsed = time.monotonic() - job.started
        rate = (job.done - job.done_at_start) / elapsed if elapsed > 0 else None
        return {
            "cursor": job.cursor,
            "done": job.done,
            "refused": job.refused,
            "rate": rate,
            "result": dict(job.result),
        }

    def _checkpoint(self, job: _Claimed) -> None:
        """Between batches: write progress, and stop when cancelled or taken over."""
        if not self._renew(job.id, self._progress(job)):
            raise _StopError(lost=True)
        with self.workflow.workspace.session() as session:
            if cancel_requested(session, job.id):
                raise _StopError(lost=False)

    def _requester(self, job: _Claimed) -> Actor:
        workflow = self.workflow
        with workflow.workspace.session() as session:
            user = user_by_id(session, job.requested_by_id)
            if user is None:
                raise PermissionDeniedError(f"the user who queued job {job.id} no longer exists")
            return Actor(
                user_id=user.id,
                username=user.username,
                unit=user.unit,
                roles=user.roles,
                certificate_valid=workflow.today() <= user.certificate_expires,
                disabled=user.disabled,
            )

    def _run(self, job: _Claimed) -> tuple[str, dict[str, Any] | None, str | None]:
        """Run the job's action; (state, result, error) to end it with."""
        try:
            actor = self._requester(job)
            if job.kind == "enrol":
                self._run_enrolment(job, actor)
            elif job.kind == "reenrol":
                self._run_reenrolment(job, actor)
            elif job.kind == "evaluate":
                self._run_evaluation(job, actor)
            else:
                self._run_retention(job, actor)
            # The last progress; a cancellation asked for now comes too late to matter.
            self._renew(job.id, self._progress(job))
        except _StopError as stop:
            if stop.lost:
                log.warning("job %s was taken over by another runner; stopping", job.id)
            return CANCELLED, job.result, None
        except WorkspaceBusyError:
            raise
        except Exception as error:
            log.warning("job %s failed", job.id, exc_info=True)
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            return FAILED, job.result, message
        return DONE, job.result, None

    def _item_done(self, job: _Claimed) -> None:
        if self.on_item is not None:
            self.on_item(job.id, job.done)

    def _run_enrolment(self, job: _Claimed, actor: Actor) -> None:
        if "nist" in job.params:
            self._run_nist_enrolment(job, actor)
            return
        files: list[list[Any]] = job.params["files"]
        requests = [_enrol_request_of(entry) for entry in files]
        provenance = _provenance_of(job.params)
        self._enrol_in_batches(job, actor, requests, provenance, job.params.get("face_index"))

    def _run_nist_enrolment(self, job: _Claimed, actor: Actor) -> None:
        # Imported here: nist_import queues its jobs through this module.
        from candor.workflow.nist_import import job_requests

        # The same photos in the same order as when queued (job_requests checks the file's
        # digest), so the cursor of an earlier run still counts them.
        with job_requests(self.workflow, actor, job.params["nist"]) as requests:
            self._enrol_in_batches(job, actor, requests, None, None)

    def _enrol_in_batches(
        self,
        job: _Claimed,
        actor: Actor,
        requests: Sequence[EnrolmentRequest],
        provenance: Provenance | None,
        face_index: int | None,
    ) -> None:
        for status in EnrolmentStatus:
            job.result.setdefault(status.value, 0)
        while job.cursor < len(requests):
            self._checkpoint(job)
            batch = requests[job.cursor : job.cursor + self.batch_size]

            def advance(outcome: EnrolmentOutcome) -> None:
                job.cursor += 1
                job.done += 1
                job.refused += outcome.status is EnrolmentStatus.REFUSED
                job.result[outcome.status.value] += 1
                # Per photo, so a crash repeats at most the photo in hand (and that one
                # is found in the gallery and skipped).
                if not self._renew(job.id, self._progress(job)):
                    raise _StopError(lost=True)
                self._item_done(job)

            enrol_files(
                self.workflow,
                actor,
                batch,
                provenance,
                workers=1,
                face_index=face_index,
                on_outcome=advance,
            )

    def _run_reenrolment(self, job: _Claimed, actor: Actor) -> None:
        base = job.done

        def advance(done: int, stale: int) -> None:
            # Called after each photo; the previous batch has committed when a new one
            # starts, so that is where a cancellation takes effect.
            job.done = base + done
            job.cursor = job.done
            if done > 1 and (done - 1) % self.batch_size == 0:
                self._checkpoint(job)
            self._item_done(job)

        model = job.params.get("target_model")
        if model is not None:
            # Photos refused by an earlier run of this job (ids only): a resumed run does
            # not try them again, and they stay in its report. Kept in the result as each
            # is refused, so a cancellation between batches keeps them too.
            refused_images: list[int] = [int(i) for i in job.result.get("refused_images", [])]

            def refused(item: Refused) -> None:
                refused_images.append(item.image_id)
                job.result["refused_images"] = refused_images
                job.refused = job.result["refused"] = len(refused_images)

            switched = reenrol_model(
                self.workflow,
                actor,
                model,
                progress=advance,
                batch_size=self.batch_size,
                job_id=job.id,
                skip=frozenset(refused_images),
                on_refused=refused,
            )
            job.result = {
                "model": model,
                "made": job.result.get("made", 0) + len(switched.made),
                "refused": len(refused_images),
                "refused_images": refused_images,
                "batches": job.result.get("batches", 0) + switched.batches,
                "activated": switched.activated,
                "templates": switched.templates,
            }
            job.refused = job.result["refused"]
            return
        summary = reenrol(self.workflow, actor, progress=advance, batch_size=self.batch_size)
        job.result = {
            "remade": job.result.get("remade", 0) + len(summary.remade),
            "kept": job.result.get("kept", 0) + len(summary.kept),
            "batches": job.result.get("batches", 0) + summary.batches,
        }
        job.refused = job.result["kept"]

    def _run_evaluation(self, job: _Claimed, actor: Actor) -> None:
        params = job.params
        options = EvaluationOptions(**params["options"])
        groups = params.get("groups_file")

        def advance(stage: str, done: int, total: int) -> None:
            if done == total or done % 25 == 0:
                self._checkpoint(job)

        recorded = run_evaluation(
            self.workflow,
            actor,
            Path(params["dataset"]),
            options=options,
            groups_file=None if groups is None else Path(groups),
            workers=int(params.get("workers", 1)),
            progress=advance,
        )
        job.done = job.cursor = 1
        job.result = {"report_card": recorded.report_card_id}

    def _run_retention(self, job: _Claimed, actor: Actor) -> None:
        report = run_retention(self.workflow, actor)
        job.done = job.cursor = 1
        job.result = {key: len(value) for key, value in asdict(report).items()}
