"""One server process's working set: the workflow, the guards, staged uploads.

What must outlive a request (lock-outs, sessions' last use, the CSRF key, staged probe
photos) lives in the database, so any number of worker processes and nodes serve as
one. Requests run in parallel threads and each workflow call is one unit of work of its
own; with `one_lock` (`candor serve --one-lock`, the baseline of the benchmarks) every
workflow call of this process runs under one lock instead, one request at a time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from fastapi.templating import Jinja2Templates

from candor.server.errors import RefusedError
from candor.server.security import Guard
from candor.workflow import Workflow
from candor.workflow.probe_check import UPLOAD_MAX_BYTES
from candor.workflow.server_state import (
    HeldProbe,
    StagingFullError,
    drop_staged_probes,
    stage_probe,
    take_staged_probe,
)
from candor.workflow.upkeep import upload_folder

P = ParamSpec("P")
T = TypeVar("T")

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
_CHUNK = 1 << 16
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def sentence(text: str) -> str:
    """Text with its first letter capitalised and the rest untouched (unlike |capitalize)."""
    return text[:1].upper() + text[1:]


def safe_filename(name: str | None, fallback: str = "photo") -> str:
    """A file name safe to create in our own temporary folder; workflow messages name it."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip("._")[:80]
    return cleaned or fallback


def read_limited(stream: IO[bytes], limit: int = UPLOAD_MAX_BYTES, name: str = "photo") -> bytes:
    """All of an uploaded file, refusing it once it is over `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise RefusedError(
                413, f"{name}: more than {limit:,} bytes; photos are limited to that"
            )
        chunks.append(chunk)
    return b"".join(chunks)


class ServerState:
    """Everything the routes share."""

    def __init__(self, workflow: Workflow, *, idle_seconds: float, one_lock: bool) -> None:
        self.workflow = workflow
        self.one_lock = one_lock
        # Only in one-lock mode: without it, each workflow call is safe beside the others.
        self.lock: AbstractContextManager[object] = threading.RLock() if one_lock else nullcontext()
        self.guard = Guard(workflow, idle_seconds=idle_seconds, call=self.call)
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.filters["sentence"] = sentence

    def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one workflow function (under the process's one lock in one-lock mode)."""
        with self.lock:
            return function(*args, **kwargs)

    def upload_folder(self) -> AbstractContextManager[Path]:
        """A private folder for uploaded files inside the workspace, erased with everything
        in it (never the shared /tmp, where a killed server would leave probe photos)."""
        return upload_folder(self.workflow)

    # -- staged probes (in the database: a photo checked on one node is sent via another) --

    def stage(self, token: str, filename: str, data: bytes) -> str:
        try:
            return self.call(stage_probe, self.workflow, token, filename, data)
        except StagingFullError as error:
            raise RefusedError(503, str(error)) from None

    def take_staged(self, token: str, key: str) -> HeldProbe:
        """The photo staged under `key` by this session; it can be taken once."""
        held = self.call(take_staged_probe, self.workflow, token, key)
        if held is None:
            raise RefusedError(
                400, "the checked photo is no longer held (sent, or older than 10 minutes)"
            )
        return held

    def drop_staged_of(self, token: str) -> None:
        self.call(drop_staged_probes, self.workflow, token)
