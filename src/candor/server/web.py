"""The web pages: plain server-rendered HTML forms, one per step of the governed path.

Every page calls the same workflow functions as the JSON API, as the person whose
session cookie came with the request. Forms post back here with their CSRF token; a
refusal is shown as the workflow's one-line reason.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BeforeValidator
from sqlalchemy.exc import SQLAlchemyError

from candor.server.api import (
    MAX_ID,
    ChangeId,
    FaceIndex,
    FormDep,
    SearchId,
    StateDep,
    do_login,
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
    limits,
    pending_approvals,
    request_search,
    run_approved,
)
from candor.workflow.accounts import (
    Actor,
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
from candor.workflow.audit_ops import (
    EntryFilter,
    checkpoint_now,
    list_entries,
    log_actions,
    prove_entry,
    verify_log,
)
from candor.workflow.forms import FormChoices, form_choices
from candor.workflow.paging import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE, Page, PageRequest
from candor.workflow.probe_check import check_probe
from candor.workflow.worklists import (
    REQUEST_STATUSES,
    approval_probes,
    latest_checkpoint,
    my_requests,
    request_status,
    review_queue,
    todo,
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
    ("/directory", "Directory"),
    ("/policy", "Policy"),
)
# Links shown only when the policy in force grants the person one of these permissions
# (the route's rule must allow them as well); the other links follow the route's rule.
LINK_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "/search": ("search.request",),
    "/verify": ("verify.request",),
    "/requests": ("search.request", "verify.request"),
    "/approvals": ("search.approve",),
    "/review": ("candidate.review", "search.approve"),
    "/audit": ("audit.read",),
    "/gallery": ("gallery.enrol",),
    "/reports/usage": ("reports.read",),
}
# The agency list's last choice: an agency the policy does not name, typed in beside it.
OTHER_AGENCY = "(other)"
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


def choices_for(request: Request) -> FormChoices | None:
    """The signed-in person's form choices and permissions under the policy in force, read
    once per request; None without a signed-in person or when the policy cannot be read
    (a busy database: the page keeps the route's links, and the workflow still refuses
    what the policy forbids)."""
    cached = getattr(request.state, "form_choices", None)
    if isinstance(cached, FormChoices):
        return cached
    found = getattr(request.state, "caller", None)
    actor = found.actor if isinstance(found, Caller) else None
    if actor is None:
        return None
    state = server_state(request)
    try:
        choices = state.call(form_choices, state.workflow, actor)
    except USER_ERRORS:
        return None
    except SQLAlchemyError:
        return None
    request.state.form_choices = choices
    return choices


def offered_links(request: Request, actor: Actor) -> list[dict[str, str]]:
    """The navigation a person is offered: routes their roles may open, less those whose
    action the policy in force does not grant them (no Search for a role that may not
    search: a click there would only end in an audited refusal)."""
    choices = choices_for(request)
    links = []
    for path, label in NAVIGATION:
        rule = rule_for("GET", path)
        if rule is None or not rule.allows(actor.roles):
            continue
        needed = LINK_PERMISSIONS.get(path)
        if needed and choices is not None and not choices.may(*needed):
            continue
        links.append({"href": path, "label": label})
    return links


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with the banner, navigation and CSRF token every page carries."""
    state = server_state(request)
    found = getattr(request.state, "caller", None)
    actor = found.actor if isinstance(found, Caller) else None
    purpose = state.workflow.workspace.purpose
    links = [] if actor is None else offered_links(request, actor)
    response = state.templates.TemplateResponse(
        request,
        template,
        {
            "actor": actor,
            "roles": ", ".join(sorted(actor.roles)) if actor else "",
            "purpose": purpose,
            "purpose_note": PURPOSE_NOTES.get(purpose),
            "links": links,
            "choices": choices_for(request) if actor is not None else None,
            "other_agency": OTHER_AGENCY,
            "csrf": csrf_token_for(request),
            "path": request.url.path,
            **context,
        },
        status_code=status,
    )
    finish_cookies(request, response)
    return response


def error_page(request: Request, error: RefusedError) -> Response:
    # As `error`, which the base template shows once, as an alert.
    page = render(request, "error.html", status=error.status, title="Refused", error=error.message)
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


# -- home and what waits: my requests, approvals, the review list ------------------------------

PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
PageOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
CaseQuery = Annotated[str | None, Query(max_length=limits.CASE_NUMBER.max_length)]
# Approval cards carry a probe picture each, but few requests wait at once: a whole page.
APPROVALS_PAGE_SIZE = DEFAULT_PAGE_SIZE
# Where each kind of waiting work is listed (the page, and its query), when the person
# may open that page.
TODO_LINKS: dict[str, tuple[str, dict[str, str]]] = {
    "approvals": ("/approvals", {}),
    "reviews": ("/review", {}),
    "overdue_reviews": ("/review", {"overdue": "1"}),
    "approved_to_run": ("/requests", {"status": "approved"}),
    "leads_without_outcome": ("/requests", {"status": "completed"}),
    "changes": ("/users", {}),
    "jobs_failed": ("/jobs", {}),
    "jobs_running": ("/jobs", {}),
}


def _link(actor: Actor, path: str, query: dict[str, str]) -> str | None:
    rule = rule_for("GET", path)
    if rule is None or not rule.allows(actor.roles):
        return None
    return path + (f"?{urlencode(query)}" if query else "")


def pager(request: Request, page: Page[Any], path: str | None = None) -> dict[str, Any]:
    """Where a page lies ("51-100 of 240") and the links to the pages either side, keeping
    the request's filters; `path` when the list is shown at another (after a form post)."""

    def link(offset: int | None) -> str | None:
        if offset is None:
            return None
        query = {k: v for k, v in request.query_params.items() if k != "offset"}
        query["offset"] = str(offset)
        return f"{path or request.url.path}?{urlencode(query)}"

    return {
        "describe": page.describe(),
        "next": link(page.next_offset),
        "previous": link(page.previous_offset),
    }


@router.get("/home")
def home(request: Request, state: StateDep, who: CallerDep) -> Response:
    actor = who.signed_in
    # The navigation's links, by the route's rule and the policy's grants alike.
    allowed = [link for link in offered_links(request, actor) if link["href"] != "/home"]
    state_now = run(state, workspace_state, state.workflow)
    waiting = run(state, todo, state.workflow, actor)
    entries = [
        {"entry": entry, "href": _link(actor, *TODO_LINKS[entry.kind])} for entry in waiting.entries
    ]
    return render(
        request,
        "home.html",
        title="Home",
        pages=allowed,
        policy_active=state_now.policy_active,
        todo=waiting,
        entries=entries,
    )


@router.get("/requests")
def requests_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
    status: Annotated[str | None, Query(max_length=20)] = None,
    case: CaseQuery = None,
) -> Response:
    mine = run(
        state,
        my_requests,
        state.workflow,
        who.signed_in,
        PageRequest(limit, offset),
        status=status,
        case=case,
    )
    return render(
        request,
        "requests.html",
        title="My requests",
        requests=mine.items,
        pager=pager(request, mine),
        filters={"status": status or "", "case": case or ""},
        statuses=REQUEST_STATUSES,
    )


@router.get("/requests/{search_id}")
def request_page(
    request: Request, state: StateDep, who: CallerDep, search_id: SearchId
) -> Response:
    found = run(state, request_status, state.workflow, who.signed_in, search_id)
    return render(request, "request.html", title=f"Request {search_id}", status_of=found)


def _approvals(
    request: Request,
    state: StateDep,
    actor: Actor,
    page: PageRequest,
    case: str | None,
    message: str | None = None,
) -> Response:
    waiting = run(state, pending_approvals, state.workflow, actor, page, case=case)
    shown = [p.search_id for p in waiting.items]
    probes = run(state, approval_probes, state.workflow, actor, shown)
    cards = [{"p": p, "probe": data_uri(probes.get(p.search_id))} for p in waiting.items]
    return render(
        request,
        "approvals.html",
        title="Approvals",
        cards=cards,
        pager=pager(request, waiting, "/approvals"),
        filters={"case": case or ""},
        message=message,
    )


@router.get("/approvals")
def approvals_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    limit: PageLimit = APPROVALS_PAGE_SIZE,
    offset: PageOffset = 0,
    case: CaseQuery = None,
) -> Response:
    return _approvals(request, state, who.signed_in, PageRequest(limit, offset), case)


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
    return _approvals(
        request,
        state,
        who.signed_in,
        PageRequest(APPROVALS_PAGE_SIZE),
        None,
        message=f"Request {search_id} {outcome.status}.",
    )


@router.get("/review")
def review_list(
    request: Request,
    state: StateDep,
    who: CallerDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
    case: CaseQuery = None,
    overdue: Annotated[bool, Query()] = False,
) -> Response:
    queue = run(
        state,
        review_queue,
        state.workflow,
        who.signed_in,
        PageRequest(limit, offset),
        case=case,
        overdue=overdue,
    )
    return render(
        request,
        "review_list.html",
        title="Review",
        queue=queue.items,
        pager=pager(request, queue),
        filters={"case": case or "", "overdue": overdue},
        examiner="examiner" in who.signed_in.roles,
    )


# -- policy ---------------------------------------------------------------------------------------


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


def web_request_form(
    form: FormDep,
    other_agency: Annotated[str, Form(max_length=limits.REQUESTING_AGENCY.max_length)] = "",
) -> RequestForm:
    """The case form as the pages send it: the agency list's "other" choice stands for
    the agency typed beside it. Everything else is the API's form, checked as there."""
    if form.requesting_agency != OTHER_AGENCY:
        return form
    named = other_agency.strip()
    if not named:
        raise RefusedError(
            400, "requesting agency: 'another agency' was chosen; type its name beside the list"
        )
    return dataclasses.replace(form, requesting_agency=named)


WebFormDep = Annotated[RequestForm, Depends(web_request_form)]


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


def _unusable(faces: list[dict[str, Any]]) -> str | None:
    """Why nothing in the photo can be searched, or None when a face can be."""
    if any(face["usable"] for face in faces):
        return None
    if not faces:
        return "no face was found in this photo: choose another"
    if len(faces) == 1:
        why = "; ".join(faces[0]["reasons"]) or "below the gate's thresholds"
        return f"the only face found fails the quality gate: {why}"
    return f"none of the {len(faces)} faces found passes the quality gate: choose another photo"


@router.post("/search/check")
def search_check(
    request: Request,
    state: StateDep,
    who: CallerDep,
    form: WebFormDep,
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
        # Held for the send only when something in it can be searched.
        staged = state.stage(who.session_token, path.name, path.read_bytes()) if usable else None
    return render(
        request,
        "check.html",
        title="Check the photo",
        check=found,
        faces=faces,
        # Preselected only when there is no choice to make; several usable faces are the
        # analyst's to choose.
        chosen=usable[0]["index"] if len(usable) == 1 else None,
        can_send=bool(usable),
        error=_unusable(faces),
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
    form: WebFormDep,
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


@router.post("/requests/{search_id}/run")
def request_run(state: StateDep, who: CallerDep, search_id: SearchId) -> Response:
    run(state, run_approved, state.workflow, who.signed_in, search_id)
    return see(f"/requests/{search_id}")


# -- review ---------------------------------------------------------------------------------------


# /review/{search_id} and its forms, and a request's leads: candor.server.review_pages.


# -- audit ----------------------------------------------------------------------------------------


AUDIT_PAGE_SIZE = 50
CaseFilter = Annotated[str | None, Query(max_length=limits.CASE_NUMBER.max_length)]
UserFilter = Annotated[str | None, Query(max_length=limits.USERNAME.max_length)]
ActionFilter = Annotated[str | None, Query(max_length=100)]


def _blank_is_none(value: object) -> object:
    # A GET form sends its empty date fields as "since=&until=": no filter, not a bad date.
    return None if value == "" else value


DayFilter = Annotated[date | None, BeforeValidator(_blank_is_none), Query()]


@dataclasses.dataclass(frozen=True)
class AuditQuery:
    """The audit browser's filters as the page's form sends them (days, in UTC)."""

    case: str | None = None
    user: str | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int = AUDIT_PAGE_SIZE
    offset: int = 0

    @property
    def browsing(self) -> bool:
        """Whether a filter or a later page was asked for (not the log's front page)."""
        return any((self.case, self.user, self.action, self.since, self.until, self.offset))

    def entry_filter(self) -> EntryFilter:
        def day(value: date | None) -> datetime | None:
            return (
                None if value is None else datetime(value.year, value.month, value.day, tzinfo=UTC)
            )

        until = day(self.until)
        return EntryFilter(
            case_number=self.case or None,
            actor=self.user or None,
            action=self.action or None,
            since=day(self.since),
            # "Until 3 March" includes all of 3 March.
            until=None if until is None else until + timedelta(days=1),
        )

    def link(self, **changes: Any) -> str:
        """/audit with these filters (and `changes`), for the pager and proof links."""
        values = {**dataclasses.asdict(self), **changes}
        query = {
            key: str(value)
            for key, value in values.items()
            if value not in (None, "")
            and not (key == "offset" and value == 0)
            and not (key == "limit" and value == AUDIT_PAGE_SIZE)
        }
        return "/audit" + (f"?{urlencode(query)}" if query else "")


def _audit_page(
    request: Request, state: StateDep, who: Caller, chosen: AuditQuery | None = None, **extra: Any
) -> Response:
    actor = who.signed_in
    chosen = chosen or AuditQuery()
    # Verifying reads the whole log; browsing pages of it must not wait on that, so the
    # front page verifies and a filtered or later page offers it as a link.
    report = None if chosen.browsing else run(state, verify_log, state.workflow, actor)
    checkpoint = run(state, latest_checkpoint, state.workflow, actor)
    found = run(
        state,
        list_entries,
        state.workflow,
        actor,
        chosen.entry_filter(),
        PageRequest(chosen.limit, chosen.offset),
    )
    choices = choices_for(request)
    return render(
        request,
        "audit.html",
        title="Audit",
        report=report,
        checkpoint=checkpoint,
        may_checkpoint=choices is not None and choices.may("audit.checkpoint"),
        entries=found,
        chosen=chosen,
        actions=run(state, log_actions, state.workflow, actor),
        newer=None if found.offset == 0 else chosen.link(offset=found.previous_offset),
        older=None if found.next_offset is None else chosen.link(offset=found.next_offset),
        **extra,
    )


@router.get("/audit")
def audit_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    prove: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    case: CaseFilter = None,
    user: UserFilter = None,
    action: ActionFilter = None,
    since: DayFilter = None,
    until: DayFilter = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = AUDIT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    chosen = AuditQuery(case, user, action, since, until, limit, offset)
    proof = None
    proof_error = None
    if prove is not None:
        try:
            proof = state.call(prove_entry, state.workflow, who.signed_in, prove)
        except USER_ERRORS as error:
            proof_error = one_line(error)
    return _audit_page(request, state, who, chosen, proof=proof, proof_error=proof_error)


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
