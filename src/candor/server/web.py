"""The web pages: plain server-rendered HTML forms, one per step of the governed path.

Every page calls the same workflow functions as the JSON API, as the person whose
session cookie came with the request. Forms post back here with their CSRF token; a
refusal is shown as the workflow's one-line reason.
"""

from __future__ import annotations

import base64
import contextlib
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from candor.server.api import (
    MAX_ID,
    ChangeId,
    FaceIndex,
    FormDep,
    ProvenanceDep,
    SearchId,
    StateDep,
    SubjectRef,
    SubjectRefPath,
    do_login,
    enrol_uploads,
    export_archive,
    run,
    saved,
)
from candor.server.auth import (
    PRE_LOGIN_COOKIE,
    SESSION_COOKIE,
    Caller,
    caller,
    csrf_token_for,
    finish_cookies,
    server_state,
    set_cookie,
)
from candor.server.errors import USER_ERRORS, RefusedError, as_refused, one_line
from candor.server.rules import rule_for
from candor.server.state import read_limited, safe_filename
from candor.workflow import (
    VERDICTS,
    RequestForm,
    decide_approval,
    gallery_subject,
    gallery_subjects,
    limits,
    pending_approvals,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
    run_approved,
    view_candidates,
)
from candor.workflow.accounts import (
    NewUser,
    active_policy_info,
    bootstrap,
    confirm_change,
    disable_user,
    list_user_infos,
    logout,
    pending_change_infos,
    reject_change,
    request_policy_change,
    request_user,
)
from candor.workflow.audit_ops import checkpoint_now, prove_entry, verify_log
from candor.workflow.probe_check import check_probe, review_material
from candor.workflow.worklists import (
    latest_checkpoint,
    my_requests,
    request_status,
    review_queue,
    workspace_state,
)

router = APIRouter(include_in_schema=False)
CallerDep = Annotated[Caller, Depends(caller)]

PURPOSE_NOTES = {
    "evaluation": "It holds test data for measuring accuracy, not casework",
    "demo": "It holds demonstration photos only; nothing here is casework",
    "benchmark": "It holds synthetic data for speed measurements, not casework",
    "simulation": "Its activity is simulated; nothing here is casework",
}
NAVIGATION = (
    ("/home", "Home"),
    ("/search", "Search"),
    ("/verify", "Verify"),
    ("/requests", "My requests"),
    ("/approvals", "Approvals"),
    ("/review", "Review"),
    ("/audit", "Audit"),
    ("/gallery", "Gallery"),
    ("/reports/usage", "Reports"),
    ("/evaluation", "Evaluation"),
    ("/jobs", "Jobs"),
    ("/users", "Users"),
    ("/policy", "Policy"),
)
# Each verdict with its label on the review page ("possible_match": "Possible match").
VERDICT_CHOICES = tuple((verdict, verdict.replace("_", " ").capitalize()) for verdict in VERDICTS)
# The caps of the pages' text fields, from the workflow's one list of limits.
UsernameField = Annotated[str, Form(max_length=limits.USERNAME.max_length)]
PasswordField = Annotated[str, Form(max_length=limits.PASSWORD.max_length)]
UnitField = Annotated[str, Form(max_length=limits.UNIT.max_length)]
CertificateRefField = Annotated[str, Form(max_length=limits.CERTIFICATE_REF.max_length)]
ReasonField = Annotated[str, Form(max_length=limits.REASON.max_length)]
ROLE_CHOICES = ("analyst", "examiner", "supervisor", "auditor", "admin")


def data_uri(png: bytes | None) -> str | None:
    """A face picture inline in the page: no separate URL that could be cached or shared."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with the banner, navigation and CSRF token every page carries."""
    state = server_state(request)
    found = getattr(request.state, "caller", None)
    actor = found.actor if isinstance(found, Caller) else None
    purpose = state.workflow.workspace.purpose
    links = []
    if actor is not None:
        for path, label in NAVIGATION:
            rule = rule_for("GET", path)
            if rule is not None and rule.allows(actor.roles):
                links.append({"href": path, "label": label})
    response = state.templates.TemplateResponse(
        request,
        template,
        {
            "actor": actor,
            "roles": ", ".join(sorted(actor.roles)) if actor else "",
            "purpose": purpose,
            "purpose_note": PURPOSE_NOTES.get(purpose),
            "links": links,
            "csrf": csrf_token_for(request),
            "path": request.url.path,
            **context,
        },
        status_code=status,
    )
    finish_cookies(request, response)
    return response


def error_page(request: Request, error: RefusedError) -> Response:
    page = render(
        request, "error.html", status=error.status, title="Refused", message=error.message
    )
    page.headers.update(error.headers)
    return page


def see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# -- first run, login, logout -------------------------------------------------------------------


@router.get("/")
def root(request: Request, state: StateDep) -> Response:
    if not run(state, workspace_state, state.workflow).has_users:
        return see("/first-run")
    token = request.cookies.get(SESSION_COOKIE)
    if token and state.guard.touch(token) == "ok":
        return see("/home")
    return see("/login")


@router.get("/first-run")
def first_run_page(request: Request, state: StateDep) -> Response:
    if run(state, workspace_state, state.workflow).has_users:
        return see("/login")
    return render(request, "first_run.html", title="First run", available=state.guard.setup_pending)


@router.post("/first-run")
def first_run(
    request: Request,
    state: StateDep,
    setup_token: Annotated[str, Form(max_length=200)],
    first_username: UsernameField,
    first_unit: UnitField,
    first_certificate_ref: CertificateRefField,
    first_certificate_expires: Annotated[date, Form()],
    first_password: PasswordField,
    second_username: UsernameField,
    second_unit: UnitField,
    second_certificate_ref: CertificateRefField,
    second_certificate_expires: Annotated[date, Form()],
    second_password: PasswordField,
) -> Response:
    def again(status: int, message: str) -> Response:
        return render(
            request,
            "first_run.html",
            status=status,
            title="First run",
            available=state.guard.setup_pending,
            error=message,
        )

    if run(state, workspace_state, state.workflow).has_users:
        return see("/login")
    if state.guard.setup_locked():
        return again(429, "too many wrong setup tokens; wait 15 minutes and try again")
    if not state.guard.check_setup_token(setup_token.strip()):
        return again(403, "that is not the setup token printed on the server's console")
    first = NewUser(
        username=first_username,
        unit=first_unit,
        certificate_ref=first_certificate_ref,
        certificate_expires=first_certificate_expires,
        password=first_password,
    )
    second = NewUser(
        username=second_username,
        unit=second_unit,
        certificate_ref=second_certificate_ref,
        certificate_expires=second_certificate_expires,
        password=second_password,
    )
    try:
        made = state.call(bootstrap, state.workflow, first, second)
    except USER_ERRORS as error:
        return again(400, one_line(error))
    state.guard.spend_setup_token()
    return render(request, "first_run_done.html", title="First admins made", admins=made)


@router.get("/login")
def login_page(request: Request, state: StateDep) -> Response:
    if not run(state, workspace_state, state.workflow).has_users:
        return see("/first-run")
    return render(request, "login.html", title="Log in")


@router.post("/login")
def login_form(
    request: Request,
    state: StateDep,
    username: UsernameField,
    password: PasswordField,
) -> Response:
    try:
        token, _ = do_login(state, username, password)
    except RefusedError as refused:
        return render(
            request,
            "login.html",
            status=refused.status,
            title="Log in",
            error=refused.message,
            username=username,
        )
    response = see("/home")
    set_cookie(response, request, SESSION_COOKIE, token)
    response.delete_cookie(PRE_LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout_form(state: StateDep, who: CallerDep) -> Response:
    # Ended already or not: the cookie goes either way.
    with contextlib.suppress(*USER_ERRORS):
        state.call(logout, state.workflow, who.session_token)
    state.drop_staged_of(who.session_token)
    response = see("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- home and policy ------------------------------------------------------------------------------


@router.get("/home")
def home(request: Request, state: StateDep, who: CallerDep) -> Response:
    actor = who.signed_in
    links = [link for link in NAVIGATION if link[0] != "/home"]
    allowed = [
        {"href": path, "label": label}
        for path, label in links
        if (rule := rule_for("GET", path)) is not None and rule.allows(actor.roles)
    ]
    state_now = run(state, workspace_state, state.workflow)
    return render(
        request,
        "home.html",
        title="Home",
        pages=allowed,
        policy_active=state_now.policy_active,
    )


@router.get("/policy")
def policy_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    info = run(state, active_policy_info, state.workflow)
    may_change = "admin" in who.signed_in.roles
    return render(request, "policy.html", title="Policy", policy=info, may_change=may_change)


@router.post("/policy")
def policy_change(
    request: Request,
    state: StateDep,
    who: CallerDep,
    policy: Annotated[UploadFile, File()],
) -> Response:
    with state.upload_folder() as folder:
        path = folder / safe_filename(policy.filename, "policy.toml")
        path.write_bytes(read_limited(policy.file, 1 << 20, path.name))
        change = run(state, request_policy_change, state.workflow, who.signed_in, path)
    info = run(state, active_policy_info, state.workflow)
    return render(
        request,
        "policy.html",
        title="Policy",
        policy=info,
        may_change=True,
        message=f"Policy change {change.id} requested; a second admin must confirm it on Users.",
    )


# -- search ---------------------------------------------------------------------------------------


@router.get("/search")
def search_page(request: Request, who: CallerDep) -> Response:
    return render(request, "search.html", title="Search", form=None, unit=who.signed_in.unit)


def _form_values(form: RequestForm) -> dict[str, str]:
    return {
        "case_number": form.case_number,
        "offence_category": form.offence_category,
        "purpose": form.purpose,
        "requesting_agency": form.requesting_agency,
        "requesting_unit": form.requesting_unit,
        "probe_kind": form.probe_kind,
        "authorisation_ref": form.authorisation_ref or "",
        "edits": form.edits or "",
    }


@router.post("/search/check")
def search_check(
    request: Request,
    state: StateDep,
    who: CallerDep,
    form: FormDep,
    probe: Annotated[UploadFile, File()],
    top: Annotated[int, Form(ge=1, le=1000)] = 20,
) -> Response:
    with state.upload_folder() as folder:
        path = saved(folder, probe, "probe")
        try:
            found = state.call(check_probe, state.workflow, who.signed_in, path)
        except USER_ERRORS as error:
            return render(
                request,
                "search.html",
                status=as_refused(error).status,
                title="Search",
                form=_form_values(form),
                top=top,
                error=one_line(error),
            )
        staged = state.stage(who.session_token, path.name, path.read_bytes())
    faces = [
        {
            "index": face.index,
            "usable": face.usable,
            "reasons": face.reasons,
            "quality": face.quality,
            "picture": data_uri(face.preview_png),
        }
        for face in found.faces
    ]
    usable = [face for face in faces if face["usable"]]
    return render(
        request,
        "check.html",
        title="Check the photo",
        check=found,
        faces=faces,
        chosen=usable[0]["index"] if len(usable) == 1 or len(faces) == 1 else None,
        can_send=bool(usable),
        staged=staged,
        form=_form_values(form),
        top=top,
        filename=path.name,
    )


@router.post("/search")
def search_send(
    request: Request,
    state: StateDep,
    who: CallerDep,
    form: FormDep,
    staged: Annotated[str, Form(max_length=100)],
    top: Annotated[int, Form(ge=1, le=1000)] = 20,
    face_index: FaceIndex = None,
) -> Response:
    held = state.take_staged(who.session_token, staged)
    with state.upload_folder() as folder:
        path = folder / held.filename
        path.write_bytes(held.data)
        outcome = run(
            state,
            request_search,
            state.workflow,
            who.signed_in,
            path,
            form,
            top=top,
            face_index=face_index,
        )
    return see(f"/requests/{outcome.search_id}")


@router.get("/requests")
def requests_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    mine = run(state, my_requests, state.workflow, who.signed_in)
    return render(request, "requests.html", title="My requests", requests=mine)


@router.get("/requests/{search_id}")
def request_page(
    request: Request, state: StateDep, who: CallerDep, search_id: SearchId
) -> Response:
    found = run(state, request_status, state.workflow, who.signed_in, search_id)
    return render(request, "request.html", title=f"Request {search_id}", status_of=found)


@router.post("/requests/{search_id}/run")
def request_run(state: StateDep, who: CallerDep, search_id: SearchId) -> Response:
    run(state, run_approved, state.workflow, who.signed_in, search_id)
    return see(f"/requests/{search_id}")


@router.get("/requests/{search_id}/leads")
def leads_page(request: Request, state: StateDep, who: CallerDep, search_id: SearchId) -> Response:
    leads = run(state, released_leads, state.workflow, who.signed_in, search_id)
    return render(request, "leads.html", title=f"Leads of request {search_id}", review=leads)


# -- approvals ------------------------------------------------------------------------------------


@router.get("/approvals")
def approvals_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    waiting = run(state, pending_approvals, state.workflow, who.signed_in)
    return render(request, "approvals.html", title="Approvals", pending=waiting)


@router.post("/approvals/{search_id}")
def approvals_decide(
    request: Request,
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    reason: ReasonField = "",
) -> Response:
    outcome = run(
        state,
        decide_approval,
        state.workflow,
        who.signed_in,
        search_id,
        approve=decision == "approve",
        reason=reason,
    )
    waiting = run(state, pending_approvals, state.workflow, who.signed_in)
    return render(
        request,
        "approvals.html",
        title="Approvals",
        pending=waiting,
        message=f"Request {search_id} {outcome.status}.",
    )


# -- review ---------------------------------------------------------------------------------------


@router.get("/review")
def review_list(request: Request, state: StateDep, who: CallerDep) -> Response:
    queue = run(state, review_queue, state.workflow, who.signed_in)
    return render(request, "review_list.html", title="Review", queue=queue)


@router.get("/review/{search_id}")
def review_page(request: Request, state: StateDep, who: CallerDep, search_id: SearchId) -> Response:
    actor = who.signed_in
    review = run(state, view_candidates, state.workflow, actor, search_id)
    material = run(state, review_material, state.workflow, actor, search_id)
    by_rank = {item.rank: item for item in material.candidates}
    candidates = []
    for candidate in review.candidates:
        item = by_rank.get(candidate.rank)
        candidates.append(
            {
                "view": candidate,
                "picture": data_uri(item.crop_png) if item else None,
                "provenance": item.provenance if item else None,
                "mine": any(v["examiner"] == actor.username for v in candidate.verdicts),
            }
        )
    return render(
        request,
        "review.html",
        title=f"Review request {search_id}",
        review=review,
        probe=data_uri(material.probe_png),
        threshold=material.threshold,
        candidates=candidates,
        verdicts=VERDICT_CHOICES,
        may_review="examiner" in actor.roles,
    )


@router.post("/review/{search_id}/verdict")
def review_verdict(
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    rank: Annotated[int, Form(ge=1, le=10_000)],
    verdict: Annotated[str, Form(max_length=50)],
    rationale: Annotated[str, Form(max_length=limits.RATIONALE.max_length)] = "",
) -> Response:
    run(state, record_verdict, state.workflow, who.signed_in, search_id, rank, verdict, rationale)
    return see(f"/review/{search_id}#candidate-{rank}")


@router.post("/review/{search_id}/release")
def review_release(
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    rank: Annotated[int, Form(ge=1, le=10_000)],
    reason: ReasonField = "",
) -> Response:
    run(state, release_lead, state.workflow, who.signed_in, search_id, rank, reason)
    return see(f"/review/{search_id}#candidate-{rank}")


# -- audit ----------------------------------------------------------------------------------------


def _audit_page(request: Request, state: StateDep, who: Caller, **extra: Any) -> Response:
    actor = who.signed_in
    report = run(state, verify_log, state.workflow, actor)
    checkpoint = run(state, latest_checkpoint, state.workflow, actor)
    return render(
        request,
        "audit.html",
        title="Audit",
        report=report,
        checkpoint=checkpoint,
        may_checkpoint="auditor" in actor.roles,
        **extra,
    )


@router.get("/audit")
def audit_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    prove: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    proof = None
    proof_error = None
    if prove is not None:
        try:
            proof = state.call(prove_entry, state.workflow, who.signed_in, prove)
        except USER_ERRORS as error:
            proof_error = one_line(error)
    return _audit_page(request, state, who, proof=proof, proof_error=proof_error)


@router.post("/audit/export")
def audit_export(
    state: StateDep,
    who: CallerDep,
    format: Annotated[str, Form(pattern="^(zip|tar)$")] = "zip",
) -> Response:
    return export_archive(state, who, format)


@router.post("/audit/checkpoint")
def audit_checkpoint(request: Request, state: StateDep, who: CallerDep) -> Response:
    info = run(state, checkpoint_now, state.workflow, who.signed_in)
    return _audit_page(
        request, state, who, message=f"Signed a checkpoint at tree size {info.tree_size}."
    )


# -- gallery --------------------------------------------------------------------------------------


def _gallery_page(request: Request, state: StateDep, who: Caller, **extra: Any) -> Response:
    subjects = run(state, gallery_subjects, state.workflow, who.signed_in, limit=200)
    return render(
        request,
        "gallery.html",
        title="Gallery",
        subjects=subjects,
        source_types=state.workflow.workspace.allowed_source_types(),
        **extra,
    )


@router.get("/gallery")
def gallery_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    return _gallery_page(request, state, who)


@router.get("/gallery/{subject_ref}")
def subject_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    subject_ref: SubjectRefPath,
) -> Response:
    detail = run(state, gallery_subject, state.workflow, who.signed_in, subject_ref)
    return render(request, "subject.html", title=f"Subject {subject_ref}", detail=detail)


@router.post("/gallery/enrol")
def gallery_enrol(
    request: Request,
    state: StateDep,
    who: CallerDep,
    provenance: ProvenanceDep,
    subject_ref: SubjectRef,
    photos: Annotated[list[UploadFile], File()],
    face_index: FaceIndex = None,
) -> Response:
    result = enrol_uploads(state, who, subject_ref, photos, provenance, face_index)
    return _gallery_page(request, state, who, outcomes=result["outcomes"])


# -- users ----------------------------------------------------------------------------------------


def _users_page(request: Request, state: StateDep, who: Caller, **extra: Any) -> Response:
    actor = who.signed_in
    users = run(state, list_user_infos, state.workflow, actor)
    changes = run(state, pending_change_infos, state.workflow, actor)
    return render(
        request,
        "users.html",
        title="Users",
        users=users,
        changes=changes,
        role_choices=ROLE_CHOICES,
        may_change="admin" in actor.roles,
        **extra,
    )


@router.get("/users")
def users_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    return _users_page(request, state, who)


@router.post("/users")
def users_add(
    request: Request,
    state: StateDep,
    who: CallerDep,
    username: UsernameField,
    unit: UnitField,
    role: Annotated[str, Form(max_length=20)],
    certificate_ref: CertificateRefField,
    certificate_expires: Annotated[date, Form()],
    password: PasswordField,
) -> Response:
    new = NewUser(
        username=username,
        unit=unit,
        certificate_ref=certificate_ref,
        certificate_expires=certificate_expires,
        password=password,
        roles=(role,),
    )
    change = run(state, request_user, state.workflow, who.signed_in, new)
    return _users_page(
        request,
        state,
        who,
        message=f"User {username} requested as change {change.id}; a second admin confirms it.",
    )


@router.post("/changes/{change_id}/confirm")
def change_confirm(
    request: Request, state: StateDep, who: CallerDep, change_id: ChangeId
) -> Response:
    change = run(state, confirm_change, state.workflow, who.signed_in, change_id)
    return _users_page(request, state, who, message=f"Change {change.id} confirmed.")


@router.post("/changes/{change_id}/reject")
def change_reject(
    request: Request,
    state: StateDep,
    who: CallerDep,
    change_id: ChangeId,
    reason: ReasonField = "",
) -> Response:
    change = run(state, reject_change, state.workflow, who.signed_in, change_id, reason)
    return _users_page(request, state, who, message=f"Change {change.id} rejected.")


@router.post("/users/{username}/disable")
def user_disable(request: Request, state: StateDep, who: CallerDep, username: str) -> Response:
    user = run(state, disable_user, state.workflow, who.signed_in, username)
    return _users_page(request, state, who, message=f"{user.username} is disabled.")


__all__ = ["error_page", "router"]
