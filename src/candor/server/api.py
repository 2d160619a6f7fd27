"""The JSON API: every route calls the workflow as the caller the bearer token names.

No route takes the acting user from its input: the actor is always the one behind the
token, so nobody acts as another. Workflow refusals come back as 4xx problems (RFC 9457,
see errors.py) with their one-line reason. Every answer has its model in api_models.py,
so /openapi.json says what each route sends; every list is paged (`limit`, `offset`).
docs/api.md is the integrator's guide.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, File, Form, Header, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from candor.server.api_models import (
    LoginAnswer,
    LogoutAnswer,
    Me,
    WorkspaceStatus,
    model_of,
    page_json,
    page_model,
)
from candor.server.auth import Caller, caller, server_state
from candor.server.errors import (
    USER_ERRORS,
    RefusedError,
    as_refused,
    one_line,
    several_faces,
    without_server_folders,
)
from candor.server.state import ServerState, read_limited, safe_filename
from candor.workflow import (
    LEAD_OUTCOMES,
    VERDICTS,
    CandidateReview,
    CandidateView,
    EnrolmentOutcome,
    EnrolmentRequest,
    MultipleFacesError,
    PendingRequest,
    Provenance,
    RequestForm,
    RequestOutcome,
    SubjectDetail,
    SubjectSummary,
    WorkspaceBusyError,
    decide_approval,
    enrol_files,
    gallery_subject,
    limits,
    pending_approvals,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
    request_verify,
    run_approved,
    view_candidates,
)
from candor.workflow.accounts import (
    ChangeInfo,
    NewUser,
    PolicyInfo,
    UserInfo,
    active_policy_info,
    change_password,
    confirm_change,
    disable_user,
    list_user_infos,
    login,
    logout,
    pending_change_infos,
    reject_change,
    request_enable,
    request_policy_change,
    request_role_grant,
    request_role_revoke,
    request_user,
    reset_password,
    session_view,
)
from candor.workflow.audit_ops import (
    CheckpointInfo,
    EntryFilter,
    InclusionProof,
    LoggedEntry,
    checkpoint_now,
    export_log,
    list_entries,
    prove_entry,
    verify_log,
)
from candor.workflow.expunge import request_expunge
from candor.workflow.gallery import enrolment_faces, gallery_subject_page
from candor.workflow.models import ModelView, model_view, model_views
from candor.workflow.outcomes import LeadOutcomes, record_lead_outcome
from candor.workflow.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    PageRequest,
    page_of,
)
from candor.workflow.probe_check import (
    UPLOAD_MAX_BYTES,
    ProbeCheck,
    ReviewMaterial,
    check_probe,
    review_material,
)
from candor.workflow.reconciliation import StoreCheckedReport
from candor.workflow.retries import IDEMPOTENCY_KEY_MAX, search_once
from candor.workflow.worklists import (
    LatestCheckpoint,
    RequestStatus,
    RequestSummary,
    ReviewItem,
    Todo,
    latest_checkpoint,
    my_requests,
    request_status,
    review_queue,
    todo,
    workspace_state,
)

P = ParamSpec("P")
T = TypeVar("T")

router = APIRouter(prefix="/api", tags=["api"])

# Ids are INTEGER columns (32-bit on PostgreSQL): a larger one cannot exist, and must not
# reach the database, where it would be an error (a 500) rather than a 422.
MAX_ID = 2**31 - 1
SearchId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The request's id.")]
Rank = Annotated[int, PathParam(ge=1, le=10_000, description="The candidate's rank, from 1.")]
ChangeId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The admin change's id.")]
Username = Annotated[str, PathParam(min_length=1, max_length=limits.USERNAME.max_length)]
ModelName = Annotated[str, PathParam(min_length=1, max_length=limits.MODEL_NAME.max_length)]
Reason = Annotated[str, Field(min_length=1, max_length=limits.REASON.max_length)]
Password = Annotated[str, Field(min_length=1, max_length=limits.PASSWORD.max_length)]
CertificateRef = Annotated[str, Field(min_length=1, max_length=limits.CERTIFICATE_REF.max_length)]
SubjectRef = Annotated[str, Form(min_length=1, max_length=limits.SUBJECT_REF.max_length)]
SubjectRefPath = Annotated[str, PathParam(max_length=limits.SUBJECT_REF.max_length)]
RoleName = Literal["analyst", "examiner", "supervisor", "auditor", "admin"]
Json = dict[str, Any]


def to_jsonable(value: Any) -> Any:
    """Dataclasses, dates, enums, paths and bytes (base64) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return round(value, 6)
    return value


def json_of(value: Any) -> Json:
    """A workflow result as the JSON object a route answers."""
    converted = to_jsonable(value)
    if not isinstance(converted, dict):
        raise TypeError(f"a route must answer an object, not {type(converted).__name__}")
    return converted


def run(state: ServerState, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call the workflow under its lock; a refusal becomes the caller's 4xx."""
    try:
        return state.call(function, *args, **kwargs)
    except USER_ERRORS as error:
        raise as_refused(error, home=state.workflow.workspace.home) from None
    except OSError as error:
        raise RefusedError(400, one_line(error, state.workflow.workspace.home)) from None


def run_choosing(
    state: ServerState,
    face_field: str,
    function: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`run` for a call on an uploaded photo: a photo with several faces is refused
    naming `face_field`, the form field that chooses one, and listing the faces."""
    try:
        return state.call(function, *args, **kwargs)
    except MultipleFacesError as error:
        raise several_faces(error, face_field) from None
    except USER_ERRORS as error:
        raise as_refused(error, home=state.workflow.workspace.home) from None
    except OSError as error:
        raise RefusedError(400, one_line(error, state.workflow.workspace.home)) from None


StateDep = Annotated[ServerState, Depends(server_state)]
CallerDep = Annotated[Caller, Depends(caller)]


def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="The most items on this page.")
    ] = DEFAULT_PAGE_SIZE,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip (0: the first).")
    ] = 0,
) -> PageRequest:
    """Which page of a list the caller asks for (`?limit=&offset=`)."""
    return PageRequest(limit=limit, offset=offset)


PageDep = Annotated[PageRequest, Depends(page_request)]
CaseFilter = Annotated[
    str | None,
    Query(max_length=limits.CASE_NUMBER.max_length, description="Only this case number's."),
]


def paged_in_memory(items: list[T], page: PageRequest) -> list[T]:
    """One page of a short list the workflow reads whole (users, pending changes)."""
    return items[page.offset : page.offset + page.limit]


# The answers' models: what /openapi.json says each route sends.
OutcomeModel = model_of(RequestOutcome)
ProbeCheckModel = model_of(ProbeCheck, verdict=(str, ...))
ReviewModel = model_of(CandidateReview)
CandidatesModel = model_of(CandidateReview, faces=(model_of(ReviewMaterial) | None, None))
CandidateModel = model_of(CandidateView)
RequestPage = page_model(model_of(RequestSummary))
ReviewPage = page_model(model_of(ReviewItem))
ApprovalPage = page_model(model_of(PendingRequest))
UserPage = page_model(model_of(UserInfo))
ChangePage = page_model(model_of(ChangeInfo))
SubjectPage = page_model(model_of(SubjectSummary))


class ModelsAnswer(BaseModel):
    models: list[model_of(ModelView)]  # type: ignore[valid-type]


class ModelAnswer(BaseModel):
    model: model_of(ModelView)  # type: ignore[valid-type]


class ChangeAnswer(BaseModel):
    change: model_of(ChangeInfo)  # type: ignore[valid-type]


class UserAnswer(BaseModel):
    user: model_of(UserInfo)  # type: ignore[valid-type]


class PolicyAnswer(BaseModel):
    policy: model_of(PolicyInfo) | None  # type: ignore[valid-type]


class CheckpointAnswer(BaseModel):
    checkpoint: model_of(LatestCheckpoint) | None  # type: ignore[valid-type]


EnrolmentModel = model_of(EnrolmentOutcome)


class EnrolmentAnswer(BaseModel):
    outcomes: list[EnrolmentModel]  # type: ignore[valid-type]


# -- sessions -------------------------------------------------------------------------------


class LoginBody(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=limits.USERNAME.max_length)]
    password: Password


@router.get(
    "/status",
    summary="The workspace's purpose and whether it is set up (public)",
    response_model=WorkspaceStatus,
)
def status(state: StateDep) -> Json:
    found = run(state, workspace_state, state.workflow)
    return {
        "purpose": found.purpose,
        "timezone": found.timezone,
        "needs_first_run": not found.has_users,
        "policy_active": found.policy_active,
    }


def do_login(state: ServerState, username: str, password: str) -> tuple[str, Json]:
    """Log in through the workflow behind the server's lock-out; the token and a summary."""
    try:
        # Before the lock-out's record: PostgreSQL cannot store a NUL in it (a 500).
        limits.USERNAME.check(username)
        limits.PASSWORD.check(password)
    except limits.TextRefusedError as error:
        raise as_refused(error) from None
    wait = state.guard.locked_out(username)
    if wait:
        raise RefusedError(
            429,
            f"too many failed logins for this username; try again in {wait // 60 + 1} minutes",
            headers={"Retry-After": str(wait)},
        )
    try:
        result = state.call(login, state.workflow, username, password)
    except USER_ERRORS as error:
        # A busy database says nothing of the password: no step towards a lock-out.
        if not isinstance(error, WorkspaceBusyError):
            state.guard.login_failed(username)
        raise as_refused(error) from None
    # The login is committed and audited: a busy database while clearing its earlier
    # failures must not turn it into a refusal (they expire with their window anyway).
    with contextlib.suppress(WorkspaceBusyError):
        state.guard.login_succeeded(username)
    return result.token, {"username": result.username, "expires_at": result.expires_at}


@router.post("/login", summary="Log in; returns a bearer token", response_model=LoginAnswer)
def api_login(state: StateDep, body: LoginBody) -> Json:
    token, summary = do_login(state, body.username, body.password)
    return json_of({"token": token, "token_type": "bearer", **summary})


@router.post("/logout", summary="End this session", response_model=LogoutAnswer)
def api_logout(state: StateDep, who: CallerDep) -> Json:
    actor = run(state, logout, state.workflow, who.session_token)
    state.drop_staged_of(who.session_token)
    return {"ok": True, "username": actor.username}


@router.get("/me", summary="Who this token belongs to", response_model=Me)
def me(state: StateDep, who: CallerDep) -> Json:
    view = run(state, session_view, state.workflow, who.session_token)
    return json_of(
        {
            "username": view.actor.username,
            "unit": view.actor.unit,
            "roles": sorted(view.actor.roles),
            "certificate_valid": view.actor.certificate_valid,
            "expires_at": view.expires_at,
        }
    )


class PasswordBody(BaseModel):
    new_password: Password


@router.post(
    "/password",
    summary="Choose my own password (after an admin's reset, the one thing allowed)",
    response_model=LogoutAnswer,
)
def api_change_password(state: StateDep, who: CallerDep, body: PasswordBody) -> Json:
    run(state, change_password, state.workflow, who.signed_in, body.new_password)
    return {"ok": True, "username": who.signed_in.username}


# -- requests -------------------------------------------------------------------------------


def request_form(
    case_number: Annotated[str, Form(min_length=1, max_length=limits.CASE_NUMBER.max_length)],
    offence_category: Annotated[
        str, Form(min_length=1, max_length=limits.OFFENCE_CATEGORY.max_length)
    ],
    purpose: Annotated[str, Form(min_length=1, max_length=limits.PURPOSE.max_length)],
    requesting_agency: Annotated[
        str, Form(min_length=1, max_length=limits.REQUESTING_AGENCY.max_length)
    ],
    requesting_unit: Annotated[
        str, Form(min_length=1, max_length=limits.REQUESTING_UNIT.max_length)
    ],
    probe_kind: Annotated[
        str, Form(min_length=1, max_length=limits.PROBE_KIND.max_length)
    ] = "still_photo",
    authorisation_ref: Annotated[
        str | None, Form(max_length=limits.AUTHORISATION_REF.max_length)
    ] = None,
    edits: Annotated[str | None, Form(max_length=limits.EDITS.max_length)] = None,
) -> RequestForm:
    """The case form every search and verification states."""
    return RequestForm(
        case_number=case_number,
        offence_category=offence_category,
        purpose=purpose,
        requesting_agency=requesting_agency,
        requesting_unit=requesting_unit,
        probe_kind=probe_kind,
        authorisation_ref=authorisation_ref or None,
        edits=edits or None,
    )


FormDep = Annotated[RequestForm, Depends(request_form)]
FaceIndex = Annotated[int | None, Form(ge=0, le=1000)]


def saved(folder: Path, upload: UploadFile, fallback: str) -> Path:
    """An uploaded photo written to our private folder, refused when over the size limit."""
    name = safe_filename(upload.filename, fallback)
    data = read_limited(upload.file, UPLOAD_MAX_BYTES, name)
    path = folder / name
    if path.exists():
        path = folder / f"2-{name}"
    path.write_bytes(data)
    return path


@router.post(
    "/probe-checks",
    summary="Faces and quality of a photo, without searching",
    response_model=ProbeCheckModel,
)
def api_check_probe(state: StateDep, who: CallerDep, probe: Annotated[UploadFile, File()]) -> Json:
    with state.upload_folder() as folder:
        path = saved(folder, probe, "probe")
        found = run(state, check_probe, state.workflow, who.signed_in, path)
    return json_of({**dataclasses.asdict(found), "verdict": found.verdict})


def created(response: Response, outcome: RequestOutcome) -> Json:
    """A new request's answer: 201, and where it stands from now on (Location)."""
    response.status_code = 201
    response.headers["Location"] = f"/api/requests/{outcome.search_id}"
    return json_of(outcome)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        description=(
            "A key of the caller's choosing (a UUID, say) that makes a retry one request: "
            "sent again with the same key and the same request, the first request's "
            "outcome is answered and nothing new is made; with another request, 422."
        ),
    ),
]


@router.post(
    "/searches",
    summary="Request a 1:N search (runs at once when the policy allows)",
    status_code=201,
    response_model=OutcomeModel,
    responses={201: {"headers": {"Location": {"description": "The request's own URL."}}}},
)
def api_search(
    state: StateDep,
    who: CallerDep,
    form: FormDep,
    response: Response,
    probe: Annotated[UploadFile, File()],
    original_probe: Annotated[UploadFile | None, File()] = None,
    top: Annotated[int, Form(ge=1, le=1000)] = 20,
    face_index: FaceIndex = None,
    idempotency_key: IdempotencyKey = None,
) -> Json:
    with state.upload_folder() as folder:
        path = saved(folder, probe, "probe")
        original = None if original_probe is None else saved(folder, original_probe, "original")
        if idempotency_key is None:
            outcome = run_choosing(
                state,
                "face_index",
                request_search,
                state.workflow,
                who.signed_in,
                path,
                form,
                top=top,
                face_index=face_index,
                original_probe=original,
            )
        else:
            once = run_choosing(
                state,
                "face_index",
                search_once,
                state.workflow,
                who.signed_in,
                idempotency_key,
                path,
                form,
                top=top,
                face_index=face_index,
                original_probe=original,
            )
            outcome = once.outcome
            if once.replayed:
                response.headers["Idempotent-Replayed"] = "true"
    return created(response, outcome)


@router.post(
    "/verifications",
    summary="Request a 1:1 comparison of two photos",
    status_code=201,
    response_model=OutcomeModel,
    responses={201: {"headers": {"Location": {"description": "The request's own URL."}}}},
)
def api_verify(
    state: StateDep,
    who: CallerDep,
    form: FormDep,
    response: Response,
    first: Annotated[UploadFile, File()],
    second: Annotated[UploadFile, File()],
    first_face: FaceIndex = None,
    second_face: FaceIndex = None,
) -> Json:
    outcome = verify_uploads(
        state, who, form, first, second, first_face, second_face, face_fields=API_FACE_FIELDS
    )
    return created(response, outcome)


# The API's form fields that choose a face in each photo of a verification.
API_FACE_FIELDS = ("first_face", "second_face")


def verify_uploads(
    state: ServerState,
    who: Caller,
    form: RequestForm,
    first: UploadFile,
    second: UploadFile,
    first_face: int | None,
    second_face: int | None,
    *,
    face_fields: tuple[str, str] | None = None,
) -> RequestOutcome:
    """Save two uploaded photos privately and request their 1:1 comparison (page and API).

    face_fields: the fields that choose a face in each photo, for a refusal to name.
    """
    with state.upload_folder() as folder:
        one, two = saved(folder, first, "first"), saved(folder, second, "second")
        try:
            return run(
                state,
                request_verify,
                state.workflow,
                who.signed_in,
                one,
                two,
                form,
                first_face=first_face,
                second_face=second_face,
            )
        except RefusedError as refusal:
            cause = refusal.__context__
            if face_fields is None or not isinstance(cause, MultipleFacesError):
                raise
            field = face_fields[0] if cause.name == one.name else face_fields[1]
            raise several_faces(cause, field) from None


StatusFilter = Annotated[
    str | None,
    Query(max_length=20, description="Only requests in this status (pending_approval, ...)."),
]


@router.get("/requests", summary="My requests, oldest first", response_model=RequestPage)
def api_my_requests(
    state: StateDep,
    who: CallerDep,
    page: PageDep,
    status: StatusFilter = None,
    case: CaseFilter = None,
) -> Json:
    found = run(state, my_requests, state.workflow, who.signed_in, page, status=status, case=case)
    return page_json(found, to_jsonable(list(found.items)))


@router.get(
    "/requests/{search_id}",
    summary="Where a request stands",
    response_model=model_of(RequestStatus),
)
def api_request(state: StateDep, who: CallerDep, search_id: SearchId) -> Json:
    return json_of(run(state, request_status, state.workflow, who.signed_in, search_id))


@router.post(
    "/requests/{search_id}/run",
    summary="Run my approved request (once)",
    response_model=OutcomeModel,
)
def api_run(state: StateDep, who: CallerDep, search_id: SearchId) -> Json:
    return json_of(run(state, run_approved, state.workflow, who.signed_in, search_id))


@router.get(
    "/requests/{search_id}/leads",
    summary="Released leads of a request",
    response_model=ReviewModel,
)
def api_leads(state: StateDep, who: CallerDep, search_id: SearchId) -> Json:
    return json_of(run(state, released_leads, state.workflow, who.signed_in, search_id))


# -- approvals --------------------------------------------------------------------------------


class ApprovalBody(BaseModel):
    decision: Literal["approve", "reject"]
    reason: Reason


@router.get(
    "/approvals",
    summary="Requests waiting for a supervisor, oldest first",
    response_model=ApprovalPage,
)
def api_approvals(state: StateDep, who: CallerDep, page: PageDep, case: CaseFilter = None) -> Json:
    found = run(state, pending_approvals, state.workflow, who.signed_in, page, case=case)
    return page_json(found, to_jsonable(list(found.items)))


@router.post(
    "/approvals/{search_id}",
    summary="Approve or reject a waiting request",
    response_model=OutcomeModel,
)
def api_decide(state: StateDep, who: CallerDep, search_id: SearchId, body: ApprovalBody) -> Json:
    outcome = run(
        state,
        decide_approval,
        state.workflow,
        who.signed_in,
        search_id,
        approve=body.decision == "approve",
        reason=body.reason,
    )
    return json_of(outcome)


# -- review -----------------------------------------------------------------------------------


class VerdictBody(BaseModel):
    # One of VERDICTS: the workflow refuses any other, naming them; the schema lists them.
    verdict: Annotated[str, Field(max_length=50, json_schema_extra={"enum": list(VERDICTS)})]
    rationale: Annotated[str, Field(min_length=1, max_length=limits.RATIONALE.max_length)]


class ReleaseBody(BaseModel):
    reason: Reason


@router.get(
    "/reviews", summary="Candidate lists I may review, oldest first", response_model=ReviewPage
)
def api_reviews(
    state: StateDep,
    who: CallerDep,
    page: PageDep,
    case: CaseFilter = None,
    overdue: Annotated[
        bool | None, Query(description="Only lists past the policy's review_within_days.")
    ] = None,
) -> Json:
    found = run(
        state, review_queue, state.workflow, who.signed_in, page, case=case, overdue=overdue
    )
    return page_json(found, to_jsonable(list(found.items)))


@router.get(
    "/todo", summary="What waits for me, by kind, with counts", response_model=model_of(Todo)
)
def api_todo(state: StateDep, who: CallerDep) -> Json:
    return json_of(run(state, todo, state.workflow, who.signed_in))


@router.get(
    "/requests/{search_id}/candidates",
    summary="A candidate list (audited)",
    response_model=CandidatesModel,
)
def api_candidates(
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    faces: Annotated[bool, Query(description="Include face crops (PNG, base64).")] = False,
) -> Json:
    review = run(state, view_candidates, state.workflow, who.signed_in, search_id)
    payload: Json = to_jsonable(review)
    if faces:
        material = run(state, review_material, state.workflow, who.signed_in, search_id)
        payload["faces"] = to_jsonable(material)
    return payload


@router.post(
    "/requests/{search_id}/candidates/{rank}/verdict",
    summary="My verdict on one candidate",
    response_model=CandidateModel,
)
def api_verdict(
    state: StateDep, who: CallerDep, search_id: SearchId, rank: Rank, body: VerdictBody
) -> Json:
    view = run(
        state,
        record_verdict,
        state.workflow,
        who.signed_in,
        search_id,
        rank,
        body.verdict,
        body.rationale,
    )
    return json_of(view)


@router.post(
    "/requests/{search_id}/candidates/{rank}/release",
    summary="Release a lead",
    response_model=CandidateModel,
)
def api_release(
    state: StateDep, who: CallerDep, search_id: SearchId, rank: Rank, body: ReleaseBody
) -> Json:
    view = run(state, release_lead, state.workflow, who.signed_in, search_id, rank, body.reason)
    return json_of(view)


class OutcomeBody(BaseModel):
    # One of LEAD_OUTCOMES: the workflow refuses any other, naming them; the schema lists them.
    outcome: Annotated[str, Field(max_length=50, json_schema_extra={"enum": list(LEAD_OUTCOMES)})]
    note: Annotated[str, Field(max_length=limits.REASON.max_length)] = ""


@router.post(
    "/requests/{search_id}/candidates/{rank}/outcome",
    summary="Record what came of a released lead of my search (audited)",
    status_code=201,
    response_model=model_of(LeadOutcomes),
    responses={201: {"headers": {"Location": {"description": "The request's released leads."}}}},
)
def api_outcome(
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    rank: Rank,
    body: OutcomeBody,
    response: Response,
) -> Json:
    recorded = run(
        state,
        record_lead_outcome,
        state.workflow,
        who.signed_in,
        search_id,
        rank,
        body.outcome,
        body.note,
    )
    response.headers["Location"] = f"/api/requests/{search_id}/leads"
    return json_of(recorded)


# -- audit ------------------------------------------------------------------------------------


@router.get(
    "/audit/verification",
    summary="Verify the whole audit log",
    # verify_log's report carries the store's reconciliation too (a subclass).
    response_model=model_of(StoreCheckedReport),
)
def api_verify_log(state: StateDep, who: CallerDep) -> Json:
    return json_of(run(state, verify_log, state.workflow, who.signed_in))


@router.get(
    "/audit/checkpoint", summary="The latest signed checkpoint", response_model=CheckpointAnswer
)
def api_latest_checkpoint(state: StateDep, who: CallerDep) -> Json:
    found = run(state, latest_checkpoint, state.workflow, who.signed_in)
    return json_of({"checkpoint": found})


@router.post(
    "/audit/checkpoints",
    summary="Sign a checkpoint now",
    status_code=201,
    response_model=model_of(CheckpointInfo),
    responses={201: {"headers": {"Location": {"description": "The latest checkpoint."}}}},
)
def api_checkpoint(state: StateDep, who: CallerDep, response: Response) -> Json:
    made = json_of(run(state, checkpoint_now, state.workflow, who.signed_in))
    response.headers["Location"] = "/api/audit/checkpoint"
    return made


@router.get(
    "/audit/entries",
    summary="Audit log entries, newest first, by case, user, action and time",
    response_model=page_model(model_of(LoggedEntry)),
)
def api_audit_entries(
    state: StateDep,
    who: CallerDep,
    page: PageDep,
    case: CaseFilter = None,
    user: Annotated[
        str | None, Query(max_length=limits.USERNAME.max_length, description="Who acted.")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="The action, e.g. search.requested.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="From this time (with its time zone).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Before this time (with its time zone).")
    ] = None,
) -> Json:
    chosen = EntryFilter(
        case_number=case or None,
        actor=user or None,
        action=action or None,
        since=since,
        until=until,
    )
    found = run(state, list_entries, state.workflow, who.signed_in, chosen, page)
    return page_json(found, to_jsonable(list(found.items)))


@router.get(
    "/audit/entries/{seq}/proof",
    summary="Inclusion proof of one entry",
    response_model=model_of(InclusionProof),
)
def api_prove(
    state: StateDep, who: CallerDep, seq: Annotated[int, PathParam(ge=1, le=MAX_ID)]
) -> Json:
    return json_of(run(state, prove_entry, state.workflow, who.signed_in, seq))


def export_archive(state: ServerState, who: Caller, kind: str) -> Response:
    """The audit export (entries, checkpoints, public key) as one zip or tar.gz download."""
    import tarfile

    with state.upload_folder() as folder:
        target = folder / "audit-export"
        info = run(state, export_log, state.workflow, who.signed_in, target)
        buffer = io.BytesIO()
        name = f"candor-audit-{info.tree_size}"
        if kind == "zip":
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(target.rglob("*")):
                    if path.is_file():
                        archive.write(path, f"{name}/{path.relative_to(target)}")
            media, filename = "application/zip", f"{name}.zip"
        else:
            with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
                archive.add(target, arcname=name)
            media, filename = "application/gzip", f"{name}.tar.gz"
    return Response(
        buffer.getvalue(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/audit/export",
    summary="Export the audit log (zip or tar.gz)",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}, "application/gzip": {}}}},
)
def api_export(
    state: StateDep,
    who: CallerDep,
    format: Annotated[Literal["zip", "tar"], Query()] = "zip",
) -> Response:
    return export_archive(state, who, format)


# -- policy, users, changes ---------------------------------------------------------------------


@router.get("/policy", summary="The policy in force", response_model=PolicyAnswer)
def api_policy(state: StateDep, who: CallerDep) -> Json:
    return json_of({"policy": run(state, active_policy_info, state.workflow)})


@router.post(
    "/policy",
    summary="Ask to put a policy file in force (a second admin confirms)",
    response_model=ChangeAnswer,
)
def api_policy_change(
    state: StateDep, who: CallerDep, policy: Annotated[UploadFile, File()]
) -> Json:
    with state.upload_folder() as folder:
        path = folder / safe_filename(policy.filename, "policy.toml")
        path.write_bytes(read_limited(policy.file, 1 << 20, path.name))
        change = run(state, request_policy_change, state.workflow, who.signed_in, path)
    return json_of({"change": change})


class NewUserBody(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=limits.USERNAME.max_length)]
    unit: Annotated[str, Field(min_length=1, max_length=limits.UNIT.max_length)]
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=5)]
    certificate_ref: CertificateRef
    certificate_expires: date
    password: Password
    display_name: Annotated[str | None, Field(max_length=limits.DISPLAY_NAME.max_length)] = None


class RoleBody(BaseModel):
    role: RoleName


class ReasonBody(BaseModel):
    reason: Reason


@router.get("/users", summary="Every user (admins and auditors)", response_model=UserPage)
def api_users(state: StateDep, who: CallerDep, page: PageDep) -> Json:
    users = run(state, list_user_infos, state.workflow, who.signed_in)
    found = page_of(paged_in_memory(users, page), len(users), page)
    return page_json(found, to_jsonable(list(found.items)))


def new_user(body: NewUserBody) -> NewUser:
    return NewUser(
        username=body.username,
        unit=body.unit,
        certificate_ref=body.certificate_ref,
        certificate_expires=body.certificate_expires,
        password=body.password,
        display_name=body.display_name,
        roles=tuple(body.roles),
    )


@router.post(
    "/users", summary="Ask for a new user (a second admin confirms)", response_model=ChangeAnswer
)
def api_add_user(state: StateDep, who: CallerDep, body: NewUserBody) -> Json:
    change = run(state, request_user, state.workflow, who.signed_in, new_user(body))
    return json_of({"change": change})


@router.post("/users/{username}/roles", summary="Ask to grant a role", response_model=ChangeAnswer)
def api_grant(state: StateDep, who: CallerDep, username: Username, body: RoleBody) -> Json:
    change = run(state, request_role_grant, state.workflow, who.signed_in, username, body.role)
    return json_of({"change": change})


@router.delete(
    "/users/{username}/roles/{role}", summary="Ask to revoke a role", response_model=ChangeAnswer
)
def api_revoke(state: StateDep, who: CallerDep, username: Username, role: RoleName) -> Json:
    change = run(state, request_role_revoke, state.workflow, who.signed_in, username, role)
    return json_of({"change": change})


@router.post(
    "/users/{username}/disable", summary="Disable a user at once", response_model=UserAnswer
)
def api_disable(state: StateDep, who: CallerDep, username: Username) -> Json:
    return json_of({"user": run(state, disable_user, state.workflow, who.signed_in, username)})


@router.post(
    "/users/{username}/enable", summary="Ask to enable a user", response_model=ChangeAnswer
)
def api_enable(state: StateDep, who: CallerDep, username: Username) -> Json:
    change = run(state, request_enable, state.workflow, who.signed_in, username)
    return json_of({"change": change})


class ResetBody(BaseModel):
    temporary_password: Password


@router.post(
    "/users/{username}/password",
    summary="Reset another user's password (audited; they choose a new one at next login)",
    response_model=UserAnswer,
)
def api_reset_password(
    state: StateDep, who: CallerDep, username: Username, body: ResetBody
) -> Json:
    user = run(
        state, reset_password, state.workflow, who.signed_in, username, body.temporary_password
    )
    return json_of({"user": user})


# -- face models (read only: adding and confirming one is done with `candor model`) --------


@router.get(
    "/models",
    summary="The face models: the built-in one, then each added one (admins and auditors)",
    response_model=ModelsAnswer,
)
def api_models(state: StateDep, who: CallerDep) -> Json:
    return json_of({"models": run(state, model_views, state.workflow, who.signed_in)})


@router.get(
    "/models/{name}",
    summary="One face model: its file check, calibration and activations (admins and auditors)",
    response_model=ModelAnswer,
)
def api_model(state: StateDep, who: CallerDep, name: ModelName) -> Json:
    return json_of({"model": run(state, model_view, state.workflow, who.signed_in, name)})


@router.get(
    "/changes",
    summary="Admin changes waiting for a second admin, oldest first",
    response_model=ChangePage,
)
def api_changes(state: StateDep, who: CallerDep, page: PageDep) -> Json:
    changes = run(state, pending_change_infos, state.workflow, who.signed_in)
    found = page_of(paged_in_memory(changes, page), len(changes), page)
    return page_json(found, to_jsonable(list(found.items)))


@router.post(
    "/changes/{change_id}/confirm",
    summary="Confirm another admin's change",
    response_model=ChangeAnswer,
)
def api_confirm(state: StateDep, who: CallerDep, change_id: ChangeId) -> Json:
    return json_of({"change": run(state, confirm_change, state.workflow, who.signed_in, change_id)})


@router.post(
    "/changes/{change_id}/reject", summary="Reject a pending change", response_model=ChangeAnswer
)
def api_reject(state: StateDep, who: CallerDep, change_id: ChangeId, body: ReasonBody) -> Json:
    change = run(state, reject_change, state.workflow, who.signed_in, change_id, body.reason)
    return json_of({"change": change})


# -- gallery ----------------------------------------------------------------------------------


@router.get("/gallery/subjects", summary="Enrolled subjects, by id", response_model=SubjectPage)
def api_subjects(
    state: StateDep,
    who: CallerDep,
    page: PageDep,
    prefix: Annotated[
        str,
        Query(
            max_length=limits.SUBJECT_REF.max_length,
            description="Only subjects whose reference starts with this (any letter case).",
        ),
    ] = "",
) -> Json:
    found = run(state, gallery_subject_page, state.workflow, who.signed_in, page, prefix=prefix)
    return page_json(found, to_jsonable(list(found.items)))


@router.get(
    "/gallery/subjects/{subject_ref}",
    summary="One subject with provenance",
    response_model=model_of(SubjectDetail),
)
def api_subject(state: StateDep, who: CallerDep, subject_ref: SubjectRefPath) -> Json:
    return json_of(run(state, gallery_subject, state.workflow, who.signed_in, subject_ref))


@router.post(
    "/gallery/subjects/{subject_ref}/expunge",
    summary="Ask to expunge a subject, with a reason (a second admin confirms)",
    response_model=ChangeAnswer,
)
def api_expunge(
    state: StateDep, who: CallerDep, subject_ref: SubjectRefPath, body: ReasonBody
) -> Json:
    change = run(state, request_expunge, state.workflow, who.signed_in, subject_ref, body.reason)
    return json_of({"change": change})


def provenance_form(
    source_type: Annotated[str, Form(min_length=1, max_length=limits.SOURCE_TYPE.max_length)],
    source_ref: Annotated[str, Form(min_length=1, max_length=limits.SOURCE_REF.max_length)],
    legal_basis: Annotated[str, Form(min_length=1, max_length=limits.LEGAL_BASIS.max_length)],
    collected_on: Annotated[date, Form()],
    retain_until: Annotated[date, Form()],
) -> Provenance:
    """Where the photos came from and on what authority they are held."""
    return Provenance(
        source_type=source_type,
        source_ref=source_ref,
        legal_basis=legal_basis,
        collected_on=collected_on,
        retain_until=retain_until,
    )


ProvenanceDep = Annotated[Provenance, Depends(provenance_form)]
MAX_ENROL_FILES = 20


def enrol_uploads(
    state: ServerState,
    who: Caller,
    subject_ref: str,
    photos: list[UploadFile],
    provenance: Provenance,
    face_index: int | None,
    *,
    refuse_several_faces: bool = False,
) -> Json:
    """Enrol the uploads. refuse_several_faces: without face_index, a photo showing several
    faces is refused (422, naming face_index and listing the faces) instead of enrolling
    the face the engine would pick; the web page checks (and offers the choice) itself."""
    if not 1 <= len(photos) <= MAX_ENROL_FILES:
        raise RefusedError(400, f"send 1 to {MAX_ENROL_FILES} photos per enrolment")
    with state.upload_folder() as folder:
        requests = []
        for number, photo in enumerate(photos, start=1):
            sub = folder / str(number)
            sub.mkdir()
            requests.append(EnrolmentRequest(saved(sub, photo, f"photo-{number}"), subject_ref))
        if refuse_several_faces and face_index is None:
            for request in requests:
                _refuse_several_faces(state, who, request.path)
        summary = run_choosing(
            state,
            "face_index",
            enrol_files,
            state.workflow,
            who.signed_in,
            requests,
            provenance,
            workers=1,
            face_index=face_index,
        )
    outcomes = [
        {
            **to_jsonable(outcome),
            "path": outcome.path.name,
            "reason": None
            if outcome.reason is None
            else without_server_folders(outcome.reason, state.workflow.workspace.home),
        }
        for outcome in summary.outcomes
    ]
    return {"outcomes": outcomes}


# What the enrolment reports itself (per file or for the call) when the face check fails.
PRECHECK_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, OSError)


def _refuse_several_faces(state: ServerState, who: Caller, path: Path) -> None:
    """A 422 multiple-faces problem when the photo at `path` shows several faces: a
    subject's gallery photo is never chosen by a guess (the same rule as the web's)."""
    try:
        faces = state.call(enrolment_faces, state.workflow, who.signed_in, path)
    except PRECHECK_ERRORS:
        # Not a photo, or no permission: the enrolment itself says so (per file, or for
        # the whole call) exactly as it did before this check.
        return
    if len(faces) > 1:
        listed: list[dict[str, object]] = [
            {
                "face": face.index,
                "box": list(face.box),
                "quality": face.quality,
                "usable": face.usable,
            }
            for face in faces
        ]
        raise several_faces(MultipleFacesError(path.name, listed), "face_index")


@router.post(
    "/gallery/enrolments",
    summary="Enrol photos of one subject, with provenance",
    response_model=EnrolmentAnswer,
)
def api_enrol(
    state: StateDep,
    who: CallerDep,
    provenance: ProvenanceDep,
    subject_ref: SubjectRef,
    photos: Annotated[list[UploadFile], File()],
    face_index: FaceIndex = None,
) -> Json:
    return enrol_uploads(
        state, who, subject_ref, photos, provenance, face_index, refuse_several_faces=True
    )
