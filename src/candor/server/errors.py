"""Refusals as HTTP: a workflow error is the caller's problem (4xx), never a 500.

Each error's message is the workflow's one-line reason. JSON routes (/api/...) answer
an RFC 9457 problem (application/problem+json: type, title, status, detail, instance,
and Candor's extension members where a caller needs more, e.g. the faces to choose
from); pages answer a page that says it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from candor.workflow import (
    USER_ERRORS,
    MultipleFacesError,
    NotFoundError,
    PermissionDeniedError,
    WorkspaceBusyError,
)
from candor.workflow.accounts import (
    ChangeNotFoundError,
    LoginFailedError,
    NotAnAdminError,
    NotAuthenticatedError,
    SelfConfirmationError,
    UserNotFoundError,
)
from candor.workflow.governed import RequestStateError
from candor.workflow.limits import TextRefusedError
from candor.workflow.retries import IdempotencyKeyReusedError

# The folders of an absolute path ("/srv/x/tmp/" of "/srv/x/tmp/a.jpg"), not after a word
# ("and/or") or within a relative path ("tmp/a.jpg").
_SERVER_FOLDERS = re.compile(r"(?<![\w.~/-])(?:/[^\s/'\"`:;,()<>\[\]]+)+/(?=[^\s/'\"`:;,()<>\[\]])")
# Which header says that the server's route table (not the workflow) refused a call.
REFUSED_BY_HEADER = "X-Candor-Refused-By"
# When a caller refused because another process held the database may try again.
BUSY_RETRY_SECONDS = 1
# The media type of every API refusal (RFC 9457).
PROBLEM_JSON = "application/problem+json"
# A problem's `type` is this prefix and a kind; docs/api.md lists the kinds.
PROBLEM_TYPE_PREFIX = "urn:candor:problem:"
# The kind of a refusal by its status, where nothing more specific is known; and the
# title each kind has (the same for every problem of the kind, as RFC 9457 asks).
KIND_OF_STATUS: dict[int, str] = {
    400: "bad-request",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    422: "invalid-request",
    429: "too-many-attempts",
    503: "busy",
}
TITLES: dict[str, str] = {
    "bad-request": "The request was refused",
    "not-authenticated": "Not logged in",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "Not in a state that allows this",
    "too-large": "The request is too large",
    "invalid-request": "The request is not valid",
    "too-many-attempts": "Too many attempts",
    "busy": "The workspace is busy; try again",
    "multiple-faces": "The photo shows several faces; choose one",
    "idempotency-key-reused": "The Idempotency-Key was used for a different request",
    "password-change-required": "Choose a new password first (POST /api/password)",
}
# Kinds of refusal known by who refused (the X-Candor-Refused-By header's value).
KIND_OF_REFUSER = {"password-change": "password-change-required"}


class RefusedError(Exception):
    """A request the server answers with a 4xx and one line saying why."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        refused_by: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        if refused_by is not None:
            self.headers[REFUSED_BY_HEADER] = refused_by
        if status == 401:
            # RFC 9110: a 401 names the scheme that would let the caller in.
            self.headers.setdefault("WWW-Authenticate", 'Bearer realm="candor"')
        self.extra = extra or {}
        self.kind = (
            kind
            or KIND_OF_REFUSER.get(refused_by or "")
            or KIND_OF_STATUS.get(status, "bad-request")
        )

    def problem(self, instance: str) -> dict[str, Any]:
        """The RFC 9457 problem details of this refusal, for the request at `instance`."""
        return {
            "type": PROBLEM_TYPE_PREFIX + self.kind,
            "title": TITLES.get(self.kind, TITLES["bad-request"]),
            "status": self.status,
            "detail": self.message,
            "instance": instance,
            **self.extra,
        }


def problem_response(request: Request, error: RefusedError) -> JSONResponse:
    """An API refusal as its RFC 9457 problem (application/problem+json)."""
    return JSONResponse(
        error.problem(request.url.path),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_JSON,
    )


def one_line(error: BaseException, *homes: Path) -> str:
    """The error's message on one line, without the server's folders (see below)."""
    text = str(error).strip() or type(error).__name__
    # The homes first: joining the lines must not change a folder name's spaces.
    return " ".join(without_server_folders(text, *homes).split())


def without_server_folders(text: str, *homes: Path) -> str:
    """Text with every absolute path cut to its last part: an upload's own name stays.

    Workflow messages name files by their path, and an upload's path is a folder of the
    server's ("<workspace>/tmp/uploads/<random>/notes.jpg"); the caller sent "notes.jpg"
    and learns nothing of the server's disk. homes: folders (the workspace) whose paths
    are cut even where their names hold spaces, which end a path for the general rule.
    """
    for home in homes:
        below = re.escape(str(home)) + r"(?:/[^\s/'\"`:;,()<>\[\]]+)*/(?=[^\s/])"
        text = re.sub(below, "", text)
    return _SERVER_FOLDERS.sub("", text)


def status_for(error: BaseException) -> int:
    """The HTTP status of a workflow, store or image error."""
    if isinstance(error, NotAuthenticatedError | LoginFailedError):
        return 401
    if isinstance(error, PermissionDeniedError | NotAnAdminError | SelfConfirmationError):
        return 403
    if isinstance(error, UserNotFoundError | NotFoundError | ChangeNotFoundError):
        return 404
    if isinstance(error, RequestStateError):
        return 409
    if isinstance(error, MultipleFacesError | IdempotencyKeyReusedError | TextRefusedError):
        return 422
    if isinstance(error, WorkspaceBusyError):
        return 503
    return 400


def as_refused(
    error: BaseException, *, face_field: str | None = None, home: Path | None = None
) -> RefusedError:
    """A caught workflow error as the refusal the caller sees.

    face_field: the API's form field that chooses a face in the photo the error is about;
        with it, a photo with several faces is refused naming that field (the workflow's
        message names no interface's way of choosing), with the faces to choose from.
    home: the workspace's folder, cut from any path in the message (see one_line).
    """
    if isinstance(error, MultipleFacesError) and face_field is not None:
        return several_faces(error, face_field)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    kind = None
    if isinstance(error, MultipleFacesError):
        extra["faces"] = error.faces
    if isinstance(error, WorkspaceBusyError):
        headers["Retry-After"] = str(BUSY_RETRY_SECONDS)
    if isinstance(error, IdempotencyKeyReusedError):
        kind = "idempotency-key-reused"
    homes = () if home is None else (home,)
    return RefusedError(
        status_for(error), one_line(error, *homes), headers=headers, extra=extra, kind=kind
    )


def several_faces(error: MultipleFacesError, face_field: str) -> RefusedError:
    """A photo with several faces, refused with the field to send and the faces found."""
    count = len(error.faces)
    name = without_server_folders(error.name)
    faces = [
        {"face_index": face.get("face"), **{k: v for k, v in face.items() if k != "face"}}
        for face in error.faces
    ]
    return RefusedError(
        status_for(error),
        f"{name}: {count} faces found; choose one by sending {face_field} "
        f"(0 to {count - 1}, largest first)",
        kind="multiple-faces",
        extra={"face_field": face_field, "faces": faces},
    )


__all__ = [
    "PROBLEM_JSON",
    "REFUSED_BY_HEADER",
    "USER_ERRORS",
    "RefusedError",
    "as_refused",
    "one_line",
    "problem_response",
    "several_faces",
    "status_for",
    "without_server_folders",
]
