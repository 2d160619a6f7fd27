"""Who is calling, and may they call this route: the check every route passes first.

JSON routes (/api/...) take a bearer token (`Authorization: Bearer <token>`, the token
a login returns) and nothing else, so no browser sends one on its own and they need no
CSRF token. Pages take the same token from an HTTP-only, SameSite=Strict cookie (Secure
over HTTPS), and every form they post carries a CSRF token bound to the session (or,
before login, to a random pre-login cookie).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from candor.server.errors import RefusedError
from candor.server.form_text import refuse_undecodable_form
from candor.server.rules import rule_for
from candor.server.security import new_secret, token_digest
from candor.server.state import ServerState
from candor.workflow import USER_ERRORS, Actor, authenticate
from candor.workflow.accounts import password_change_required

SESSION_COOKIE = "candor_session"
PRE_LOGIN_COOKIE = "candor_pre"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a user whose password an admin reset may still reach: choosing a new one, leaving,
# and (API) asking who they are. Everything else sends them to the password page (web)
# or answers 403 saying so (API).
PASSWORD_PAGE = "/password"  # noqa: S105 (a path, not a password)
PASSWORD_CHANGE_PATHS = frozenset(
    {PASSWORD_PAGE, "/logout", "/api/password", "/api/logout", "/api/me"}
)


@dataclass(frozen=True)
class Caller:
    """The authenticated person behind a request (None on public routes)."""

    actor: Actor | None
    token: str | None

    @property
    def signed_in(self) -> Actor:
        if self.actor is None:
            raise RefusedError(401, "not logged in")
        return self.actor

    @property
    def session_token(self) -> str:
        if self.token is None:
            raise RefusedError(401, "not logged in")
        return self.token


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.candor
    return state


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _route_path(request: Request) -> str | None:
    route = request.scope.get("route")
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def request_token(request: Request) -> str | None:
    """The session token this kind of route accepts: bearer for the API, cookie for pages."""
    if is_api(request):
        return _bearer(request)
    return request.cookies.get(SESSION_COOKIE) or None


def csrf_binding(request: Request, token: str | None) -> str | None:
    if token is not None:
        return "session:" + token_digest(token)
    nonce = request.cookies.get(PRE_LOGIN_COOKIE)
    return None if not nonce else "pre:" + nonce


async def _check_csrf(request: Request, state: ServerState, token: str | None) -> None:
    binding = csrf_binding(request, token)
    offered = request.headers.get("x-csrf-token")
    if offered is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    if binding is None or not state.guard.csrf_ok(binding, offered):
        raise RefusedError(
            403,
            "the form has expired or did not come from this site; reload the page and try again",
            refused_by="csrf",
        )


async def authorise(request: Request) -> None:
    """Refuse the request unless the route's rule lets this caller in; remember who it is."""
    state = server_state(request)
    method = "GET" if request.method == "HEAD" else request.method
    path = _route_path(request)
    rule = None if path is None else rule_for(method, path)
    if rule is None:
        raise RefusedError(403, "this route has no authorisation rule", refused_by="no-rule")
    unsafe = method not in SAFE_METHODS
    if rule.public:
        request.state.caller = Caller(None, None)
        if unsafe and not is_api(request):
            await _check_csrf(request, state, None)
        refuse_undecodable_form(request)
        return
    token = request_token(request)
    if token is None:
        raise RefusedError(401, "not logged in")
    # A session idle too long is ended there, in the workflow, where it is audited.
    if await run_in_threadpool(state.guard.touch, token) != "ok":
        raise RefusedError(401, "the session has ended or was idle too long; log in again")
    try:
        actor = await run_in_threadpool(
            state.call, authenticate, state.workflow, token, password_change_pending=True
        )
    except USER_ERRORS as error:
        raise RefusedError(401, str(error).split(";")[0]) from None
    if actor.must_change_password and path not in PASSWORD_CHANGE_PATHS:
        message = password_change_required(actor.username)
        if is_api(request):
            raise RefusedError(403, message, refused_by="password-change")
        # A page answers 303 to the password page (the error page carries the Location).
        raise RefusedError(
            303, message, refused_by="password-change", headers={"Location": PASSWORD_PAGE}
        )
    if unsafe and not is_api(request):
        await _check_csrf(request, state, token)
    if not rule.allows(actor.roles):
        held = ", ".join(sorted(actor.roles)) or "no role"
        raise RefusedError(
            403,
            f"{actor.username} ({held}) may not use {method} {path}",
            refused_by="route-rule",
        )
    # The form, when the route takes one, has been read by now (FastAPI reads it before
    # any dependency; the CSRF check above reads it otherwise).
    refuse_undecodable_form(request)
    request.state.caller = Caller(actor, token)


def caller(request: Request) -> Caller:
    """The caller `authorise` found (route dependency)."""
    found = getattr(request.state, "caller", None)
    if not isinstance(found, Caller):
        raise RefusedError(401, "not logged in")
    return found


def csrf_token_for(request: Request, response: Response | None = None) -> str:
    """The CSRF token for forms on this page; makes a pre-login cookie when there is none."""
    state = server_state(request)
    found = getattr(request.state, "caller", None)
    token = found.token if isinstance(found, Caller) else None
    binding = csrf_binding(request, token)
    if binding is None:
        nonce = getattr(request.state, "new_pre_login", None) or new_secret()
        request.state.new_pre_login = nonce
        binding = "pre:" + nonce
    return state.guard.csrf_for(binding)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="strict", secure=secure(request), path="/"
    )


def finish_cookies(request: Request, response: Response) -> None:
    """Set the pre-login cookie a page's CSRF token was bound to, if one was made."""
    nonce = getattr(request.state, "new_pre_login", None)
    if nonce:
        set_cookie(response, request, PRE_LOGIN_COOKIE, nonce)
