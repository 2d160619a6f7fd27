"""The server's guards: setup token, failed-login lock-out, idle sessions, CSRF tokens.

The workflow owns accounts and sessions (a login's bearer token, its absolute lifetime,
audited failures); these guards sit in front of it. What they remember lives in the
database (candor.workflow.server_state), so every worker process and every node of one
service guards alike:

- the one-time setup token `candor serve` printed to its console, kept as its sha256;
- recent failed logins per username, counted on every node, so that the sixth guess in
  fifteen minutes is refused before a password is even checked;
- when each session was last used, so that a session left idle ends (in the workflow,
  audited). A login made through any node is valid on every other;
- the key that binds a form's CSRF token to its session, one for the whole service.

Tokens are kept only as their sha256, never logged and never compared with `==`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from candor.workflow import Workflow
from candor.workflow import server_state as stored
from candor.workflow.server_state import IDLE, LOCKOUT_FAILURES, LOCKOUT_WINDOW, SETUP_FAILURES

P = ParamSpec("P")
T = TypeVar("T")

IDLE_SECONDS = IDLE.total_seconds()
LOCKOUT_WINDOW_SECONDS = LOCKOUT_WINDOW.total_seconds()

__all__ = [
    "IDLE_SECONDS",
    "LOCKOUT_FAILURES",
    "LOCKOUT_WINDOW_SECONDS",
    "SETUP_FAILURES",
    "Guard",
    "new_secret",
    "token_digest",
]


def token_digest(token: str) -> str:
    """What the server keeps of a token (the workflow's database keeps the same)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh random token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def _direct(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return function(*args, **kwargs)


class Guard:
    """The guards of one service, over its workflow; safe to use from many threads.

    call: how a workflow function is run (the server's one lock in --one-lock mode).
    """

    def __init__(
        self,
        workflow: Workflow,
        *,
        idle_seconds: float = IDLE_SECONDS,
        lockout_failures: int = LOCKOUT_FAILURES,
        lockout_window: float = LOCKOUT_WINDOW_SECONDS,
        call: Callable[..., object] = _direct,
    ) -> None:
        self.workflow = workflow
        self.idle = timedelta(seconds=idle_seconds)
        self.lockout_failures = lockout_failures
        self.window = timedelta(seconds=lockout_window)
        self._call = call
        self._csrf_key: bytes | None = None
        self._csrf_lock = threading.Lock()

    def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = self._call(function, *args, **kwargs)  # type: ignore[assignment]
        return result

    # -- setup token ---------------------------------------------------------------------

    @property
    def setup_pending(self) -> bool:
        return self._run(stored.setup_pending, self.workflow)

    def setup_locked(self) -> bool:
        return self._run(stored.setup_wait, self.workflow, window=self.window) > 0

    def check_setup_token(self, offered: str) -> bool:
        """Whether `offered` is the setup token (constant time); failures count."""
        return self._run(stored.check_setup_token, self.workflow, offered, window=self.window)

    def spend_setup_token(self) -> None:
        """The first admins exist: the token is never accepted again."""
        self._run(stored.spend_setup_token, self.workflow)

    # -- lock-out ------------------------------------------------------------------------

    def locked_out(self, username: str) -> int:
        """Seconds until `username` may try again; 0 when not locked out."""
        return self._run(
            stored.login_wait,
            self.workflow,
            username,
            failures=self.lockout_failures,
            window=self.window,
        )

    def login_failed(self, username: str) -> None:
        self._run(stored.note_failed_login, self.workflow, username, window=self.window)

    def login_succeeded(self, username: str) -> None:
        self._run(stored.clear_failed_logins, self.workflow, username)

    # -- idle sessions -------------------------------------------------------------------

    def touch(self, token: str) -> str:
        """Mark the session used now: "ok", "unknown" (no open session has this token) or
        "idle" (it was unused too long, and is now ended)."""
        return self._run(stored.session_activity, self.workflow, token, idle=self.idle)

    # -- CSRF ----------------------------------------------------------------------------

    def load_csrf_key(self) -> None:
        """Read the CSRF key now (the app does as it is made), not at the first form."""
        self._key()

    def _key(self) -> bytes:
        # Made once for the whole service and never changed: read once per process.
        with self._csrf_lock:
            if self._csrf_key is None:
                self._csrf_key = self._run(stored.csrf_key, self.workflow)
            return self._csrf_key

    def csrf_for(self, binding: str) -> str:
        """The CSRF token of forms shown under `binding` (a session token or a pre-login nonce)."""
        return hmac.new(self._key(), binding.encode("utf-8"), hashlib.sha256).hexdigest()

    def csrf_ok(self, binding: str, offered: str | None) -> bool:
        if not offered:
            return False
        return hmac.compare_digest(
            self.csrf_for(binding).encode(), offered.encode("utf-8", "replace")
        )
