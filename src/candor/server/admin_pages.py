"""The rest of the pages: the 1:1 verification request, the user-administration forms and
one's own password.

Role grants, revocations and re-enabling are requests that a second admin confirms on
the Users page (the workflow's two-admin rule); a new training certificate and a password
reset take effect at once, as in the workflow, and are audited there. A user whose
password an admin reset is sent to /password (server.auth) until they choose their own.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from candor.server import gallery_pages
from candor.server.api import (
    CallerDep,
    CertificateRef,
    FaceIndex,
    Json,
    StateDep,
    UserAnswer,
    Username,
    json_of,
    run,
    verify_uploads,
)
from candor.server.errors import USER_ERRORS, as_refused, one_line
from candor.server.web import WebFormDep, _users_page, render, see
from candor.workflow import limits
from candor.workflow.accounts import (
    MIN_PASSWORD_LENGTH,
    change_password,
    request_enable,
    request_role_grant,
    request_role_revoke,
    reset_password,
    update_certificate,
)
from candor.workflow.directory import list_mappings, person_confirmations

api_router = APIRouter(prefix="/api", tags=["api"])
page_router = APIRouter(include_in_schema=False)
page_router.include_router(gallery_pages.router)
RoleField = Annotated[str, Form(pattern="^(analyst|examiner|supervisor|auditor|admin)$")]
NewPasswordField = Annotated[str, Form(max_length=limits.PASSWORD.max_length)]


# -- directory groups ------------------------------------------------------------------------


@page_router.get("/directory")
def directory_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    """Group mappings and directory persons waiting for a second admin (read only: the
    decisions are `candor directory ...` commands, audited by the workflow)."""
    actor = who.signed_in
    mappings = run(state, list_mappings, state.workflow, actor, include_ended=True)
    waiting = run(state, person_confirmations, state.workflow, actor)
    return render(
        request, "directory.html", title="Directory groups", mappings=mappings, waiting=waiting
    )


# -- 1:1 verification -----------------------------------------------------------------------


@page_router.get("/verify")
def verify_page(request: Request, who: CallerDep) -> Response:
    return render(request, "verify.html", title="Verify", form=None, unit=who.signed_in.unit)


@page_router.post("/verify")
def verify_send(
    state: StateDep,
    who: CallerDep,
    form: WebFormDep,
    first: Annotated[UploadFile, File()],
    second: Annotated[UploadFile, File()],
    first_face: FaceIndex = None,
    second_face: FaceIndex = None,
) -> Response:
    outcome = verify_uploads(state, who, form, first, second, first_face, second_face)
    return see(f"/requests/{outcome.search_id}")


# -- user administration --------------------------------------------------------------------


@page_router.post("/users/{username}/roles")
def role_grant(
    request: Request, state: StateDep, who: CallerDep, username: Username, role: RoleField
) -> Response:
    change = run(state, request_role_grant, state.workflow, who.signed_in, username, role)
    message = f"Granting {role} to {username} requested as change {change.id}."
    return _users_page(request, state, who, message=message)


@page_router.post("/users/{username}/roles/revoke")
def role_revoke(
    request: Request, state: StateDep, who: CallerDep, username: Username, role: RoleField
) -> Response:
    change = run(state, request_role_revoke, state.workflow, who.signed_in, username, role)
    message = f"Revoking {role} from {username} requested as change {change.id}."
    return _users_page(request, state, who, message=message)


@page_router.post("/users/{username}/enable")
def user_enable(request: Request, state: StateDep, who: CallerDep, username: Username) -> Response:
    change = run(state, request_enable, state.workflow, who.signed_in, username)
    message = f"Enabling {username} requested as change {change.id}."
    return _users_page(request, state, who, message=message)


@page_router.post("/users/{username}/certificate")
def certificate_form(
    request: Request,
    state: StateDep,
    who: CallerDep,
    username: Username,
    certificate_ref: Annotated[
        str, Form(min_length=1, max_length=limits.CERTIFICATE_REF.max_length)
    ],
    certificate_expires: Annotated[date, Form()],
) -> Response:
    user = run(
        state,
        update_certificate,
        state.workflow,
        who.signed_in,
        username,
        certificate_ref,
        certificate_expires,
    )
    message = f"{user.username}'s certificate is now {user.certificate_ref}."
    return _users_page(request, state, who, message=message)


@page_router.post("/users/{username}/password")
def password_reset(
    request: Request,
    state: StateDep,
    who: CallerDep,
    username: Username,
    temporary_password: NewPasswordField,
) -> Response:
    user = run(state, reset_password, state.workflow, who.signed_in, username, temporary_password)
    message = (
        f"{user.username}'s password is reset and their sessions ended; they choose a new "
        "one at their next login. Tell them the temporary password in person."
    )
    return _users_page(request, state, who, message=message)


# -- one's own password ---------------------------------------------------------------------


def _password_page(request: Request, status: int = 200, **extra: str) -> Response:
    return render(
        request,
        "password.html",
        status=status,
        title="Change your password",
        min_length=MIN_PASSWORD_LENGTH,
        **extra,
    )


@page_router.get("/password")
def password_page(request: Request, who: CallerDep) -> Response:
    return _password_page(request)


@page_router.post("/password")
def password_change(
    request: Request,
    state: StateDep,
    who: CallerDep,
    new_password: NewPasswordField,
    repeat_password: NewPasswordField,
) -> Response:
    if new_password != repeat_password:
        return _password_page(request, 400, error="the two passwords differ; type them again")
    try:
        state.call(change_password, state.workflow, who.signed_in, new_password)
    except USER_ERRORS as error:
        return _password_page(request, as_refused(error).status, error=one_line(error))
    return see("/home")


class CertificateBody(BaseModel):
    certificate_ref: CertificateRef
    certificate_expires: date


@api_router.post(
    "/users/{username}/certificate",
    summary="Record a new training certificate",
    response_model=UserAnswer,
)
def api_certificate(
    state: StateDep, who: CallerDep, username: Username, body: CertificateBody
) -> Json:
    user = run(
        state,
        update_certificate,
        state.workflow,
        who.signed_in,
        username,
        body.certificate_ref,
        body.certificate_expires,
    )
    return json_of({"user": user})


__all__ = ["api_router", "page_router"]
