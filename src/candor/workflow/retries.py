"""A retried search request is one request: the caller's Idempotency-Key says which.

A client that sent a search and lost the answer (a timeout, a dropped connection) sends
it again with the same key. The key is stored with the request (unique per requester),
so the retry finds the first request and gets its outcome instead of making a second
search, a second audit trail and perhaps a repeat that needs a supervisor. A key reused
for a different request (another photo, case or purpose) is refused: it is a client's
mistake, and answering with the first request's outcome would mislead it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from candor.store.governance import SearchRequest
from candor.store.requests import request_by_idempotency_key
from candor.store.vault import sha256_hex
from candor.workflow.accounts import Actor
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.governed import RequestForm, RequestOutcome, outcome_of, request_search

# Long enough for a UUID or a ULID with a prefix; the column holds 100 characters.
IDEMPOTENCY_KEY_MAX = 100


class IdempotencyKeyReusedError(WorkflowError):
    """The key names an earlier request of this requester that differs from this one."""


@dataclass(frozen=True)
class SearchOnce:
    """A search request's outcome, and whether it is an earlier request's (a retry)."""

    outcome: RequestOutcome
    replayed: bool


def search_once(
    workflow: Workflow,
    actor: Actor,
    idempotency_key: str,
    probe_path: Path,
    form: RequestForm,
    *,
    top: int = 20,
    face_index: int | None = None,
    original_probe: Path | None = None,
) -> SearchOnce:
    """request_search, unless this requester already made this request with this key.

    The same key with the same request answers the earlier request's outcome as it
    stands now (nothing new is recorded); with a different request it is refused.
    """
    key = _checked_key(idempotency_key)
    probe_sha256 = sha256_hex(probe_path.read_bytes())
    original_sha256 = None if original_probe is None else sha256_hex(original_probe.read_bytes())
    checked = form.checked()

    def earlier() -> SearchOnce | None:
        with workflow.workspace.session() as session:
            row = request_by_idempotency_key(session, actor.user_id, key)
            if row is None:
                return None
            different = _differences(row, checked, probe_sha256, original_sha256, top, face_index)
            search_id = row.id
        if different:
            raise IdempotencyKeyReusedError(
                f"the Idempotency-Key {key!r} was used for request {search_id}, which had "
                f"another {', '.join(different)}; use a new key for a new request"
            )
        return SearchOnce(outcome_of(workflow, search_id), replayed=True)

    found = earlier()
    if found is not None:
        return found
    try:
        outcome = request_search(
            workflow,
            actor,
            probe_path,
            form,
            top=top,
            face_index=face_index,
            original_probe=original_probe,
            idempotency_key=key,
        )
    except IntegrityError:
        # The same retry, sent twice at once: the other one's request committed first.
        found = earlier()
        if found is None:
            raise
        return found
    return SearchOnce(outcome, replayed=False)


def _checked_key(key: str) -> str:
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise WorkflowError(
            f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )
    return key


def _differences(
    row: SearchRequest,
    form: RequestForm,
    probe_sha256: str,
    original_sha256: str | None,
    top: int,
    face_index: int | None,
) -> list[str]:
    """What of this request differs from the stored one (empty when it is the same)."""
    different = [
        name.replace("_", " ")
        for name in (
            "case_number",
            "offence_category",
            "purpose",
            "requesting_agency",
            "requesting_unit",
            "probe_kind",
            "authorisation_ref",
            "edits",
        )
        if getattr(row, name) != getattr(form, name)
    ]
    if row.kind != "search":
        different.append("kind (it was a verification)")
    # A refused probe is stored without its photo (its hash is all zeros): the photo of
    # such a request cannot be compared, and its other fields are.
    if row.probe_sha256 != "0" * 64 and row.probe_sha256 != probe_sha256:
        different.append("probe photo")
    if row.original_probe_sha256 != original_sha256:
        different.append("original probe photo")
    if row.requested_top != top:
        different.append("candidate list length (top)")
    if face_index is not None and row.face_index is not None and row.face_index != face_index:
        different.append("face_index")
    return different


__all__ = ["IDEMPOTENCY_KEY_MAX", "IdempotencyKeyReusedError", "SearchOnce", "search_once"]
