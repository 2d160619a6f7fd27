"""The audit log replayed: what happened to each search and each gallery image.

The log is the source of truth for every figure in a report. One pass over the entries
builds a `SearchTrail` per search (request, decision, approval, run, views, verdicts,
releases, purge) and an `ImageTrail` per gallery image (enrolled, expunged or purged),
each event with its sequence number, so a report can count "as of" any checkpoint while
reconciliation compares the store with the whole log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from candor.reports.errors import ReportError


def entry_time(text: str) -> datetime:
    """An entry's `time` field (RFC 3339 UTC with 'Z') as an aware datetime."""
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


@dataclass(slots=True)
class VerdictEvent:
    """One examiner's verdict on one candidate."""

    seq: int
    candidate_id: int
    examiner: str
    verdict: str
    time: datetime | None = None
    # A senior's verdict settling a disagreement (details.resolves), not a blind one.
    resolves: bool = False


@dataclass(slots=True)
class SearchTrail:
    """Everything the log says about one search or verify request."""

    search_id: int
    kind: str
    requester: str
    case_number: str
    seq: int
    time: datetime
    offence_category: str
    purpose: str
    requesting_agency: str
    requesting_unit: str
    decided_seq: int | None = None
    outcome: str | None = None
    reasons: tuple[str, ...] = ()
    policy_sha256: str | None = None
    earlier_search_id: int | None = None
    approval: str | None = None
    approval_seq: int | None = None
    approver: str | None = None
    approval_reason: str | None = None
    approval_time: datetime | None = None
    run_seq: int | None = None
    run_time: datetime | None = None
    candidates: int = 0
    viewed_seqs: list[int] = field(default_factory=list)
    verdicts: list[VerdictEvent] = field(default_factory=list)
    releases: list[tuple[int, int]] = field(default_factory=list)  # (seq, candidate id)
    release_times: list[datetime] = field(default_factory=list)  # in the order of releases
    # (seq, candidate id, outcome) of each lead outcome its requester recorded, in order
    lead_outcomes: list[tuple[int, int, str]] = field(default_factory=list)
    probe_purged_seq: int | None = None
    record_purged_seq: int | None = None


@dataclass(slots=True)
class ImageTrail:
    """A gallery image from its enrolment to its removal, if any."""

    image_id: int
    subject_id: int
    source_type: str
    enrolled_seq: int
    enrolled_time: datetime
    removed_seq: int | None = None
    removed_time: datetime | None = None
    removed_by: str | None = None  # "expunged" or "retention"


@dataclass(slots=True)
class Removal:
    """An expungement or a retention purge, as counted in the transparency report."""

    seq: int
    time: datetime
    action: str
    count: int


@dataclass
class Ledger:
    """The replayed log."""

    entries: int = 0
    searches: dict[int, SearchTrail] = field(default_factory=dict)
    images: dict[int, ImageTrail] = field(default_factory=dict)
    removals: list[Removal] = field(default_factory=list)
    actors: set[str] = field(default_factory=set)
    # username -> (seq, expiry date) of each training certificate the log recorded for
    # them, in log order: what the log says a user's certificate was at any moment.
    certificates: dict[str, list[tuple[int, date]]] = field(default_factory=dict)


_ACTION_START = len(b'{"action":"')


def replay(entries: list[bytes]) -> Ledger:
    """Replay verified entries (their canonical bytes, in order) into a Ledger.

    `actors` collects the actors of the entries replayed (those about searches and the
    gallery), for reconciliation with the users table.
    Raises ReportError when an entry refers to a search or image the log never
    introduced: a log that verifies yet contradicts itself is no basis for a report.
    """
    ledger = Ledger(entries=len(entries))
    searches = ledger.searches
    loads = json.loads
    for raw in entries:
        # Verified entries are canonical JSON, whose first member is "action": reading
        # it from the bytes spares parsing the entries no report counts.
        action = raw[_ACTION_START : raw.find(b'"', _ACTION_START)].decode()
        handler = _HANDLERS.get(action)
        if handler is None:
            continue
        entry = loads(raw)
        actor = entry["actor"]
        if actor is not None:
            ledger.actors.add(actor)
        try:
            handler(ledger, searches, entry)
        except (KeyError, TypeError, AttributeError) as error:
            raise ReportError(
                f"audit entry {entry['seq']} ({action}) lacks what a {action} entry holds: "
                f"{error!r}"
            ) from None
    return ledger


def _search(searches: dict[int, SearchTrail], entry: dict[str, Any]) -> SearchTrail:
    search_id = entry["objects"].get("search")
    trail = searches.get(search_id) if isinstance(search_id, int) else None
    if trail is None:
        raise ReportError(
            f"audit entry {entry['seq']} ({entry['action']}) names search {search_id!r}, "
            "which no earlier entry requested"
        )
    return trail


def _requested(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    objects, details = entry["objects"], entry["details"]
    search_id = objects["search"]
    if search_id in searches:
        raise ReportError(f"audit entry {entry['seq']} requests search {search_id} a second time")
    searches[search_id] = SearchTrail(
        search_id=search_id,
        kind=entry["action"].split(".", 1)[0],
        requester=entry["actor"],
        case_number=str(objects.get("case", "")),
        seq=entry["seq"],
        time=entry_time(entry["time"]),
        offence_category=details["offence_category"],
        purpose=details["purpose"],
        requesting_agency=details["requesting_agency"],
        requesting_unit=details["requesting_unit"],
    )


def _decided(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    trail = _search(searches, entry)
    decision = entry["details"]["decision"]
    trail.decided_seq = entry["seq"]
    trail.outcome = decision["outcome"]
    trail.reasons = tuple(reason["code"] for reason in decision.get("reasons", ()))
    trail.policy_sha256 = decision.get("policy_sha256")
    trail.earlier_search_id = decision.get("earlier_search_id")


def _approval(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    trail = _search(searches, entry)
    trail.approval = entry["action"].split(".", 1)[1]
    trail.approval_seq = entry["seq"]
    trail.approver = entry["actor"]
    reason = entry["details"].get("reason")
    trail.approval_reason = reason if isinstance(reason, str) else None
    trail.approval_time = entry_time(entry["time"])


def _run(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    trail = _search(searches, entry)
    trail.run_seq = entry["seq"]
    trail.run_time = entry_time(entry["time"])
    candidates = entry["details"].get("candidates", 0)
    trail.candidates = candidates if isinstance(candidates, int) else 0


def _viewed(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    _search(searches, entry).viewed_seqs.append(entry["seq"])


def _verdict(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    trail = _search(searches, entry)
    trail.verdicts.append(
        VerdictEvent(
            seq=entry["seq"],
            candidate_id=entry["objects"]["candidate"],
            examiner=entry["actor"],
            verdict=entry["details"]["verdict"],
            time=entry_time(entry["time"]),
            resolves=entry["details"].get("resolves") is True,
        )
    )


def _released(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    trail = _search(searches, entry)
    trail.releases.append((entry["seq"], entry["objects"]["candidate"]))
    trail.release_times.append(entry_time(entry["time"]))


def _outcome(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    _search(searches, entry).lead_outcomes.append(
        (entry["seq"], entry["objects"]["candidate"], entry["details"]["outcome"])
    )


def _certificate(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    """A user made (with a certificate) or a certificate updated: its expiry from now on."""
    details = entry["details"]
    expires = date.fromisoformat(details["certificate_expires"])
    ledger.certificates.setdefault(details["username"], []).append((entry["seq"], expires))


def certificate_expiry(ledger: Ledger, username: str, seq: int) -> date | None:
    """The expiry of `username`'s certificate as the log stood just before entry `seq`."""
    expiry = None
    for recorded, expires in ledger.certificates.get(username, ()):
        if recorded >= seq:
            break
        expiry = expires
    return expiry


def _purged_searches(
    ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any], *, whole: bool
) -> None:
    ids = entry["details"].get("searches", [])
    for search_id in ids:
        trail = searches.get(search_id)
        if trail is None:
            raise ReportError(
                f"audit entry {entry['seq']} purges search {search_id}, never requested"
            )
        if whole:
            trail.record_purged_seq = entry["seq"]
        else:
            trail.probe_purged_seq = entry["seq"]
    ledger.removals.append(
        Removal(entry["seq"], entry_time(entry["time"]), entry["action"], len(ids))
    )


def _probes_purged(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    _purged_searches(ledger, searches, entry, whole=False)


def _records_purged(
    ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]
) -> None:
    _purged_searches(ledger, searches, entry, whole=True)


def _enrolled(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    objects = entry["objects"]
    image_id = objects["image"]
    ledger.images[image_id] = ImageTrail(
        image_id=image_id,
        subject_id=objects["subject"],
        source_type=entry["details"]["source_type"],
        enrolled_seq=entry["seq"],
        enrolled_time=entry_time(entry["time"]),
    )


def _synthetic_loaded(
    ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]
) -> None:
    details = entry["details"]
    moment = entry_time(entry["time"])
    for image_id, subject_id in zip(details["image_ids"], details["image_subjects"], strict=True):
        ledger.images[image_id] = ImageTrail(
            image_id=image_id,
            subject_id=subject_id,
            source_type=details["source_type"],
            enrolled_seq=entry["seq"],
            enrolled_time=moment,
        )


def _images_removed(ledger: Ledger, entry: dict[str, Any], how: str) -> int:
    ids = entry["details"].get("images", [])
    moment = entry_time(entry["time"])
    for image_id in ids:
        image = ledger.images.get(image_id)
        if image is None:
            raise ReportError(
                f"audit entry {entry['seq']} removes gallery image {image_id}, never enrolled"
            )
        image.removed_seq, image.removed_time, image.removed_by = entry["seq"], moment, how
    return len(ids)


def _expunged(ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]) -> None:
    count = _images_removed(ledger, entry, "expunged")
    ledger.removals.append(Removal(entry["seq"], entry_time(entry["time"]), entry["action"], count))


def _gallery_purged(
    ledger: Ledger, searches: dict[int, SearchTrail], entry: dict[str, Any]
) -> None:
    count = _images_removed(ledger, entry, "retention")
    ledger.removals.append(Removal(entry["seq"], entry_time(entry["time"]), entry["action"], count))


_HANDLERS = {
    "search.requested": _requested,
    "verify.requested": _requested,
    "policy.decided": _decided,
    "search.approved": _approval,
    "search.rejected": _approval,
    "search.run": _run,
    "verify.run": _run,
    "candidates.viewed": _viewed,
    "candidate.verdict": _verdict,
    "lead.released": _released,
    "lead.outcome_recorded": _outcome,
    "retention.probes_purged": _probes_purged,
    "retention.search_records_purged": _records_purged,
    "gallery.enrolled": _enrolled,
    "gallery.synthetic_loaded": _synthetic_loaded,
    "gallery.expunged": _expunged,
    "retention.gallery_purged": _gallery_purged,
    "user.bootstrap": _certificate,
    "user.created": _certificate,
    "directory.account_created": _certificate,
    "user.certificate_updated": _certificate,
}
