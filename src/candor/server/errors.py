"""Refusals as HTTP: a workflow error is the caller's problem (4xx), never a 500.

Each error's message is the workflow's one-line reason; JSON routes answer
{"error": message}, pages answer a page that says it.
"""

from __future__ import annotations

import re
from typing import Any

from candor.workflow import (
    USER_ERRORS,
    MultipleFacesError,
    PermissionDeniedError,
    SubjectNotFoundError,
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

# The folders of an absolute path ("/srv/x/tmp/" of "/srv/x/tmp/a.jpg"), not after a word
# ("and/or") or within a relative path ("tmp/a.jpg").
_SERVER_FOLDERS = re.compile(r"(?<![\w.~/-])(?:/[^\s/'\"`:;,()<>\[\]]+)+/(?=[^\s/'\"`:;,()<>\[\]])")
# Which header says that the server's route table (not the workflow) refused a call.
REFUSED_BY_HEADER = "X-Candor-Refused-By"
# When a caller refused because another process held the database may try again.
BUSY_RETRY_SECONDS = 1


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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        if refused_by is not None:
            self.headers[REFUSED_BY_HEADER] = refused_by
        self.extra = extra or {}


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return without_server_folders(" ".join(text.split()))


def without_server_folders(text: str) -> str:
    """Text with every absolute path cut to its last part: an upload's own name stays.

    Workflow messages name files by their path, and an upload's path is a folder of the
    server's ("<workspace>/tmp/uploads/<random>/notes.jpg"); the caller sent "notes.jpg"
    and learns nothing of the server's disk.
    """
    return _SERVER_FOLDERS.sub("", text)


def status_for(error: BaseException) -> int:
    """The HTTP status of a workflow, store or image error."""
    if isinstance(error, NotAuthenticatedError | LoginFailedError):
        return 401
    if isinstance(error, PermissionDeniedError | NotAnAdminError | SelfConfirmationError):
        return 403
    if isinstance(error, UserNotFoundError | SubjectNotFoundError | ChangeNotFoundError):
        return 404
    if isinstance(error, RequestStateError):
        return 409
    if isinstance(error, MultipleFacesError):
        return 422
    if isinstance(error, WorkspaceBusyError):
        return 503
    return 400


def as_refused(error: BaseException) -> RefusedError:
    """A caught workflow error as the refusal the caller sees."""
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(error, MultipleFacesError):
        extra["faces"] = error.faces
    if isinstance(error, WorkspaceBusyError):
        headers["Retry-After"] = str(BUSY_RETRY_SECONDS)
    return RefusedError(status_for(error), one_line(error), extra=extra, headers=headers)


__all__ = [
    "REFUSED_BY_HEADER",
    "USER_ERRORS",
    "RefusedError",
    "as_refused",
    "one_line",
    "status_for",
    "without_server_folders",
]
