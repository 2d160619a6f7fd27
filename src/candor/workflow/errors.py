"""Errors the workflow raises: each message is one sentence a person can act on."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base of every refusal the workflow makes; `str()` is the one-line reason."""


class NotFoundError(WorkflowError):
    """The thing named (a request, a subject, an audit entry...) does not exist."""


class RequestNotFoundError(NotFoundError):
    """No search or verify request has the given id."""

    def __init__(self, search_id: int) -> None:
        self.search_id = search_id
        super().__init__(f"no request {search_id}")


class SubjectNotFoundError(NotFoundError):
    """No subject with the given external reference is enrolled."""


class ProbeRefusedError(WorkflowError):
    """The probe (or a photo to verify) has no usable face; the message says why.

    `reason` says it without the file's name, which may be a person's: the request's
    record and audit entry keep only the reason.
    """

    def __init__(self, photo: str, reason: str) -> None:
        self.photo = photo
        self.reason = reason
        super().__init__(f"{photo}: {reason}")


class MultipleFacesError(WorkflowError):
    """The photo shows several faces and the caller must pick one by index."""

    def __init__(self, name: str, faces: list[dict[str, object]]) -> None:
        self.name = name
        self.faces = faces
        # Names no interface's way of choosing: the CLI says --face N, the web offers the
        # faces, the API names face_index (each through `choose`).
        super().__init__(self.choose(""))

    @property
    def count(self) -> int:
        return len(self.faces)

    def choose(self, how: str) -> str:
        """The refusal saying how to choose, e.g. choose("with --face N")."""
        way = f" {how}" if how else ""
        return (
            f"{self.name}: {self.count} faces found; choose one{way} "
            f"(0 to {self.count - 1}, largest first)"
        )


class FaceIndexError(WorkflowError):
    """The chosen face number does not exist in the photo."""
