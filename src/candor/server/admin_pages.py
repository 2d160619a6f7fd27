"""The rest of the pages: the 1:1 verification request and the user-administration forms.

Role grants, revocations and re-enabling are requests that a second admin confirms on
the Users page (the workflow's two-admin rule); a new training certificate takes effect
at once, as in the workflow, and is audited there.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from candor.server.api import (
    CallerDep,
    CertificateRef,
    FaceIndex,
    FormDep,
    Json,
    StateDep,
    Username,
    json_of,
    run,
    verify_uploads,
)
from candor.server.web import _users_page, render, see
from candor.workflow import limits
from candor.workflow.accounts import (
    request_enable,
    request_role_grant,
    request_role_revoke,
    update_certificate,
)

api_router = APIRouter(prefix="/api", tags=["api"])
page_router = APIRouter(include_in_schema=False)
RoleField = Annotated[str, Form(pattern="^(analyst|examiner|supervisor|auditor|admin)$")]


# -- 1:1 verification -----------------------------------------------------------------------


@page_router.get("/verify")
def verify_page(request: Request, who: CallerDep) -> Response:
    return render(request, "verify.html", title="Verify", form=None, unit=who.signed_in.unit)


@page_router.post("/verify")
def verify_send(
    state: StateDep,
    who: CallerDep,
    form: FormDep,
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


class CertificateBody(BaseModel):
    certificate_ref: CertificateRef
    certificate_expires: date


@api_router.post("/users/{username}/certificate", summary="Record a new training certificate")
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
