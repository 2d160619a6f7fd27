"""One server process's working set: the workflow, its lock, the guards, staged uploads.

The face engine is not thread-safe and a workflow is one set of connections, so every
workflow call of this process runs under one lock: requests are served one at a time
where they touch the workflow, which is what an accountable single-workspace service
needs, and what one `candor serve` process offers.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from fastapi.templating import Jinja2Templates

from candor.server.errors import RefusedError
from candor.server.security import Guard, token_digest
from candor.workflow import Workflow
from candor.workflow.probe_check import UPLOAD_MAX_BYTES
from candor.workflow.upkeep import upload_folder

P = ParamSpec("P")
T = TypeVar("T")

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
# A checked photo waits this long for its request to be sent.
STAGED_SECONDS = 10 * 60
STAGED_PER_USER = 4
STAGED_TOTAL = 64
_CHUNK = 1 << 16
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StagedProbe:
    """A probe photo checked on the search page and not yet sent (held in memory only)."""

    owner: str  # sha256 of the session token that uploaded it
    filename: str
    data: bytes
    expires: float


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

    def __init__(self, workflow: Workflow, guard: Guard, *, clock: Callable[[], float]) -> None:
        self.workflow = workflow
        self.guard = guard
        self.clock = clock
        self.lock = threading.RLock()
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.filters["sentence"] = sentence
        self._staged: dict[str, StagedProbe] = {}
        self._staged_lock = threading.Lock()

    def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one workflow function under the process's workflow lock."""
        with self.lock:
            return function(*args, **kwargs)

    def upload_folder(self) -> AbstractContextManager[Path]:
        """A private folder for uploaded files inside the workspace, erased with everything
        in it (never the shared /tmp, where a killed server would leave probe photos)."""
        return upload_folder(self.workflow)

    # -- staged probes -------------------------------------------------------------------

    def stage(self, token: str, filename: str, data: bytes) -> str:
        owner = token_digest(token)
        now = self.clock()
        with self._staged_lock:
            self._expire(now)
            mine = sorted(
                (key for key, staged in self._staged.items() if staged.owner == owner),
                key=lambda key: self._staged[key].expires,
            )
            while len(mine) >= STAGED_PER_USER:
                self._staged.pop(mine.pop(0))
            if len(self._staged) >= STAGED_TOTAL:
                raise RefusedError(503, "too many photos are waiting to be sent; try again shortly")
            key = secrets.token_urlsafe(16)
            self._staged[key] = StagedProbe(owner, filename, data, now + STAGED_SECONDS)
            return key

    def take_staged(self, token: str, key: str) -> StagedProbe:
        """The photo staged under `key` by this session; it can be taken once."""
        with self._staged_lock:
            self._expire(self.clock())
            staged = self._staged.get(key)
            if staged is None or staged.owner != token_digest(token):
                raise RefusedError(
                    400, "the checked photo is no longer held (sent, or older than 10 minutes)"
                )
            return self._staged.pop(key)

    def peek_staged(self, token: str, key: str) -> StagedProbe | None:
        with self._staged_lock:
            staged = self._staged.get(key)
            if staged is None or staged.owner != token_digest(token):
                return None
            return staged

    def drop_staged_of(self, token: str) -> None:
        owner = token_digest(token)
        with self._staged_lock:
            for key in [k for k, s in self._staged.items() if s.owner == owner]:
                self._staged.pop(key)

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._staged.items() if s.expires <= now]:
            self._staged.pop(key)


def monotonic() -> float:
    return time.monotonic()
