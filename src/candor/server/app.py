"""The Candor server: FastAPI app with the JSON API, the web pages and their assets.

`create_app(workflow)` builds the app around one open workflow; `create_app_from_env()`
is the factory `candor serve` hands to Uvicorn (CANDOR_HOME names the workspace), once
in each worker process. The server keeps no state of its own (see server/security.py),
so any number of workers and nodes serve one workspace. On a workspace without users
`candor serve` prints a one-time setup token to the console before its workers start:
the first-run page asks for it before it creates the first two admins.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from candor.server import admin_pages, api, jobs_pages, reports, review_pages, web
from candor.server.api_models import describe_api
from candor.server.auth import authorise, is_api
from candor.server.errors import RefusedError, as_refused, problem_response
from candor.server.form_text import FormTextCheck
from candor.server.security import IDLE_SECONDS, new_secret
from candor.server.state import STATIC, ServerState
from candor.workflow import (
    POOL_TIMEOUT_SECONDS,
    Workflow,
    WorkspaceBusyError,
    open_workflow,
    server_threads,
)
from candor.workflow.models import ModelError
from candor.workflow.probe_check import UPLOAD_MAX_BYTES
from candor.workflow.server_state import (
    install_setup_token,
    offer_setup_token,
    setup_token_notice,
)
from candor.workflow.upkeep import bring_index_in_step
from candor.workflow.worklists import workspace_state

# A request body may carry two photos (a verification) and its form fields; enrolment
# carries up to api.MAX_ENROL_FILES photos.
MAX_BODY_BYTES = 2 * UPLOAD_MAX_BYTES + (1 << 20)
MAX_ENROL_BODY_BYTES = api.MAX_ENROL_FILES * UPLOAD_MAX_BYTES + (1 << 20)
ENROL_PATHS = ("/api/gallery/enrolments", "/gallery/enrol")
IDLE_ENV = "CANDOR_IDLE_MINUTES"
# "1" (`candor serve --one-lock`): every workflow call under one lock; "0": none.
ONE_LOCK_ENV = "CANDOR_ONE_LOCK"
# The workflow is safe for concurrent threads (workflow/context.py): no server-wide lock
# unless asked for.
DEFAULT_ONE_LOCK = False
# Set by `candor serve`, which made the setup token itself before starting its workers.
SETUP_DONE_ENV = "CANDOR_SETUP_TOKEN_MADE"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("candor")
    except PackageNotFoundError:
        return "0"


class BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """Refuse a request body over its limit before it is all read (413), chunked or not."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_ENROL_BODY_BYTES if scope["path"] in ENROL_PATHS else MAX_BODY_BYTES
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, receive, send, limit)
            return
        seen = 0
        started = False
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                # The app's own answer to the cut-off body (FastAPI makes any error while
                # reading a form "400 There was an error parsing the body") gives way
                # to the 413 below.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyTooLargeError):
            await self.app(scope, limited_receive, tracking_send)
        if too_large and not started:
            await _too_large(scope, receive, send, limit)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    refusal = RefusedError(413, f"the request is larger than {limit:,} bytes")
    request = Request(scope, receive)
    response: Response
    if is_api(request):
        response = problem_response(request, refusal)
    else:
        response = JSONResponse({"error": refusal.message}, status_code=413)
    await response(scope, receive, send)


def create_app(
    workflow: Workflow,
    *,
    setup_token: str | None = None,
    idle_seconds: float = IDLE_SECONDS,
    one_lock: bool | None = None,
) -> FastAPI:
    """The app serving `workflow`'s workspace.

    setup_token: a one-time token for the first-run page, stored (as its sha256) in place
        of any earlier one. None: the token `candor serve` stored, if any, is the one.
    one_lock: every workflow call of this process under one lock (the design before
        --workers; the benchmarks' baseline). None: DEFAULT_ONE_LOCK.
    Times (idle sessions, lock-outs, staged photos) come from the workflow's clock.
    """
    if setup_token is not None:
        install_setup_token(workflow, setup_token)
    if one_lock is None:
        one_lock = DEFAULT_ONE_LOCK
    state = ServerState(workflow, idle_seconds=idle_seconds, one_lock=one_lock)
    # Read now, before any request: a first CSRF check would otherwise read it on the
    # event loop (under the one lock in --one-lock mode). A busy database leaves it to
    # that first check rather than failing the start.
    with contextlib.suppress(WorkspaceBusyError):
        state.guard.load_csrf_key()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # No more request threads than the database pool serves at once: more would wait
        # for a connection (up to the pool timeout) rather than for a thread.
        threads = server_threads(workflow.workspace.engine)
        to_thread.current_default_thread_limiter().total_tokens = threads
        # A node that was down catches up now, not inside its first search. A busy
        # database leaves it to that search. So does an active model whose file changed:
        # accounts, the audit log and reports stay reachable, and each search is refused
        # in one line naming the file, until an admin puts the recorded bytes back.
        try:
            await to_thread.run_sync(state.call, bring_index_in_step, workflow)
        except WorkspaceBusyError:
            pass
        except ModelError as error:
            sys.stderr.write(f"candor: warning: {error}\n")
        yield

    app = FastAPI(
        title="Candor",
        version=_version(),
        summary="Accountable face search: governed requests, reviewed leads, audited.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the description is enough.
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(authorise)],
        lifespan=lifespan,
    )
    app.state.candor = state
    # The bearer scheme and the problems each route may answer (api_models.describe_api).
    app.openapi = lambda: describe_api(app)  # type: ignore[method-assign]
    app.include_router(api.router)
    app.include_router(reports.api_router)
    app.include_router(admin_pages.api_router)
    app.include_router(web.router)
    app.include_router(reports.page_router)
    app.include_router(admin_pages.page_router)
    app.include_router(jobs_pages.page_router)
    app.include_router(review_pages.page_router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(RefusedError)
    async def refused(request: Request, error: RefusedError) -> Response:
        if is_api(request):
            return problem_response(request, error)
        if error.status == 401:
            return RedirectResponse("/login", status_code=303)
        return web.error_page(request, error)

    @app.exception_handler(WorkspaceBusyError)
    async def busy(request: Request, error: WorkspaceBusyError) -> Response:
        # Wherever it surfaces (a dependency, a route that reads without `run`): a
        # 503 to try again, never a 500.
        return await refused(request, as_refused(error))

    @app.exception_handler(PoolTimeoutError)
    async def no_connection(request: Request, _error: PoolTimeoutError) -> Response:
        # Every pooled connection stayed in use for the pool's timeout: busy, not broken.
        busy_error = WorkspaceBusyError(
            f"the workspace database had no free connection for {POOL_TIMEOUT_SECONDS:g} s "
            "(the server is busy); try again"
        )
        return await refused(request, as_refused(busy_error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        problems = [
            {
                "field": ".".join(str(p) for p in item.get("loc", ())),
                "message": item.get("msg", "invalid"),
            }
            for item in error.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        refusal = RefusedError(422, message or "the request is not valid")
        if is_api(request):
            # Each field's complaint too, for a client that marks the fields it sent.
            refusal.extra["errors"] = problems
            return problem_response(request, refusal)
        return web.error_page(request, refusal)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # The router's own refusals (no such route, a method the route has not, a body
        # that is not a form): problems like every other API refusal.
        if is_api(request):
            detail = error.detail if isinstance(error.detail, str) else "the request was refused"
            refusal = RefusedError(error.status_code, detail, headers=dict(error.headers or {}))
            return problem_response(request, refusal)
        return await http_exception_handler(request, error)

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static/"):
            # Pages and answers can show faces and case numbers: never kept in a cache.
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_middleware(FormTextCheck)
    app.add_middleware(BodyLimit)
    return app


def create_app_from_env() -> FastAPI:
    """The app for the workspace at CANDOR_HOME, in one worker process.

    Started by Uvicorn without `candor serve` (which makes the token first), on a
    workspace without users and with no setup token pending, the first worker to get
    here makes one and prints it; the others print nothing.
    """
    workflow = open_workflow()
    if os.environ.get(SETUP_DONE_ENV) != "1" and not workspace_state(workflow).has_users:
        token = new_secret()
        if offer_setup_token(workflow, token):
            # The console is the one place this secret goes: it proves the person at the
            # first-run page can read the server's console. Never a log file.
            sys.stderr.write(setup_token_notice(token))
            sys.stderr.flush()
    idle = float(os.environ.get(IDLE_ENV, IDLE_SECONDS / 60)) * 60
    one_lock = os.environ.get(ONE_LOCK_ENV, "1" if DEFAULT_ONE_LOCK else "0") == "1"
    return create_app(workflow, idle_seconds=idle, one_lock=one_lock)
