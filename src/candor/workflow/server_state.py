"""What a server keeps between requests, kept in the database so that every worker process
and every node of one service sees the same (candor.store.server_state holds the rows):

- failed guesses: a login's username is locked out after LOCKOUT_FAILURES failures
  within LOCKOUT_WINDOW, made on any node; a successful login clears them. Guesses at
  the first-run setup token are limited the same way;
- the setup token: `candor serve` makes it before its workers start and stores only its
  sha256; any worker checks an offered token against that digest; bootstrapping the
  first admins spends it (the row goes);
- session activity (`auth_sessions.last_seen_at`): a session unused for the idle time
  ends, audited like a logout;
- the key every node binds forms' CSRF tokens with, made once by whichever process
  needs it first;
- probe photos checked on the search page and not yet sent, by the sha256 of their key
  and of their owner's session token, with an expiry and limits per session and in all.

Every time comes from the workflow's clock. Tokens and keys are kept as sha256 only and
compared in constant time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from candor.store import WorkspaceBusyError, count_users, session_by_token_sha256
from candor.store.data_keys import KeyEncryptionKeyError
from candor.store.errors import BiometricIntegrityError
from candor.store.server_state import (
    LOGIN_GUESS,
    SETUP_TOKEN_GUESS,
    add_failed_guess,
    add_server_secret_once,
    add_staged_probe,
    count_staged_probes,
    delete_expired_staged_probes,
    delete_failed_guesses,
    delete_failed_guesses_before,
    delete_server_secret,
    delete_staged_probes,
    delete_staged_probes_of,
    failed_guess_times,
    mark_session_seen,
    replace_server_secret,
    server_secret,
    staged_probe,
    staged_probe_hashes,
    staged_probe_keys_of,
)
from candor.store.upkeep import held_probes
from candor.store.vault import sha256_hex
from candor.workflow.accounts import NotAuthenticatedError, logout, token_sha256
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError

LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
# Failed setup-token guesses are limited the same way as logins.
SETUP_FAILURES = 5
IDLE = timedelta(minutes=30)
# A session's last use is written at most once a minute (see `session_activity`).
SEEN_STEP = timedelta(minutes=1)
# A checked photo waits this long for its request to be sent.
STAGED_LIFETIME = timedelta(minutes=10)
STAGED_PER_SESSION = 4
STAGED_TOTAL = 64

CSRF_KEY_SECRET = "csrf_key"  # noqa: S105 (the name of a row, not a secret)
SETUP_TOKEN_SECRET = "setup_token_sha256"  # noqa: S105 (the name of a row, not a secret)
_SETUP_SUBJECT = ""


class StagingFullError(WorkflowError):
    """Too many photos, from all sessions, are waiting to be sent."""


@dataclass(frozen=True)
class HeldProbe:
    """A staged probe photo, taken (and so no longer held) for its search request."""

    filename: str
    data: bytes


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _login_subject(username: str) -> str:
    # Usernames are lower case in the store; a guess in capitals counts the same.
    return username.strip().lower()[:200]


def _wait_seconds(times: list[datetime], limit: int, window: timedelta, now: datetime) -> int:
    """Seconds until fewer than `limit` of the failures at `times` (oldest first) fall
    within `window`; 0 when fewer already do."""
    if len(times) < limit:
        return 0
    # The failure whose leaving the window brings the count below the limit.
    freed_at = times[len(times) - limit] + window
    return max(1, math.ceil((freed_at - now).total_seconds()))


def _guess_wait(workflow: Workflow, kind: str, subject: str, limit: int, window: timedelta) -> int:
    now = workflow.now()
    with workflow.workspace.session() as session:
        times = failed_guess_times(session, kind, subject, now - window)
    return _wait_seconds(times, limit, window, now)


def _note_guess(workflow: Workflow, kind: str, subject: str, window: timedelta) -> None:
    now = workflow.now()
    with workflow.workspace.session() as session, session.begin():
        # Guesses older than any window count for nothing: the table stays small.
        delete_failed_guesses_before(session, now - max(window, LOCKOUT_WINDOW))
        add_failed_guess(session, kind, subject, now)


# Logins -------------------------------------------------------------------------------------


def login_wait(
    workflow: Workflow,
    username: str,
    *,
    failures: int = LOCKOUT_FAILURES,
    window: timedelta = LOCKOUT_WINDOW,
) -> int:
    """Seconds until `username` may try to log in again; 0 when not locked out.

    Counts the failures of every process and node. Several nodes checking at the same
    moment may each let one more guess through; the window stays bounded by the number
    of workers.
    """
    return _guess_wait(workflow, LOGIN_GUESS, _login_subject(username), failures, window)


def note_failed_login(
    workflow: Workflow, username: str, *, window: timedelta = LOCKOUT_WINDOW
) -> None:
    """Count one failed login towards `username`'s lock-out."""
    _note_guess(workflow, LOGIN_GUESS, _login_subject(username), window)


def clear_failed_logins(workflow: Workflow, username: str) -> None:
    """A login succeeded: its username's earlier failures no longer count."""
    with workflow.workspace.session() as session, session.begin():
        delete_failed_guesses(session, LOGIN_GUESS, _login_subject(username))


# The setup token ------------------------------------------------------------------------------


def install_setup_token(workflow: Workflow, token: str) -> None:
    """Make `token` the one-time setup token (only its sha256 is stored), replacing any
    earlier one; guesses at an earlier token no longer count."""
    with workflow.workspace.session() as session, session.begin():
        replace_server_secret(session, SETUP_TOKEN_SECRET, _digest(token), workflow.now())
        delete_failed_guesses(session, SETUP_TOKEN_GUESS, _SETUP_SUBJECT)


def new_setup_token(workflow: Workflow) -> str | None:
    """On a workspace without users, a fresh setup token, stored (as its sha256) in place of
    any earlier one, for the caller to show on its console; None once users exist.

    `candor serve` calls this before its workers start, so every start has a new token.
    """
    with workflow.workspace.session() as session:
        if count_users(session):
            return None
    token = secrets.token_urlsafe(32)
    install_setup_token(workflow, token)
    return token


def setup_token_notice(token: str) -> str:
    """What the console shows of a new setup token."""
    return (
        "\nCandor first run: this workspace has no users yet.\n"
        "Open the first-run page and enter this one-time setup token:\n\n"
        f"    {token}\n\n"
    )


def offer_setup_token(workflow: Workflow, token: str) -> bool:
    """Make `token` the setup token unless one is pending already; whether it was made.

    For workers started without `candor serve`: of several starting at once, only the one
    whose token was stored (and so prints it) gets True.
    """
    digest = _digest(token)
    with workflow.workspace.session() as session, session.begin():
        kept = add_server_secret_once(session, SETUP_TOKEN_SECRET, digest, workflow.now())
    return hmac.compare_digest(kept.encode(), digest.encode())


def setup_pending(workflow: Workflow) -> bool:
    """Whether a setup token is waiting to be used."""
    with workflow.workspace.session() as session:
        return server_secret(session, SETUP_TOKEN_SECRET) is not None


def setup_wait(
    workflow: Workflow, *, failures: int = SETUP_FAILURES, window: timedelta = LOCKOUT_WINDOW
) -> int:
    """Seconds until the setup token may be guessed again; 0 when it may be now."""
    return _guess_wait(workflow, SETUP_TOKEN_GUESS, _SETUP_SUBJECT, failures, window)


def check_setup_token(
    workflow: Workflow,
    offered: str,
    *,
    failures: int = SETUP_FAILURES,
    window: timedelta = LOCKOUT_WINDOW,
) -> bool:
    """Whether `offered` is the setup token (digests compared in constant time).

    False when there is none or guessing is locked out; a wrong guess counts.
    """
    if setup_wait(workflow, failures=failures, window=window):
        return False
    with workflow.workspace.session() as session:
        stored = server_secret(session, SETUP_TOKEN_SECRET)
    if stored is None:
        return False
    good = hmac.compare_digest(_digest(offered).encode(), stored.encode())
    if not good:
        _note_guess(workflow, SETUP_TOKEN_GUESS, _SETUP_SUBJECT, window)
    return good


def spend_setup_token(workflow: Workflow) -> bool:
    """The first admins exist: the token is never accepted again. False if already spent."""
    with workflow.workspace.session() as session, session.begin():
        return delete_server_secret(session, SETUP_TOKEN_SECRET)


# CSRF -----------------------------------------------------------------------------------------


def csrf_key(workflow: Workflow) -> bytes:
    """The key every node binds CSRF tokens with: made once, by whichever process asks first
    (two at once both get the one committed first)."""
    with workflow.workspace.session() as session:
        stored = server_secret(session, CSRF_KEY_SECRET)
    if stored is None:
        with workflow.workspace.session() as session, session.begin():
            stored = add_server_secret_once(
                session, CSRF_KEY_SECRET, secrets.token_hex(32), workflow.now()
            )
    return bytes.fromhex(stored)


# Idle sessions --------------------------------------------------------------------------------


def session_activity(workflow: Workflow, token: str, *, idle: timedelta = IDLE) -> str:
    """Mark a session used now: "ok", "unknown" (no such open session) or "idle".

    An idle session (unused for longer than `idle`, on any node) is ended here, audited
    as a logout, and its staged probes dropped. To spare every request a write, the last
    use is written only when the stored one is older than SEEN_STEP (one minute; half of
    `idle` when that is shorter): a session is thus ended up to that much early, never late.
    """
    digest = token_sha256(token)
    now = workflow.now()
    with workflow.workspace.session() as session:
        row = session_by_token_sha256(session, digest)
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return "unknown"
        session_id = row.id
        last = row.last_seen_at or row.created_at
    if now - last > idle:
        # Ended or disabled meanwhile, elsewhere: nothing is left to end.
        with contextlib.suppress(NotAuthenticatedError):
            logout(workflow, token)
        drop_staged_probes(workflow, token)
        return "idle"
    if now - last >= min(SEEN_STEP, idle / 2):
        # Another process holding the write lock too long costs this mark, not the request
        # (which may only read): the next request marks it.
        with (
            contextlib.suppress(WorkspaceBusyError),
            workflow.workspace.session() as session,
            session.begin(),
        ):
            mark_session_seen(session, session_id, now)
    return "ok"


# Staged probes --------------------------------------------------------------------------------


def stage_probe(workflow: Workflow, token: str, filename: str, data: bytes) -> str:
    """Hold a checked probe photo for the session of `token`; the key to send it with.

    A session holds at most STAGED_PER_SESSION (its oldest goes first), all sessions
    STAGED_TOTAL (StagingFullError beyond); expired photos are dropped here.
    """
    key = secrets.token_urlsafe(16)
    owner = token_sha256(token)
    now = workflow.now()
    workspace = workflow.workspace
    probe = sha256_hex(data)
    with workspace.session() as session, session.begin():
        dropped = staged_probe_hashes(session, expired_by=now)
        delete_expired_staged_probes(session, now)
        mine = staged_probe_keys_of(session, owner)
        if len(mine) >= STAGED_PER_SESSION:
            oldest = mine[: len(mine) - STAGED_PER_SESSION + 1]
            dropped |= staged_probe_hashes(session, keys_sha256=oldest)
            delete_staged_probes(session, oldest)
        _destroy_unused_probe_keys(workflow, session, dropped - {probe})
        if count_staged_probes(session) >= STAGED_TOTAL:
            raise StagingFullError("too many photos are waiting to be sent; try again shortly")
        # Sealed under the probe's own key: the search it becomes uses the same key, and
        # a staged photo never sent has its key destroyed when the row goes.
        sealing = workspace.keys.probe_key(session, probe, create=True)
        add_staged_probe(
            session,
            _digest(key),
            owner,
            filename,
            workspace.vault.seal_staged(_digest(key), data, sealing),
            probe_sha256=probe,
            created_at=now,
            expires_at=now + STAGED_LIFETIME,
        )
    return key


def take_staged_probe(workflow: Workflow, token: str, key: str) -> HeldProbe | None:
    """The photo the session of `token` staged under `key`, taken once; None when it is not
    held (sent already, expired, or another session's)."""
    owner = token_sha256(token)
    now = workflow.now()
    with workflow.workspace.session() as session, session.begin():
        row = staged_probe(session, _digest(key))
        if row is None or not hmac.compare_digest(row.owner_sha256, owner) or row.expires_at <= now:
            return None
        try:
            sealing = workflow.workspace.keys.probe_key(session, row.probe_sha256)
            data = workflow.workspace.vault.open_staged(row.key_sha256, row.data, sealing)
        except (KeyEncryptionKeyError, BiometricIntegrityError):
            # Its key destroyed meanwhile (the probe purged): the photo is no longer held.
            delete_staged_probes(session, [row.key_sha256])
            return None
        held = HeldProbe(row.filename, data)
        # Two nodes taking it at once: only the one whose delete removed the row has it.
        if delete_staged_probes(session, [row.key_sha256]) != 1:
            return None
        # Taken, its key seals nothing more unless a request or file uses it: a search
        # made of it next makes the probe's key again; an enrolment seals under the
        # subject's key, and no probe key is left behind for `candor check` to find.
        _destroy_unused_probe_keys(workflow, session, {row.probe_sha256})
    return held


def drop_staged_probes(workflow: Workflow, token: str) -> int:
    """Drop every photo the session of `token` staged (it logged out); how many."""
    owner = token_sha256(token)
    with workflow.workspace.session() as session, session.begin():
        dropped = staged_probe_hashes(session, owner_sha256=owner)
        count = delete_staged_probes_of(session, owner)
        _destroy_unused_probe_keys(workflow, session, dropped)
        return count


def _destroy_unused_probe_keys(workflow: Workflow, session: Session, hashes: set[str]) -> None:
    """Shred the photos of staged rows just dropped: destroy each one's probe key unless
    another staged row, a request or a stored probe file still uses it."""
    if not hashes:
        return
    used = staged_probe_hashes(session, among=hashes) | held_probes(session, hashes)
    vault = workflow.workspace.vault
    for sha256 in sorted(hashes - used):
        if not vault.has_probe(sha256):
            workflow.workspace.keys.destroy_probe_key(session, sha256)
