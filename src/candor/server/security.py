"""The server's own guards: setup token, failed-login lock-out, idle sessions, CSRF tokens.

The workflow owns accounts and sessions (a login's bearer token, its absolute lifetime,
audited failures); these guards sit in front of it and hold only what one server process
needs in memory:

- the one-time setup token printed to the console of a workspace without users;
- recent failed logins per username, so that the sixth guess in fifteen minutes is
  refused before a password is even checked;
- when each session token was last used, so that a session left idle ends (and the
  server ends it in the workflow too). A token this process has not issued is refused:
  after a restart everyone logs in again, which fails closed;
- the key that binds a form's CSRF token to its session.

Tokens are kept only as their sha256, never logged and never compared with `==`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW_SECONDS = 15 * 60
IDLE_SECONDS = 30 * 60
# Failed setup-token guesses are limited the same way as logins.
SETUP_FAILURES = 5

Clock = Callable[[], float]


def token_digest(token: str) -> str:
    """What the server keeps of a token (the workflow's database keeps the same)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh random token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass
class FailureWindow:
    """Failures within a sliding window; `locked` once there are `limit` of them."""

    limit: int
    window: float
    times: deque[float] = field(default_factory=deque)

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] >= self.window:
            self.times.popleft()

    def locked(self, now: float) -> bool:
        self._trim(now)
        return len(self.times) >= self.limit

    def fail(self, now: float) -> None:
        self._trim(now)
        self.times.append(now)

    def retry_after(self, now: float) -> int:
        self._trim(now)
        return 0 if not self.times else max(1, int(self.window - (now - self.times[0])) + 1)


class Guard:
    """Thread-safe guards for one server process."""

    def __init__(
        self,
        *,
        setup_token: str | None = None,
        idle_seconds: float = IDLE_SECONDS,
        lockout_failures: int = LOCKOUT_FAILURES,
        lockout_window: float = LOCKOUT_WINDOW_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._setup_token = setup_token
        self._setup_failures = FailureWindow(SETUP_FAILURES, lockout_window)
        self._failures: dict[str, FailureWindow] = {}
        self._last_seen: dict[str, float] = {}
        self._csrf_key = secrets.token_bytes(32)
        self.idle_seconds = idle_seconds
        self.lockout_failures = lockout_failures
        self.lockout_window = lockout_window
        self.clock = clock

    # -- setup token ---------------------------------------------------------------------

    @property
    def setup_pending(self) -> bool:
        with self._lock:
            return self._setup_token is not None

    def setup_locked(self) -> bool:
        with self._lock:
            return self._setup_failures.locked(self.clock())

    def check_setup_token(self, offered: str) -> bool:
        """Whether `offered` is the setup token (constant time); failures count."""
        with self._lock:
            now = self.clock()
            if self._setup_token is None or self._setup_failures.locked(now):
                return False
            good = hmac.compare_digest(
                offered.encode("utf-8", "replace"), self._setup_token.encode("utf-8")
            )
            if not good:
                self._setup_failures.fail(now)
            return good

    def spend_setup_token(self) -> None:
        """The first admins exist: the token is never accepted again."""
        with self._lock:
            self._setup_token = None

    # -- lock-out ------------------------------------------------------------------------

    @staticmethod
    def _who(username: str) -> str:
        # Usernames are lower case in the store; a guess in capitals counts the same.
        return username.strip().lower()[:200]

    def locked_out(self, username: str) -> int:
        """Seconds until `username` may try again; 0 when not locked out."""
        with self._lock:
            window = self._failures.get(self._who(username))
            now = self.clock()
            if window is None or not window.locked(now):
                return 0
            return window.retry_after(now)

    def login_failed(self, username: str) -> None:
        with self._lock:
            key = self._who(username)
            window = self._failures.setdefault(
                key, FailureWindow(self.lockout_failures, self.lockout_window)
            )
            window.fail(self.clock())

    def login_succeeded(self, username: str, token: str) -> None:
        with self._lock:
            self._failures.pop(self._who(username), None)
            self._last_seen[token_digest(token)] = self.clock()

    # -- idle sessions -------------------------------------------------------------------

    def touch(self, token: str) -> str:
        """Mark the session used now: "ok", "unknown" (not issued here) or "idle" (ended)."""
        digest = token_digest(token)
        with self._lock:
            now = self.clock()
            seen = self._last_seen.get(digest)
            if seen is None:
                return "unknown"
            if now - seen > self.idle_seconds:
                del self._last_seen[digest]
                return "idle"
            self._last_seen[digest] = now
            return "ok"

    def forget(self, token: str) -> None:
        with self._lock:
            self._last_seen.pop(token_digest(token), None)

    # -- CSRF ----------------------------------------------------------------------------

    def csrf_for(self, binding: str) -> str:
        """The CSRF token of forms shown under `binding` (a session token or a pre-login nonce)."""
        return hmac.new(self._csrf_key, binding.encode("utf-8"), hashlib.sha256).hexdigest()

    def csrf_ok(self, binding: str, offered: str | None) -> bool:
        if not offered:
            return False
        return hmac.compare_digest(
            self.csrf_for(binding).encode(), offered.encode("utf-8", "replace")
        )
