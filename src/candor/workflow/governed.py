"""Governed face comparison: request, policy decision, approval, run, review, release.

Every way to compare faces goes through here. A request names a person (the logged-in
actor), a case number, an offence category, a purpose and the requesting agency and
unit; the agency's active policy decides it (allow, deny with reasons, or needs a
supervisor's approval); an allowed or approved search runs once; its candidate list
goes to examiners, never straight to the requester; a candidate becomes a lead only
when the policy's number of independent examiners agree. Each step writes its audit
entry in the same transaction as the step itself; a search the policy allows at once is
requested, decided and run in a single transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm import Session

from candor.faces import cosine_score, euclidean_distance
from candor.index.cohort import fuse_subject_scores
from candor.policy import (
    VERDICTS,
    Decision,
    Outcome,
    Policy,
    Reason,
    SearchFacts,
    awaits_resolution,
    decide_search,
    release_ready,
)
from candor.store import Candidate as CandidateRow
from candor.store import SearchRequest, gallery_rows_named, sha256_hex
from candor.store import requests as repository
from candor.store.accounts import user_by_id
from candor.store.reconciliation import CandidateRecord, candidate_record
from candor.store.vault import probe_template_context
from candor.workflow import limits
from candor.workflow.accounts import Actor, policy_in_force
from candor.workflow.actions import act
from candor.workflow.audit_trail import record
from candor.workflow.calibration import ThresholdChoice, active_calibration, threshold_for_gallery
from candor.workflow.context import Workflow
from candor.workflow.errors import ProbeRefusedError, RequestNotFoundError, WorkflowError
from candor.workflow.outcomes import lead_outcomes
from candor.workflow.paging import Page, PageRequest, page_of
from candor.workflow.permissions import (
    PermissionDeniedError,
    require_current_certificate,
    require_permission,
)
from candor.workflow.probes import Probe, probe_for, stored_probe
from candor.workflow.thresholds import model_name, repeat_similarity, verify_threshold
from candor.workflow.upkeep import erase_unheld_probes, probes_in_flight

# Templates fetched per candidate place, so subjects with several photos fill one place.
PHOTOS_FETCHED_PER_CANDIDATE = 3
CANDIDATE_NOTICE = (
    "Candidates are investigative leads, not identifications: each needs independent "
    "review by trained examiners before anyone acts on it."
)
# Requests that count towards quotas and repeat detection: everything not refused.
_COUNTED_STATUSES = ("pending_approval", "approved", "completed")
NO_POLICY = "none"
# fsync waits on the disk, not the CPU, and releases the GIL while it does.
_PROBE_STORE = ThreadPoolExecutor(max_workers=8, thread_name_prefix="candor-probe-store")
# A list's first page, at the default size.
FIRST_PAGE = PageRequest()


class RequestStateError(WorkflowError):
    """The request is not in the state this step needs (e.g. already run)."""


@dataclass(frozen=True)
class RequestForm:
    """What the requester must state for every search or verification."""

    case_number: str
    offence_category: str
    purpose: str
    requesting_agency: str
    requesting_unit: str
    probe_kind: str
    authorisation_ref: str | None = None
    edits: str | None = None

    def checked(self) -> RequestForm:
        """The form with text stripped; WorkflowError naming the first empty or too long field."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in (
            "case_number",
            "offence_category",
            "purpose",
            "requesting_agency",
            "requesting_unit",
            "probe_kind",
        ):
            if not str(values[name]).strip():
                raise WorkflowError(f"a request needs a {name.replace('_', ' ')}")
        stripped = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
        for limit in _FORM_LIMITS:
            limit.check_optional(stripped[limit.field])
        return RequestForm(**stripped)


# Every text field of RequestForm, by the name the form gives it.
_FORM_LIMITS = (
    limits.CASE_NUMBER,
    limits.OFFENCE_CATEGORY,
    limits.PURPOSE,
    limits.REQUESTING_AGENCY,
    limits.REQUESTING_UNIT,
    limits.PROBE_KIND,
    limits.AUTHORISATION_REF,
    limits.EDITS,
)


@dataclass(frozen=True)
class CandidateView:
    """One candidate as an examiner sees it.

    score: the cosine of the probe and the subject's best photo (higher = more alike).
    normalised_score: what the threshold applied to, when the search was normalised (the
    cosine minus the probe's cohort offset; see docs/scores.md); None when the threshold
    applied to the cosine itself.
    """

    rank: int
    score: float
    above_threshold: bool
    subject_id: int
    subject_ref: str | None  # None once the subject has been expunged
    image_id: int
    image_sha256: str | None  # None once the image has been expunged or purged
    verdicts: tuple[dict[str, str], ...] = ()
    released: bool = False
    normalised_score: float | None = None
    # Said outright, so no reader takes a missing reference for someone else's.
    expunged: bool = False
    # Blind review: verdicts of other examiners this reader may not see yet (her own
    # verdict first); `verdicts` then holds none of them.
    verdicts_hidden: int = 0
    own_verdict: str | None = None  # the reader's own verdict on it, if she gave one
    # Whether the policy's conditions for release hold now, and why (None while the
    # reader reviews blind: the reason would name the others' verdicts).
    release_ready: bool = False
    release_note: str | None = None
    # The role that settles this candidate's disagreement when the reader may settle it
    # now (her verdict would be the resolving one); None otherwise.
    resolution_due: str | None = None
    settled: bool = False  # a resolving verdict has settled a disagreement on it
    # Whether the reader's verdict is wanted now: she reviews, gave none, and the candidate
    # is neither released, settled, nor waiting for someone else's resolving verdict.
    verdict_wanted: bool = False
    # What came of it once released, as its requester recorded (candor.workflow.outcomes):
    # the outcome that stands (None: none recorded yet) and every record, oldest first.
    outcome: str | None = None
    outcomes: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class RequestOutcome:
    """Where a request stands, and what it produced that the caller may see."""

    search_id: int
    kind: str
    status: str
    decision: dict[str, Any]
    threshold: dict[str, Any] | None = None
    threshold_meaning: str | None = None
    candidates_found: int = 0
    above_threshold: int = 0
    verification: dict[str, Any] | None = None
    notice: str = CANDIDATE_NOTICE
    # How Candor chose a probe's face among several (the only one passing the quality
    # gate), one line per such photo, named by its file; told when the request is made,
    # and audited (without the file's name) in its "requested" entry.
    probe_notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CandidateReview:
    """A candidate list for an examiner or supervisor."""

    search_id: int
    case_number: str
    status: str
    threshold_meaning: str | None
    candidates: tuple[CandidateView, ...]
    notice: str = CANDIDATE_NOTICE
    # What the reader may do under the policy in force, so a page offers nothing else.
    may_review: bool = False
    may_release: bool = False
    may_record_outcome: bool = False  # the requester, on her released leads


@dataclass(frozen=True)
class EarlierSearch:
    """The earlier search a repeat request repeats, as its approver needs to judge it."""

    search_id: int
    kind: str
    requester: str
    case_number: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class PendingRequest:
    """A request waiting for a supervisor, with what the approver needs to judge it."""

    search_id: int
    kind: str
    requester: str
    case_number: str
    offence_category: str
    purpose: str
    requesting_agency: str
    created_at: datetime
    reasons: tuple[dict[str, str], ...] = field(default_factory=tuple)
    requesting_unit: str = ""
    probe_kind: str = ""
    authorisation_ref: str | None = None
    # The search this one repeats (None when it repeats none, or that record was purged).
    earlier: EarlierSearch | None = None
    # The earlier search's id as the policy decision recorded it, even once purged.
    earlier_search_id: int | None = None


@dataclass(frozen=True)
class _IndexAnswer:
    """What the index gave for a request's probe, fetched before any row is written."""

    hits: list[tuple[int, float]]
    top: int
    score: str  # what the threshold applies to: "cosine" or a recipe's normalised score
    offset: float | None  # the probe's cohort offset when the score is normalised


# -- requesting ---------------------------------------------------------------------------


def request_search(
    workflow: Workflow,
    actor: Actor,
    probe_path: Path,
    form: RequestForm,
    *,
    top: int = 20,
    face_index: int | None = None,
    original_probe: Path | None = None,
    idempotency_key: str | None = None,
) -> RequestOutcome:
    """Ask for a 1:N search; it runs at once when the policy allows it.

    original_probe: the unedited photo when `probe_path` was edited (both are kept and
        hashed; `form.edits` says what was changed).
    idempotency_key: the caller's key for this request, unique per requester (a retry
        with the same key is the same request: see candor.workflow.retries).
    """
    return _request(
        workflow,
        actor,
        "search",
        [probe_path],
        [face_index],
        form,
        top,
        original_probe,
        idempotency_key,
    )


def request_verify(
    workflow: Workflow,
    actor: Actor,
    first: Path,
    second: Path,
    form: RequestForm,
    *,
    first_face: int | None = None,
    second_face: int | None = None,
) -> RequestOutcome:
    """Ask for a 1:1 comparison of two photos; it runs at once when the policy allows it."""
    return _request(
        workflow, actor, "verify", [first, second], [first_face, second_face], form, 1, None
    )


def _request(
    workflow: Workflow,
    actor: Actor,
    kind: Literal["search", "verify"],
    paths: Sequence[Path],
    faces: Sequence[int | None],
    form: RequestForm,
    top: int,
    original_probe: Path | None,
    idempotency_key: str | None = None,
) -> RequestOutcome:
    checked = form.checked()
    if top < 1:
        raise WorkflowError("the candidate list length (--top) must be 1 or more")
    workflow.model_in_step()  # probes are made with the model active now (another process)
    probes: list[Probe] = []
    refusal: str | None = None
    for number, (path, face) in enumerate(zip(paths, faces, strict=True), start=1):
        try:
            probes.append(probe_for(workflow, path, face))
        except ProbeRefusedError as error:
            # Recorded without the file's name, which may be a person's.
            photo = "the probe" if len(paths) == 1 else f"photo {number} of {len(paths)}"
            refusal = f"{photo}: {error.reason}"
            probes = []
            break
    original = None if original_probe is None else original_probe.read_bytes()
    workspace = workflow.workspace
    now = workflow.now()
    outcome: RequestOutcome | None = None
    # The photos go to the vault while the decision is made: their fsyncs overlap the
    # queries instead of adding to them, and are waited for before the commit.
    photos = [probe.image.sha256 for probe in probes]
    if original is not None:
        photos.append(sha256_hex(original))
    # Marked before they are written and until the row naming them commits: a request
    # of another thread that fails meanwhile erases none of them (upkeep).
    with probes_in_flight(workflow, photos) as mine:
        storing: Future[None] | None = None
        try:
            with workspace.session() as session, session.begin():
                # Each photo is sealed under its probe's key, made in this transaction when
                # new: should it roll back, the key goes and the files are erased below.
                sealing = {
                    sha: workspace.keys.probe_key(session, sha, create=True) for sha in photos
                }
                storing = _stored_in_background(workflow, probes, original, sealing)
                if kind == "search":
                    # Templates other processes enrolled or expunged are applied first: the
                    # gallery searched, and its size that sets the threshold, are this
                    # snapshot's.
                    workflow.index_in_step(session)
                # Read in the transaction that decides: the policy applied is the one in
                # force in the same snapshot as the quotas and earlier searches it checks.
                policy = policy_in_force(session)
                decision = _decide(
                    session, workflow, actor, kind, checked, probes, policy, top, now, refusal
                )
                threshold = None
                if kind == "search" and decision.outcome is not Outcome.DENY and policy is not None:
                    threshold = _threshold(session, workflow, policy)
                row = _new_request(
                    workflow, actor, kind, checked, probes, decision, threshold, top, now, original
                )
                _seal_probe_template(session, workflow, row, probes)
                row.idempotency_key = idempotency_key
                # A search allowed at once runs in this same transaction: the request, its
                # decision, its candidates and their three audit entries commit together
                # (one commit, one fsync of the write-ahead log) or not at all. A verify
                # keeps two transactions: its run detects faces, too slow to hold the
                # write lock (taken when the transaction begins) through.
                run_now = decision.outcome is Outcome.ALLOW and kind == "search"
                answer = _search_hits(session, workflow, row) if run_now else None
                if run_now:
                    # Inserted as it will commit: one INSERT, no UPDATE of the same row.
                    _mark_run(workflow, row)
                row.id = _insert_request(session, row)
                record(
                    session,
                    workflow,
                    actor.username,
                    f"{kind}.requested",
                    {"search": row.id, "case": checked.case_number},
                    _request_details(row, checked, probes, refusal),
                )
                record(
                    session,
                    workflow,
                    actor.username,
                    "policy.decided",
                    {"search": row.id},
                    {
                        "decision": _audit_safe(decision.to_dict()),
                        "threshold": threshold.to_dict() if threshold else None,
                    },
                )
                search_id = row.id
                if answer is not None:
                    found, above = _run_row(session, workflow, actor, row, answer)
                    outcome = _outcome(row, found, above)
                # The row names the photos by hash: they are durable before it commits.
                storing.result()
        except BaseException:
            # No row names the photos now: they go, unless another request holds them.
            if storing is not None:
                wait([storing])
            erase_unheld_probes(workflow, photos, mine=mine)
            raise
        finally:
            if storing is not None:
                wait([storing])
    if outcome is None:
        outcome = (
            _run(workflow, actor, search_id)
            if decision.outcome is Outcome.ALLOW
            else outcome_of(workflow, search_id)
        )
    # Named by the caller's own file names here; the audit entry has the notes without.
    notes = tuple(
        f"{path.name}: {probe.face.note}"
        for path, probe in zip(paths, probes, strict=False)
        if probe.face.note is not None
    )
    return replace(outcome, probe_notes=notes) if notes else outcome


def _decide(
    session: Session,
    workflow: Workflow,
    actor: Actor,
    kind: Literal["search", "verify"],
    form: RequestForm,
    probes: Sequence[Probe],
    policy: Policy | None,
    top: int,
    now: datetime,
    refusal: str | None,
) -> Decision:
    if policy is None:
        return Decision(
            outcome=Outcome.DENY,
            reasons=(
                Reason("no_policy", "no policy is active in this workspace; an admin must set one"),
            ),
            policy_sha256=NO_POLICY,
            top=0,
            earlier_search_id=None,
        )
    if refusal is not None:
        return Decision(
            outcome=Outcome.DENY,
            reasons=(Reason("probe_unusable", refusal),),
            policy_sha256=policy.sha256,
            top=0,
            earlier_search_id=None,
            policy_name=policy.name,
            policy_version=policy.version,
        )
    today, last_30_days = _searches_since(
        session, actor, _start_of_day(workflow, now), now - timedelta(days=30)
    )
    facts = SearchFacts(
        kind=kind,
        requester_roles=actor.roles,
        requester_disabled=actor.disabled,
        certificate_valid=actor.certificate_valid,
        offence_category=form.offence_category,
        purpose=form.purpose,
        requesting_agency=form.requesting_agency,
        requesting_unit=form.requesting_unit,
        probe_kind=form.probe_kind,
        probe_edited=form.edits is not None,
        requested_top=top,
        earlier_search_id=_earlier_search(session, workflow, kind, probes, policy, now),
        searches_today=today,
        searches_last_30_days=last_30_days,
    )
    return decide_search(policy, facts)


def _start_of_day(workflow: Workflow, now: datetime) -> datetime:
    local = now.astimezone(workflow.workspace.zone)
    return datetime.combine(local.date(), time(0), tzinfo=workflow.workspace.zone).astimezone(UTC)


def _searches_since(
    session: Session, actor: Actor, day_start: datetime, month_start: datetime
) -> tuple[int, int]:
    """The actor's counted requests since each of the two times, in one query."""
    return repository.count_requests_since(
        session, actor.user_id, _COUNTED_STATUSES, day_start, month_start
    )


def _earlier_search(
    session: Session,
    workflow: Workflow,
    kind: str,
    probes: Sequence[Probe],
    policy: Policy,
    now: datetime,
) -> int | None:
    """The latest search by anyone in the policy's window with the same or a near probe."""
    if not probes:
        return None
    since = now - timedelta(days=policy.repeat.window_days)
    probe = probes[0]
    rows = repository.recent_request_probes(session, kind, since, _COUNTED_STATUSES)
    if not rows:
        return None
    query = probe.template.normalised()
    model_key = probe.template.model.key
    same_photo = (sha256 == probe.image.sha256 for _, sha256, _, _ in rows)
    repeat = np.fromiter(same_photo, dtype=bool, count=len(rows))
    comparable = [
        i for i, (_, _, key, blob) in enumerate(rows) if blob is not None and key == model_key
    ]
    if comparable:
        kept = [rows[i] for i in comparable]
        earlier = _open_probe_templates(session, workflow, kept, query.size)
        # A zero template has no direction: its similarity is NaN and never a repeat.
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = (earlier / np.linalg.norm(earlier, axis=1, keepdims=True)) @ query
        # The policy's value is a cosine of dlib's templates: each model has its own.
        limit = repeat_similarity(workflow, session, policy.repeat.similarity).similarity
        repeat[comparable] |= similarity >= limit
    # Rows come newest first: the first repeat is the latest earlier search.
    matches = np.flatnonzero(repeat)
    return int(rows[matches[0]][0]) if matches.size else None


def _open_probe_templates(
    session: Session,
    workflow: Workflow,
    rows: Sequence[tuple[int, str, str | None, bytes | None]],
    dimension: int,
) -> np.ndarray:
    """(len(rows), dimension) float32: each earlier request's probe template opened under its
    probe's key (the keys read together, one query per 500 probes)."""
    keys = workflow.workspace.keys.probe_keys(session, (sha256 for _, sha256, _, _ in rows))
    vault = workflow.workspace.vault
    opened = np.empty((len(rows), dimension), dtype=np.float32)
    for i, (search_id, sha256, model_key, blob) in enumerate(rows):
        key = keys.get(sha256)
        if key is None or blob is None or model_key is None:
            raise WorkflowError(
                f"request {search_id} keeps a probe template without its probe's key; "
                "run `candor check`"
            )
        context = probe_template_context(sha256, model_key)
        opened[i] = vault.decode_template(blob, dimension, key, context)
    return opened


def _threshold(session: Session, workflow: Workflow, policy: Policy) -> ThresholdChoice:
    table = active_calibration(workflow, workflow.score_in_use, session)
    return threshold_for_gallery(
        table,
        len(workflow.index),
        policy.target_fpir,
        model_name=model_name(session, table.model_key),
    )


def _stored_in_background(
    workflow: Workflow, probes: Sequence[Probe], original: bytes | None, keys: dict[str, bytes]
) -> Future[None]:
    """Each probe photo (and the unedited original) put in the vault by another thread,
    sealed under its key in `keys` (by sha256)."""
    photos = [(probe.image.sha256, probe.image.data) for probe in probes]
    if original is not None:
        photos.insert(0, (sha256_hex(original), original))
    vault = workflow.workspace.vault

    def store() -> None:
        for sha256, data in photos:
            vault.put_probe(sha256, data, keys[sha256])

    return _PROBE_STORE.submit(store)


def _new_request(
    workflow: Workflow,
    actor: Actor,
    kind: str,
    form: RequestForm,
    probes: Sequence[Probe],
    decision: Decision,
    threshold: ThresholdChoice | None,
    top: int,
    now: datetime,
    original: bytes | None,
) -> SearchRequest:
    """The request's row, not yet added to a session."""
    status = {
        Outcome.ALLOW: "approved",
        Outcome.DENY: "denied",
        Outcome.NEEDS_APPROVAL: "pending_approval",
    }[decision.outcome]
    first = probes[0] if probes else None
    original_sha256 = None if original is None else sha256_hex(original)
    return SearchRequest(
        kind=kind,
        requester_id=actor.user_id,
        case_number=form.case_number,
        offence_category=form.offence_category,
        purpose=form.purpose,
        requesting_agency=form.requesting_agency,
        requesting_unit=form.requesting_unit,
        authorisation_ref=form.authorisation_ref,
        probe_kind=form.probe_kind,
        probe_edited=form.edits is not None,
        edits=form.edits,
        requested_top=top,
        status=status,
        decision=decision.to_dict(),
        policy_sha256=decision.policy_sha256,
        earlier_search_id=decision.earlier_search_id,
        probe_sha256=first.image.sha256 if first else "0" * 64,
        original_probe_sha256=original_sha256,
        second_probe_sha256=probes[1].image.sha256 if len(probes) > 1 else None,
        face_index=first.face.face_index if first else None,
        probe_quality=dict(first.face.quality) if first else None,
        probe_model_key=first.template.model.key if first else None,
        probe_template=None,  # sealed under the probe's key by _seal_probe_template
        threshold=threshold.value if threshold else None,
        threshold_score=threshold.score if threshold else None,
        threshold_note=threshold.meaning if threshold else None,
        result={"second_face": probes[1].face.face_index} if len(probes) > 1 else None,
        created_at=now,
    )


def _request_details(
    row: SearchRequest, form: RequestForm, probes: Sequence[Probe], refusal: str | None
) -> dict[str, object]:
    details: dict[str, object] = {
        "kind": row.kind,
        "offence_category": form.offence_category,
        "purpose": form.purpose,
        "requesting_agency": form.requesting_agency,
        "requesting_unit": form.requesting_unit,
        "authorisation_ref": form.authorisation_ref,
        "probe_kind": form.probe_kind,
        "probe_edited": form.edits is not None,
        "edits": form.edits,
        "probe_sha256": [probe.image.sha256 for probe in probes],
        "original_probe_sha256": row.original_probe_sha256,
        "requested_top": row.requested_top,
        "probe_refused": refusal,
    }
    if probes:
        details["probe_quality"] = _audit_safe(dict(probes[0].face.quality))
        # As a gallery photo's entry says it: how many faces, which one, and why when
        # Candor chose it (one per probe, in probe_sha256's order).
        details["faces_found"] = [probe.face.faces_found for probe in probes]
        details["face_choice"] = [probe.face.face_choice for probe in probes]
        details["face_choice_note"] = [probe.face.note for probe in probes]
    return details


def _audit_safe(value: Any) -> Any:
    """Floats as fixed text: the audit log's canonical JSON carries no floats."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return {str(k): _audit_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_audit_safe(v) for v in value]
    return value


# -- approval -----------------------------------------------------------------------------


def pending_approvals(
    workflow: Workflow,
    actor: Actor,
    page: PageRequest = FIRST_PAGE,
    *,
    case: str | None = None,
) -> Page[PendingRequest]:
    """One page of the requests waiting for a supervisor, oldest first (supervisors only),
    each with the earlier search it repeats; only `case`'s when given.

    The actor's own requests are left out: nobody approves their own request, so a list
    that offered them would only lead to a refusal.
    """
    require_permission(workflow, actor, "search.approve")
    # A filter is text from outside too: PostgreSQL cannot even look up one with a NUL.
    case = limits.CASE_NUMBER.check_optional(case)
    with workflow.workspace.session() as session:
        rows, total = repository.requests_in_status_by_page(
            session,
            "pending_approval",
            limit=page.limit,
            offset=page.offset,
            case_number=case,
            not_by=actor.user_id,
        )
        earlier_ids = {row.earlier_search_id for row in rows if row.earlier_search_id is not None}
        earlier = repository.searches_by_ids(session, earlier_ids)
        items = [_pending(row, earlier) for row in rows]
    return page_of(items, total, page)


def earlier_search_of(row: SearchRequest) -> EarlierSearch:
    """What an approver or a requester sees of an earlier search: no candidates."""
    return EarlierSearch(
        search_id=row.id,
        kind=row.kind,
        requester=row.requester.username,
        case_number=row.case_number,
        status=row.status,
        created_at=row.created_at,
    )


def _pending(row: SearchRequest, earlier: dict[int, SearchRequest]) -> PendingRequest:
    repeated = None if row.earlier_search_id is None else earlier.get(row.earlier_search_id)
    return PendingRequest(
        search_id=row.id,
        kind=row.kind,
        requester=row.requester.username,
        case_number=row.case_number,
        offence_category=row.offence_category,
        purpose=row.purpose,
        requesting_agency=row.requesting_agency,
        created_at=row.created_at,
        reasons=tuple(
            {"code": r["code"], "message": r["message"]} for r in row.decision.get("reasons", [])
        ),
        requesting_unit=row.requesting_unit,
        probe_kind=row.probe_kind,
        authorisation_ref=row.authorisation_ref,
        earlier=None if repeated is None else earlier_search_of(repeated),
        earlier_search_id=row.earlier_search_id,
    )


def decide_approval(
    workflow: Workflow, actor: Actor, search_id: int, *, approve: bool, reason: str
) -> RequestOutcome:
    """A supervisor other than the requester approves or rejects a waiting request."""
    if not reason.strip():
        raise WorkflowError("an approval or rejection needs a reason")
    limits.REASON.check(reason.strip())
    with act(workflow, actor, "search.approve") as action:
        row = _request_row(action.session, search_id)
        action.not_own(
            row.requester_id,
            f"request {search_id} is your own; another supervisor must decide it",
        )
        if row.status != "pending_approval":
            raise RequestStateError(
                f"request {search_id} is {row.status}, not waiting for approval"
            )
        decision = "approved" if approve else "rejected"
        repository.decide_request(
            action.session, row, actor.user_id, decision, reason.strip(), action.now
        )
        action.record(
            f"search.{decision}",
            {"search": row.id},
            {"reason": reason.strip(), "earlier_search": row.earlier_search_id},
        )
    return outcome_of(workflow, search_id)


def run_approved(workflow: Workflow, actor: Actor, search_id: int) -> RequestOutcome:
    """The requester runs a search a supervisor approved; it runs once."""
    with workflow.workspace.session() as session:
        row = _request_row(session, search_id)
        requester_id, status = row.requester_id, row.status
    if requester_id != actor.user_id:
        raise PermissionDeniedError(
            f"request {search_id} belongs to another user; only they can run it"
        )
    if status != "approved":
        raise RequestStateError(
            f"request {search_id} is {status}; only an approved request runs, once"
        )
    require_current_certificate(actor)
    return _run(workflow, actor, search_id)


def _run(workflow: Workflow, actor: Actor, search_id: int) -> RequestOutcome:
    workspace = workflow.workspace
    compared: _Comparison | None = None
    with workspace.session() as session:
        row = _request_row(session, search_id)
        if row.kind == "verify" and row.status == "approved":
            # Faces are detected before the write lock is taken, which other processes'
            # writers would otherwise wait on through the detection.
            compared = _compare_photos(workflow, session, row)
    with workspace.session() as session, session.begin():
        row = _request_row(session, search_id)
        if row.status != "approved":
            raise RequestStateError(f"request {search_id} is {row.status}; it cannot run")
        if row.kind == "search":
            workflow.index_in_step(session)
        answer = _search_hits(session, workflow, row) if row.kind == "search" else None
        found, above = _run_row(session, workflow, actor, row, answer, compared)
        return _outcome(row, found, above)


def _run_row(
    session: Session,
    workflow: Workflow,
    actor: Actor,
    row: SearchRequest,
    answer: _IndexAnswer | None,
    compared: _Comparison | None = None,
) -> tuple[int, int]:
    """Run an approved request in `session`; returns (candidates found, above threshold).

    answer: the index's answer for a search (`_search_hits`), None for a verify.
    compared: a verify's comparison made before the transaction (else made here).
    """
    found = above = 0
    if answer is not None:
        details, found, above = _run_search(session, workflow, row, answer)
    else:
        comparison = compared or _compare_photos(workflow, session, row)
        row.result = comparison.result
        details = comparison.details
    if row.status != "completed":  # a search run at once was inserted completed
        _mark_run(workflow, row)
    record(
        session,
        workflow,
        actor.username,
        f"{row.kind}.run",
        {"search": row.id},
        _audit_safe(details),
    )
    return found, above


def _insert_request(session: Session, row: SearchRequest) -> int:
    """Insert a new request's row (staying outside the session); returns its id."""
    search_id = repository.insert_request(session, row)
    if search_id is None:  # cannot happen for a single-row INSERT
        raise WorkflowError("the database returned no id for the new request")
    return search_id


def _mark_run(workflow: Workflow, row: SearchRequest) -> None:
    row.status = "completed"
    row.ran_at = workflow.now()


def _seal_probe_template(
    session: Session, workflow: Workflow, row: SearchRequest, probes: Sequence[Probe]
) -> None:
    """The first probe's template, sealed under its photo's key (made if new), into `row`."""
    if not probes:
        return
    template = probes[0].template
    key = workflow.workspace.keys.probe_key(session, row.probe_sha256, create=True)
    context = probe_template_context(row.probe_sha256, template.model.key)
    row.probe_template = workflow.workspace.vault.encode_template(template.vector, key, context)


def _stored_template(session: Session, workflow: Workflow, row: SearchRequest) -> np.ndarray:
    if row.probe_template is None or row.probe_model_key is None:
        raise RequestStateError(f"request {row.id} has no probe template (purged?)")
    if row.probe_model_key != workflow.engine.model.key:
        raise RequestStateError(
            f"request {row.id} was made with model {row.probe_model_key}; the gallery now uses "
            f"{workflow.engine.model.key}: make a new request"
        )
    key = workflow.workspace.keys.probe_key(session, row.probe_sha256)
    context = probe_template_context(row.probe_sha256, row.probe_model_key)
    return workflow.workspace.vault.decode_template(
        row.probe_template, workflow.engine.model.dimension, key, context
    )


def _search_hits(session: Session, workflow: Workflow, row: SearchRequest) -> _IndexAnswer:
    """The index's answer for the request's stored template (as the row holds it).

    The threshold applies to the score recorded with the request (`threshold_score`): the
    cosine, or the recipe's normalised score (cosine minus the probe's cohort offset).
    """
    query = _stored_template(session, workflow, row)
    top = int(row.decision.get("top", row.requested_top)) or row.requested_top
    kind = row.threshold_score or "cosine"
    normaliser = None if kind == "cosine" else workflow.cohort_normaliser()
    if kind != "cosine" and (normaliser is None or workflow.score_in_use != kind):
        raise RequestStateError(
            f"request {row.id}'s threshold applies to {kind} scores, which this gallery no "
            f"longer gives (now: {workflow.score_in_use}); make a new request"
        )
    offset = None if normaliser is None else normaliser.offset(query)
    # More templates than candidates: a subject enrolled with several photos takes one
    # place on the list, with the fused score of its photos.
    hits = workflow.index.search(query, top * PHOTOS_FETCHED_PER_CANDIDATE)
    return _IndexAnswer(hits, top, kind, offset)


def _run_search(
    session: Session, workflow: Workflow, row: SearchRequest, answer: _IndexAnswer
) -> tuple[dict[str, object], int, int]:
    """Fuse each subject's photos into one candidate, judge them by the threshold and
    write them; returns the run's audit details, candidates found, above threshold.

    Candidates always keep their cosine; a normalised search stores both.
    """
    hits, top, kind, offset = answer.hits, answer.top, answer.score, answer.offset
    owners = _template_owners(session, [template_id for template_id, _ in hits])
    known = [(t, s) for t, s in hits if t in owners]
    best_template: dict[int, tuple[int, float]] = {}
    for template_id, score in known:
        subject_id = owners[template_id][0]
        if subject_id not in best_template:
            best_template[subject_id] = (template_id, score)
    subjects, fused = fuse_subject_scores(
        np.array([score for _, score in known], dtype=np.float64),
        np.array([owners[template_id][0] for template_id, _ in known], dtype=np.int64),
        workflow.recipe.fusion,
    )
    threshold = row.threshold if row.threshold is not None else 1.0
    candidates: list[dict[str, object]] = []
    for rank, (subject_id, cosine) in enumerate(
        zip(subjects[:top].tolist(), fused[:top].tolist(), strict=True), start=1
    ):
        template_id = best_template[subject_id][0]
        normalised = None if offset is None else cosine - offset
        candidates.append(
            {
                "search_id": row.id,
                "rank": rank,
                "score": cosine,
                "normalised_score": normalised,
                "subject_id": subject_id,
                "image_id": owners[template_id][1],
                "template_id": template_id,
                "above_threshold": (cosine if normalised is None else normalised) >= threshold,
            }
        )
    found = len(candidates)
    above = sum(1 for candidate in candidates if candidate["above_threshold"])
    listed: list[CandidateRecord] = []
    if candidates:
        # One INSERT. The ids come back for the run's entry, which lists every row so
        # that `audit verify` can prove the candidate list.
        ids = repository.insert_candidates(session, candidates)
        listed = [candidate_record(ids[rank], c) for rank, c in enumerate(candidates, start=1)]
    details: dict[str, object] = {
        "gallery_size": len(workflow.index),
        "model": workflow.engine.model.key,
        "recipe": workflow.recipe.key,
        "candidates": min(top, len(subjects)),
        "candidate_rows": listed,
        "above_threshold": above,
        "threshold": f"{threshold:.6f}",
        "score": kind,
    }
    if offset is not None:
        details["cohort_offset"] = f"{offset:.6f}"
    return details, found, above


def _template_owners(session: Session, template_ids: list[int]) -> dict[int, tuple[int, int]]:
    # A name of this module's own, so a test can make the run fail here.
    return repository.template_owners(session, template_ids)


@dataclass(frozen=True)
class _Comparison:
    """A verify's two photos compared: the request's result and the run's audit details."""

    result: dict[str, object]
    details: dict[str, object]


def _compare_photos(workflow: Workflow, session: Session, row: SearchRequest) -> _Comparison:
    if row.second_probe_sha256 is None:
        raise RequestStateError(f"verify request {row.id} has no second photo")
    from candor.images import decode_image

    engine = workflow.engine
    first = decode_image(stored_probe(workflow, row.probe_sha256), name=f"request {row.id} photo 1")
    second = decode_image(
        stored_probe(workflow, row.second_probe_sha256), name=f"request {row.id} photo 2"
    )
    first_faces, second_faces = engine.detect_faces(first), engine.detect_faces(second)
    face_a = first_faces[row.face_index or 0]
    face_b = second_faces[int((row.result or {}).get("second_face", 0))]
    template_a, template_b = (
        engine.face_template(first, face_a),
        engine.face_template(second, face_b),
    )
    score = cosine_score(template_a, template_b)
    # The threshold of the model that made both templates (dlib's shipped one by default).
    threshold = verify_threshold(workflow, session)
    result = {
        **(row.result or {}),
        "score": round(score, 6),
        "euclidean_distance": round(euclidean_distance(template_a, template_b), 6),
        "threshold": threshold.cosine,
        "passed": score >= threshold.cosine,
        "meaning": threshold.meaning,
        "model": threshold.model_key,
        "model_name": threshold.model_name,
    }
    details = {
        "score": f"{score:.6f}",
        "passed": result["passed"],
        "threshold": f"{threshold.cosine}",
        "model": threshold.model_key,
    }
    return _Comparison(result, details)


# -- what each person may see -------------------------------------------------------------


def outcome_of(workflow: Workflow, search_id: int) -> RequestOutcome:
    """Where a request stands (no candidate identities: those go to examiners)."""
    with workflow.workspace.session() as session:
        row = _request_row(session, search_id)
        candidates = row.candidates
        return _outcome(row, len(candidates), sum(1 for c in candidates if c.above_threshold))


def _outcome(row: SearchRequest, found: int, above: int) -> RequestOutcome:
    return RequestOutcome(
        search_id=row.id,
        kind=row.kind,
        status=row.status,
        decision=dict(row.decision),
        threshold=None
        if row.threshold is None
        else {"value": row.threshold, "score": row.threshold_score or "cosine"},
        threshold_meaning=row.threshold_note,
        candidates_found=found,
        above_threshold=above,
        verification=dict(row.result) if row.kind == "verify" and row.result else None,
    )


def view_candidates(workflow: Workflow, actor: Actor, search_id: int) -> CandidateReview:
    """The candidate list, for an examiner (not the requester) or a supervisor; audited.

    Blind review: an examiner sees no other examiner's verdict on a candidate until she
    has given her own (`_sees_verdicts` says when she may).
    """
    with act(workflow, actor, None) as action:
        may_review = action.may("candidate.review")
        may_supervise = action.may("search.approve")
        if not (may_review or may_supervise) or actor.disabled:
            raise PermissionDeniedError("only examiners and supervisors see candidate lists")
        row = _request_row(action.session, search_id)
        action.not_own(
            row.requester_id,
            f"request {search_id} is your own: its candidates go to independent examiners",
        )
        if row.status != "completed" or row.kind != "search":
            raise RequestStateError(f"request {search_id} has no candidate list ({row.status})")
        reader = _Reader(actor, action.policy, may_review)
        views = tuple(
            _candidate_view(action.session, candidate, reader) for candidate in row.candidates
        )
        hidden = sum(view.verdicts_hidden for view in views)
        details: dict[str, object] = {"candidates": len(views)}
        if hidden:
            details["verdicts_withheld"] = hidden
        action.record("candidates.viewed", {"search": row.id}, details)
        return CandidateReview(
            row.id,
            row.case_number,
            row.status,
            row.threshold_note,
            views,
            may_review=may_review and actor.certificate_valid,
            may_release=action.may("lead.release"),
        )


@dataclass(frozen=True)
class _Reader:
    """Who reads a candidate list, and under which policy: what decides what she sees."""

    actor: Actor
    policy: Policy | None
    reviews: bool  # holds candidate.review, so reviews blind until her own verdict


def _sees_verdicts(session: Session, candidate: CandidateRow, reader: _Reader) -> bool:
    """Whether the reader may see the other examiners' verdicts on this candidate.

    Yes once she has given her own, once the candidate is released, or when she does not
    review at all (a supervisor reading the list). Yes, too, for a holder of the policy's
    resolve_disagreement_by role who gave no blind verdict, once the blind verdicts are
    in and disagree: settling the disagreement is her task, and she settles it knowing
    what each examiner said and why. Otherwise she reviews blind.
    """
    if not reader.reviews or candidate.release is not None:
        return True
    if any(v.examiner_id == reader.actor.user_id for v in candidate.verdicts):
        return True
    return _resolution_due(session, candidate, reader) is not None


def _resolution_due(session: Session, candidate: CandidateRow, reader: _Reader) -> str | None:
    """The resolving role when this candidate's blind verdicts disagree and await the
    resolving verdict that the reader may give; None otherwise."""
    policy = reader.policy
    if policy is None or policy.resolve_disagreement_by is None:
        return None
    if policy.resolve_disagreement_by not in reader.actor.roles:
        return None
    if any(v.resolves or v.examiner_id == reader.actor.user_id for v in candidate.verdicts):
        return None  # settled already, or she gave a blind verdict on it
    blind = _blind_pairs(session, candidate)
    requester = _username(session, candidate.search.requester_id)
    if not awaits_resolution(blind, requester, policy.reviewers_to_release):
        return None
    return policy.resolve_disagreement_by


def _blind_pairs(session: Session, candidate: CandidateRow) -> list[tuple[str, str]]:
    return [
        (_username(session, v.examiner_id), v.verdict) for v in candidate.verdicts if not v.resolves
    ]


def _release_state(
    session: Session, candidate: CandidateRow, policy: Policy | None
) -> tuple[bool, str]:
    """release_ready for this candidate under the policy in force."""
    if policy is None:
        return False, "not released: no policy is active"
    if candidate.release is not None:
        return False, "released"
    resolving = [
        (_username(session, v.examiner_id), v.verdict) for v in candidate.verdicts if v.resolves
    ]
    return release_ready(
        _blind_pairs(session, candidate),
        _username(session, candidate.search.requester_id),
        policy.reviewers_to_release,
        resolving=resolving[:1],
        resolver=policy.resolve_disagreement_by,
    )


def _candidate_view(
    session: Session, candidate: CandidateRow, reader: _Reader | None = None
) -> CandidateView:
    """One candidate as `reader` may see it (None: everything, for the requester's leads)."""
    subject, image = gallery_rows_named(
        session, candidate.subject_id, candidate.image_id, named_at=candidate.search.ran_at
    )
    sees = reader is None or _sees_verdicts(session, candidate, reader)
    own = None
    if reader is not None:
        own = next(
            (v.verdict for v in candidate.verdicts if v.examiner_id == reader.actor.user_id), None
        )
    shown = candidate.verdicts if sees else []
    history: tuple[dict[str, str], ...] = ()
    if candidate.release is not None:
        history = tuple(
            {
                "outcome": entry.outcome,
                "note": entry.note,
                "recorded_by": entry.recorded_by,
                "recorded_at": entry.recorded_at.isoformat(),
            }
            for entry in lead_outcomes(
                session, candidate.search_id, candidate.rank, candidate.release
            ).history
        )
    due = None if reader is None else _resolution_due(session, candidate, reader)
    ready, why = False, None
    if reader is not None and sees:
        ready, why = _release_state(session, candidate, reader.policy)
    return CandidateView(
        rank=candidate.rank,
        score=candidate.score,
        normalised_score=candidate.normalised_score,
        above_threshold=candidate.above_threshold,
        subject_id=candidate.subject_id,
        subject_ref=subject.external_ref if subject else None,
        image_id=candidate.image_id,
        image_sha256=image.sha256 if image else None,
        expunged=subject is None,
        verdicts=tuple(
            {
                "examiner": _username(session, v.examiner_id),
                "verdict": v.verdict,
                "rationale": v.rationale,
                "kind": "resolving" if v.resolves else "blind",
            }
            for v in shown
        ),
        released=candidate.release is not None,
        verdicts_hidden=len(candidate.verdicts) - len(shown),
        own_verdict=own,
        release_ready=ready,
        release_note=why,
        resolution_due=due,
        verdict_wanted=_verdict_wanted(session, candidate, reader, own, due),
        settled=any(v.resolves for v in candidate.verdicts),
        outcome=None if not history else history[-1]["outcome"],
        outcomes=history,
    )


def _verdict_wanted(
    session: Session,
    candidate: CandidateRow,
    reader: _Reader | None,
    own: str | None,
    due: str | None,
) -> bool:
    if reader is None or not reader.reviews or own is not None:
        return False
    if candidate.release is not None or any(v.resolves for v in candidate.verdicts):
        return False
    if due is not None:
        return True  # hers is the resolving verdict
    policy = reader.policy
    if policy is None or policy.resolve_disagreement_by is None:
        return True
    requester = _username(session, candidate.search.requester_id)
    return not awaits_resolution(
        _blind_pairs(session, candidate), requester, policy.reviewers_to_release
    )


def _username(session: Session, user_id: int) -> str:
    user = user_by_id(session, user_id)
    return user.username if user else f"user {user_id}"


# -- review and release -------------------------------------------------------------------


def record_verdict(
    workflow: Workflow, actor: Actor, search_id: int, rank: int, verdict: str, rationale: str
) -> CandidateView:
    """An examiner's verdict on one candidate, with a rationale; one per examiner.

    Under a policy with review.resolve_disagreement_by, once the blind verdicts are in and
    disagree, the next verdict is the resolving one: only a holder of that role who gave
    no blind verdict gives it, and it settles the candidate (no verdict after it).
    """
    if verdict not in VERDICTS:
        raise WorkflowError(
            f"unknown verdict {verdict!r}; a verdict is one of {', '.join(VERDICTS)}"
        )
    if not rationale.strip():
        raise WorkflowError("a verdict needs a rationale")
    limits.RATIONALE.check(rationale.strip())
    with act(workflow, actor, "candidate.review", certificate=True) as action:
        session = action.session
        row = _request_row(session, search_id)
        action.not_own(row.requester_id, f"request {search_id} is your own; you cannot review it")
        candidate = _candidate(row, rank)
        if any(v.examiner_id == actor.user_id for v in candidate.verdicts):
            raise RequestStateError(f"you have already given a verdict on candidate {rank}")
        if candidate.release is not None:
            raise RequestStateError(f"candidate {rank} has already been released")
        if any(v.resolves for v in candidate.verdicts):
            raise RequestStateError(
                f"candidate {rank}'s disagreement has been settled by a resolving verdict"
            )
        resolver = action.policy.resolve_disagreement_by
        requester = row.requester.username
        due = resolver is not None and awaits_resolution(
            _blind_pairs(session, candidate), requester, action.policy.reviewers_to_release
        )
        if due and resolver not in actor.roles:
            raise RequestStateError(
                f"candidate {rank}'s blind verdicts are in and disagree: the policy has a "
                f"{resolver} who gave none settle it"
            )
        repository.add_verdict(
            session, candidate, actor.user_id, verdict, rationale.strip(), action.now, resolves=due
        )
        details: dict[str, object] = {
            "rank": rank,
            "verdict": verdict,
            "rationale": rationale.strip(),
        }
        if due:
            details["resolves"] = True
        action.record("candidate.verdict", {"search": row.id, "candidate": candidate.id}, details)
        return _candidate_view(session, candidate, _Reader(actor, action.policy, True))


def release_lead(
    workflow: Workflow, actor: Actor, search_id: int, rank: int, reason: str
) -> CandidateView:
    """Release a candidate as an investigative lead, once the policy's conditions hold
    (release_ready: enough independent examiners agree, or a resolving verdict settled
    their disagreement in favour)."""
    if not reason.strip():
        raise WorkflowError("a release needs a reason")
    limits.REASON.check(reason.strip())
    with act(workflow, actor, "lead.release") as action:
        session = action.session
        row = _request_row(session, search_id)
        action.not_own(
            row.requester_id, f"request {search_id} is your own; you cannot release its leads"
        )
        candidate = _candidate(row, rank)
        if candidate.release is not None:
            raise RequestStateError(f"candidate {rank} has already been released")
        verdicts = [(_username(session, v.examiner_id), v.verdict) for v in candidate.verdicts]
        ready, why = _release_state(session, candidate, action.policy)
        if not ready:
            raise RequestStateError(f"candidate {rank} cannot be released: {why}")
        repository.add_release(session, candidate, actor.user_id, reason.strip(), action.now)
        action.record(
            "lead.released",
            {"search": row.id, "candidate": candidate.id},
            {"rank": rank, "reason": reason.strip(), "examiners": [name for name, _ in verdicts]},
        )
        return _candidate_view(session, candidate, _Reader(actor, action.policy, True))


def released_leads(workflow: Workflow, actor: Actor, search_id: int) -> CandidateReview:
    """The released leads of a request, for its requester or a supervisor; audited."""
    with act(workflow, actor, None) as action:
        row = _request_row(action.session, search_id)
        if row.requester_id != actor.user_id and not action.may("search.approve"):
            raise PermissionDeniedError(f"request {search_id} is not yours")
        leads = tuple(
            _candidate_view(action.session, c) for c in row.candidates if c.release is not None
        )
        action.record("leads.viewed", {"search": row.id}, {"leads": len(leads)})
        return CandidateReview(
            row.id,
            row.case_number,
            row.status,
            row.threshold_note,
            leads,
            may_record_outcome=row.requester_id == actor.user_id,
        )


# -- shared checks --------------------------------------------------------------------------


def _request_row(session: Session, search_id: int) -> SearchRequest:
    row = repository.request_by_id(session, search_id)
    if row is None:
        raise RequestNotFoundError(search_id)
    return row


def _candidate(row: SearchRequest, rank: int) -> CandidateRow:
    for candidate in row.candidates:
        if candidate.rank == rank:
            return candidate
    raise WorkflowError(f"request {row.id} has no candidate at rank {rank}")
