"""The store checked against the audit log: the same searches, in the states the log implies.

Every action writes its entry in the same transaction as its rows, so the store and the
whole log (signed checkpoints and the chain-only tail after the last one) must tell the
same story. Retention purges are entries too: a search record the log says was purged
must be gone, and every other search the log knows must still be there.
"""

from __future__ import annotations

from candor.reports.errors import ReconciliationError
from candor.reports.ledger import Ledger, SearchTrail
from candor.reports.snapshot import StoredSearch, StoreSnapshot


def expected_status(trail: SearchTrail) -> str:
    """The search_requests.status the log's entries imply."""
    if trail.outcome == "deny":
        return "denied"
    if trail.run_seq is not None:
        return "completed"
    if trail.approval is not None:
        return trail.approval
    if trail.outcome == "needs_approval":
        return "pending_approval"
    return "approved"


def reconcile(ledger: Ledger, snapshot: StoreSnapshot) -> None:
    """Raise ReconciliationError at the first difference between the store and the log."""
    stored = snapshot.searches
    for search_id, trail in ledger.searches.items():
        subject = f"search {search_id}"
        row = stored.get(search_id)
        if trail.record_purged_seq is not None:
            if row is not None:
                raise ReconciliationError(
                    subject,
                    "presence",
                    f"purged by retention (entry {trail.record_purged_seq})",
                    "the record",
                )
            continue
        if row is None:
            raise ReconciliationError(subject, "presence", "the record", "no record")
        _compare_search(subject, trail, row)
        _compare_review(subject, trail, snapshot)
    for search_id in sorted(stored.keys() - ledger.searches.keys()):
        raise ReconciliationError(
            f"search {search_id}", "presence", "no such search in the log", "a record"
        )
    for username in sorted(ledger.actors - snapshot.units.keys()):
        raise ReconciliationError(f"user {username}", "presence", "a user", "no such user")
    _compare_gallery(ledger, snapshot)


def _compare_search(subject: str, trail: SearchTrail, row: StoredSearch) -> None:
    pairs: list[tuple[str, object, object]] = [
        ("kind", trail.kind, row.kind),
        ("requester", trail.requester, row.requester),
        ("case number", trail.case_number, row.case_number),
        ("offence category", trail.offence_category, row.offence_category),
        ("purpose", trail.purpose, row.purpose),
        ("requesting agency", trail.requesting_agency, row.requesting_agency),
        ("requesting unit", trail.requesting_unit, row.requesting_unit),
        ("decision outcome", trail.outcome, row.outcome),
        ("decision reasons", list(trail.reasons), list(row.reasons)),
        ("status", expected_status(trail), row.status),
        ("supervisor decision", trail.approval, row.approval),
        ("probe purged", trail.probe_purged_seq is not None, row.probe_purged),
    ]
    for name, expected, found in pairs:
        if expected != found:
            raise ReconciliationError(subject, name, expected, found)


def _compare_review(subject: str, trail: SearchTrail, snapshot: StoreSnapshot) -> None:
    search_id = trail.search_id
    found_candidates = snapshot.candidates.get(search_id, 0)
    if trail.candidates != found_candidates:
        raise ReconciliationError(
            subject, "number of candidates", trail.candidates, found_candidates
        )
    logged = {(v.candidate_id, v.examiner, v.verdict) for v in trail.verdicts}
    held = snapshot.verdicts.get(search_id, set())
    if len(trail.verdicts) != len(held) or logged != held:
        raise ReconciliationError(subject, "verdicts", sorted(logged), sorted(held))
    logged_outcomes = {candidate: outcome for _, candidate, outcome in trail.lead_outcomes}
    held_outcomes = {
        candidate: outcome
        for candidate, outcome in snapshot.lead_outcomes.items()
        if candidate in logged_outcomes or candidate in {c for _, c in trail.releases}
    }
    if logged_outcomes != held_outcomes:
        raise ReconciliationError(
            subject, "lead outcomes", sorted(logged_outcomes.items()), sorted(held_outcomes.items())
        )
    released = {candidate for _, candidate in trail.releases}
    held_releases = snapshot.releases.get(search_id, set())
    if len(trail.releases) != len(held_releases) or released != held_releases:
        raise ReconciliationError(
            subject, "released candidates", sorted(released), sorted(held_releases)
        )


def _compare_gallery(ledger: Ledger, snapshot: StoreSnapshot) -> None:
    held = {
        image_id: image.source_type
        for image_id, image in ledger.images.items()
        if image.removed_seq is None
    }
    for image_id in sorted(held.keys() | snapshot.images.keys()):
        expected = held.get(image_id)
        found = snapshot.images.get(image_id)
        if expected != found:
            raise ReconciliationError(
                f"gallery image {image_id}",
                "source type" if expected and found else "presence",
                expected or "removed, or never enrolled",
                found or "no image",
            )
