"""The JSON API: every route calls the workflow as the caller the bearer token names.

No route takes the acting user from its input: the actor is always the one behind the
token, so nobody acts as another. Workflow refusals come back as 4xx with their one-line
reason (see errors.py).
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

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from candor.server.auth import Caller, caller, server_state
from candor.server.errors import (
    USER_ERRORS,
    RefusedError,
    as_refused,
    one_line,
    without_server_folders,
)
from candor.server.state import ServerState, read_limited, safe_filename
from candor.workflow import (
    VERDICTS,
    EnrolmentRequest,
    Provenance,
    RequestForm,
    RequestOutcome,
    WorkspaceBusyError,
    decide_approval,
    enrol_files,
    gallery_subject,
    gallery_subjects,
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
    NewUser,
    active_policy_info,
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
    session_view,
)
from candor.workflow.audit_ops import checkpoint_now, export_log, prove_entry, verify_log
from candor.workflow.probe_check import UPLOAD_MAX_BYTES, check_probe, review_material
from candor.workflow.worklists import (
    latest_checkpoint,
    my_requests,
    request_status,
    review_queue,
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
        raise as_refused(error) from None
    except OSError as error:
        raise RefusedError(400, one_line(error)) from None


StateDep = Annotated[ServerState, Depends(server_state)]
CallerDep = Annotated[Caller, Depends(caller)]


# -- sessions -------------------------------------------------------------------------------


class LoginBody(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=limits.USERNAME.max_length)]
    password: Password


@router.get("/status", summary="The workspace's purpose and whether it is set up (public)")
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


@router.post("/login", summary="Log in; returns a bearer token")
def api_login(state: StateDep, body: LoginBody) -> Json:
    token, summary = do_login(state, body.username, body.password)
    return json_of({"token": token, "token_type": "bearer", **summary})


@router.post("/logout", summary="End this session")
def api_logout(state: StateDep, who: CallerDep) -> Json:
    actor = run(state, logout, state.workflow, who.session_token)
    state.drop_staged_of(who.session_token)
    return {"ok": True, "username": actor.username}


@router.get("/me", summary="Who this token belongs to")
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


@router.post("/probe-checks", summary="Faces and quality of a photo, without searching")
def api_check_probe(state: StateDep, who: CallerDep, probe: Annotated[UploadFile, File()]) -> Json:
    with state.upload_folder() as folder:
        path = saved(folder, probe, "probe")
        found = run(state, check_probe, state.workflow, who.signed_in, path)
    return json_of({**dataclasses.asdict(found), "verdict": found.verdict})


@router.post("/searches", summary="Request a 1:N search (runs at once when the policy allows)")
def api_search(
    state: StateDep,
    who: CallerDep,
    form: FormDep,
    probe: Annotated[UploadFile, File()],
    original_probe: Annotated[UploadFile | None, File()] = None,
    top: Annotated[int, Form(ge=1, le=1000)] = 20,
    face_index: FaceIndex = None,
) -> Json:
    with state.upload_folder() as folder:
        path = saved(folder, probe, "probe")
        original = None if original_probe is None else saved(folder, original_probe, "original")
        outcome = run(
            state,
            request_search,
            state.workflow,
            who.signed_in,
            path,
            form,
            top=top,
            face_index=face_index,
            original_probe=original,
        )
    return json_of(outcome)


@router.post("/verifications", summary="Request a 1:1 comparison of two photos")
def api_verify(
    state: StateDep,
    who: CallerDep,
    form: FormDep,
    first: Annotated[UploadFile, File()],
    second: Annotated[UploadFile, File()],
    first_face: FaceIndex = None,
    second_face: FaceIndex = None,
) -> Json:
    return json_of(verify_uploads(state, who, form, first, second, first_face, second_face))


def verify_uploads(
    state: ServerState,
    who: Caller,
    form: RequestForm,
    first: UploadFile,
    second: UploadFile,
    first_face: int | None,
    second_face: int | None,
) -> RequestOutcome:
    """Save two uploaded photos privately and request their 1:1 comparison (page and API)."""
    with state.upload_folder() as folder:
        one, two = saved(folder, first, "first"), saved(folder, second, "second")
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


@router.get("/requests", summary="My latest requests")
def api_my_requests(state: StateDep, who: CallerDep) -> Json:
    return json_of({"requests": run(state, my_requests, state.workflow, who.signed_in)})


@router.get("/requests/{search_id}", summary="Where a request stands")
def api_request(state: StateDep, who: CallerDep, search_id: SearchId) -> Json:
    return json_of(run(state, request_status, state.workflow, who.signed_in, search_id))


@router.post("/requests/{search_id}/run", summary="Run my approved request (once)")
def api_run(state: StateDep, who: CallerDep, search_id: SearchId) -> Json:
    return json_of(run(state, run_approved, state.workflow, who.signed_in, search_id))


@router.get("/requests/{search_id}/leads", summary="Released leads of a request")
def api_leads(state: StateDep, who: CallerDep, search_id: SearchId) -> Json:
    return json_of(run(state, released_leads, state.workflow, who.signed_in, search_id))


# -- approvals --------------------------------------------------------------------------------


class ApprovalBody(BaseModel):
    decision: Literal["approve", "reject"]
    reason: Reason


@router.get("/approvals", summary="Requests waiting for a supervisor")
def api_approvals(state: StateDep, who: CallerDep) -> Json:
    return json_of({"pending": run(state, pending_approvals, state.workflow, who.signed_in)})


@router.post("/approvals/{search_id}", summary="Approve or reject a waiting request")
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


@router.get("/reviews", summary="Candidate lists I may review")
def api_reviews(state: StateDep, who: CallerDep) -> Json:
    return json_of({"reviews": run(state, review_queue, state.workflow, who.signed_in)})


@router.get("/requests/{search_id}/candidates", summary="A candidate list (audited)")
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
    "/requests/{search_id}/candidates/{rank}/verdict", summary="My verdict on one candidate"
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


@router.post("/requests/{search_id}/candidates/{rank}/release", summary="Release a lead")
def api_release(
    state: StateDep, who: CallerDep, search_id: SearchId, rank: Rank, body: ReleaseBody
) -> Json:
    view = run(state, release_lead, state.workflow, who.signed_in, search_id, rank, body.reason)
    return json_of(view)


# -- audit ------------------------------------------------------------------------------------


@router.get("/audit/verification", summary="Verify the whole audit log")
def api_verify_log(state: StateDep, who: CallerDep) -> Json:
    return json_of(run(state, verify_log, state.workflow, who.signed_in))


@router.get("/audit/checkpoint", summary="The latest signed checkpoint")
def api_latest_checkpoint(state: StateDep, who: CallerDep) -> Json:
    found = run(state, latest_checkpoint, state.workflow, who.signed_in)
    return json_of({"checkpoint": found})


@router.post("/audit/checkpoints", summary="Sign a checkpoint now")
def api_checkpoint(state: StateDep, who: CallerDep) -> Json:
    return json_of(run(state, checkpoint_now, state.workflow, who.signed_in))


@router.get("/audit/entries/{seq}/proof", summary="Inclusion proof of one entry")
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


@router.get("/policy", summary="The policy in force")
def api_policy(state: StateDep, who: CallerDep) -> Json:
    return json_of({"policy": run(state, active_policy_info, state.workflow)})


@router.post("/policy", summary="Ask to put a policy file in force (a second admin confirms)")
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


@router.get("/users", summary="Every user (admins and auditors)")
def api_users(state: StateDep, who: CallerDep) -> Json:
    return json_of({"users": run(state, list_user_infos, state.workflow, who.signed_in)})


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


@router.post("/users", summary="Ask for a new user (a second admin confirms)")
def api_add_user(state: StateDep, who: CallerDep, body: NewUserBody) -> Json:
    change = run(state, request_user, state.workflow, who.signed_in, new_user(body))
    return json_of({"change": change})


@router.post("/users/{username}/roles", summary="Ask to grant a role")
def api_grant(state: StateDep, who: CallerDep, username: Username, body: RoleBody) -> Json:
    change = run(state, request_role_grant, state.workflow, who.signed_in, username, body.role)
    return json_of({"change": change})


@router.delete("/users/{username}/roles/{role}", summary="Ask to revoke a role")
def api_revoke(state: StateDep, who: CallerDep, username: Username, role: RoleName) -> Json:
    change = run(state, request_role_revoke, state.workflow, who.signed_in, username, role)
    return json_of({"change": change})


@router.post("/users/{username}/disable", summary="Disable a user at once")
def api_disable(state: StateDep, who: CallerDep, username: Username) -> Json:
    return json_of({"user": run(state, disable_user, state.workflow, who.signed_in, username)})


@router.post("/users/{username}/enable", summary="Ask to enable a user")
def api_enable(state: StateDep, who: CallerDep, username: Username) -> Json:
    change = run(state, request_enable, state.workflow, who.signed_in, username)
    return json_of({"change": change})


@router.get("/changes", summary="Admin changes waiting for a second admin")
def api_changes(state: StateDep, who: CallerDep) -> Json:
    return json_of({"pending": run(state, pending_change_infos, state.workflow, who.signed_in)})


@router.post("/changes/{change_id}/confirm", summary="Confirm another admin's change")
def api_confirm(state: StateDep, who: CallerDep, change_id: ChangeId) -> Json:
    return json_of({"change": run(state, confirm_change, state.workflow, who.signed_in, change_id)})


@router.post("/changes/{change_id}/reject", summary="Reject a pending change")
def api_reject(state: StateDep, who: CallerDep, change_id: ChangeId, body: ReasonBody) -> Json:
    change = run(state, reject_change, state.workflow, who.signed_in, change_id, body.reason)
    return json_of({"change": change})


# -- gallery ----------------------------------------------------------------------------------


@router.get("/gallery/subjects", summary="Enrolled subjects")
def api_subjects(
    state: StateDep,
    who: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Json:
    found = run(state, gallery_subjects, state.workflow, who.signed_in, limit=limit, offset=offset)
    return json_of({"subjects": found})


@router.get("/gallery/subjects/{subject_ref}", summary="One subject with provenance")
def api_subject(state: StateDep, who: CallerDep, subject_ref: SubjectRefPath) -> Json:
    return json_of(run(state, gallery_subject, state.workflow, who.signed_in, subject_ref))


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
) -> Json:
    if not 1 <= len(photos) <= MAX_ENROL_FILES:
        raise RefusedError(400, f"send 1 to {MAX_ENROL_FILES} photos per enrolment")
    with state.upload_folder() as folder:
        requests = []
        for number, photo in enumerate(photos, start=1):
            sub = folder / str(number)
            sub.mkdir()
            requests.append(EnrolmentRequest(saved(sub, photo, f"photo-{number}"), subject_ref))
        summary = run(
            state,
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
            "reason": None if outcome.reason is None else without_server_folders(outcome.reason),
        }
        for outcome in summary.outcomes
    ]
    return {"outcomes": outcomes}


@router.post("/gallery/enrolments", summary="Enrol photos of one subject, with provenance")
def api_enrol(
    state: StateDep,
    who: CallerDep,
    provenance: ProvenanceDep,
    subject_ref: SubjectRef,
    photos: Annotated[list[UploadFile], File()],
    face_index: FaceIndex = None,
) -> Json:
    return enrol_uploads(state, who, subject_ref, photos, provenance, face_index)
