"""The store reconciled with the audit log, for `candor audit verify`.

A verified log proves only itself: a role inserted straight into `user_roles`, or a
candidate row re-pointed to another person, leaves every entry and checkpoint intact.
Every action writes its rows and its entry in one transaction, so the rows must hold
what the log's entries imply. `reconcile_tables` replays the whole log (signed
checkpoints and the chain-only tail) and compares it with the rows of users, roles,
searches, approvals, candidates, verdicts, releases, gallery images and policies, read in
the same transaction as the entries; it is pure, and lists every difference by table,
row and column. It also says plainly which tables the log proves, which only in part
(rows written before entries carried what they need, columns the log does not hold),
and which it cannot prove at all.

`with_store_check` adds that to a `VerificationReport`: any difference fails it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from candor.audit import VerificationReport
from candor.store import BOOTSTRAP_CREATOR, RELEASE_LABEL, Base
from candor.store.reconciliation import (
    CANDIDATE_FIELDS,
    ReconciledRows,
    StoredCandidate,
    audit_entry_bodies,
    read_reconciled_rows,
)
from candor.workflow.context import Workflow

__all__ = [
    "Difference",
    "StoreCheckedReport",
    "StoreReconciliation",
    "TableCoverage",
    "log_only",
    "reconcile_tables",
    "with_store_check",
]

# A tampered store can differ in every row; the report names this many and counts the rest.
MAX_DIFFERENCES_LISTED = 100

# What each reconciled table is checked for; `reconcile_tables` moves a table to "partly"
# when some of its rows were written before the entries carried enough to check them.
_PROVED = {
    "users": "every row: id, username, name, unit, certificate, disabled, created by, "
    "password hash",
    "user_roles": "every row",
    "approvals": "every row: search, supervisor, decision, reason",
    "candidates": "every row: id, search, rank, subject, image, template, scores, threshold flag",
    "verdicts": "every row: candidate, examiner, verdict, rationale, whether it resolves",
    "releases": "every row: candidate, released by, reason, label",
    "lead_outcomes": "every row: lead (candidate), outcome, note, recorded by",
}
_PARTLY = {
    "search_requests": "presence, kind, requester and case number (each report reconciles the "
    "decision, status and purposes with the log as well)",
    "gallery_images": "presence, subject and source type (provenance, face box and quality "
    "are not in the log)",
    "policies": "which policies were put in force, the one in force, and that their text has "
    "the hash the log recorded (policies never put in force are not checked)",
}
_NOT_COVERED = {
    "subjects": "names and booking numbers are kept out of the log by design",
    "face_templates": "templates are biometric data, kept out of the log by design",
    "auth_sessions": "login sessions (logins and logouts are logged, the rows are not reconciled)",
    "admin_changes": "requests awaiting a second admin (what a confirmed one changes is "
    "reconciled in users, user_roles and policies)",
    "calibrations": "threshold calibrations",
    "report_cards": "accuracy report cards",
    "workspace_info": "the workspace's identity",
    "gallery_changes": "the index's feed of template changes, written by triggers",
}
# The log itself: verified above, by its hash chain and signed checkpoints.
_LOG_TABLES = ("audit_entries", "audit_checkpoints")


@dataclass(frozen=True)
class Difference:
    """One place where the store holds something other than what the log implies."""

    table: str
    row: str  # e.g. "id 7 (search 3, rank 1)" or "user_id 3, role 'admin'"
    column: str
    log: object  # what the log implies
    store: object  # what the store holds

    def sentence(self) -> str:
        """One line naming the table, the row and what differs."""
        return (
            f"{self.table} {self.row}, {self.column}: the log says {self.log!r}, "
            f"the store holds {self.store!r}"
        )


@dataclass(frozen=True)
class TableCoverage:
    """A table and what of it the log proves, or why it cannot."""

    table: str
    what: str


@dataclass(frozen=True)
class StoreReconciliation:
    """Which tables the log proves, and every difference found between them and the log."""

    made: bool
    why_not: str | None = None
    entries: int = 0
    proved: tuple[TableCoverage, ...] = ()
    partly: tuple[TableCoverage, ...] = ()
    not_covered: tuple[TableCoverage, ...] = ()
    difference_count: int = 0
    differences: tuple[Difference, ...] = ()  # the first MAX_DIFFERENCES_LISTED

    @property
    def ok(self) -> bool:
        """Made, and no difference found."""
        return self.made and self.difference_count == 0

    def lines(self) -> list[str]:
        """The section `audit verify` prints."""
        if not self.made:
            return [f"store tables:       not reconciled: {self.why_not}"]
        lines = [
            f"store tables:       reconciled with all {self.entries} entries",
            f"  proved by the log: {', '.join(t.table for t in self.proved) or 'none'}",
        ]
        lines += _listed("  checked partly:   ", self.partly)
        lines += _listed("  not covered:      ", self.not_covered)
        lines.append(f"  differences:      {self.difference_count or 'none'}")
        lines += [f"    {difference.sentence()}" for difference in self.differences]
        if self.difference_count > len(self.differences):
            lines.append(f"    ... and {self.difference_count - len(self.differences)} more")
        return lines


def _listed(label: str, tables: Sequence[TableCoverage]) -> list[str]:
    if not tables:
        return [f"{label} none"]
    pad = " " * len(label)
    return [
        f"{label if i == 0 else pad} {table.table}: {table.what}" for i, table in enumerate(tables)
    ]


@dataclass(frozen=True)
class StoreCheckedReport(VerificationReport):
    """A verification of the log, with the store's tables reconciled against it.

    `store` is None for an export, which holds the log only.
    """

    store: StoreReconciliation | None = None

    def summary(self) -> str:
        """The log's summary with the store's section before the verdict."""
        lines = super().summary().split("\n")
        verdict_at = next(
            (
                i
                for i, line in enumerate(lines)
                if line.startswith(("first bad entry", "problem:", "result:"))
            ),
            len(lines),
        )
        section = _LOG_ONLY_LINES if self.store is None else self.store.lines()
        return "\n".join([*lines[:verdict_at], *section, *lines[verdict_at:]])


_LOG_ONLY_LINES = [
    "store tables:       not seen: this proves the log only (an export holds no tables); "
    "`candor audit verify` in the workspace reconciles the tables with the log"
]


def _extended(report: VerificationReport, store: StoreReconciliation | None) -> StoreCheckedReport:
    known = {f.name for f in fields(StoreCheckedReport)} - {"store"}
    values = {f.name: getattr(report, f.name) for f in fields(report) if f.name in known}
    return StoreCheckedReport(**values, store=store)


def log_only(report: VerificationReport) -> StoreCheckedReport:
    """An export's verification, saying that it proves the log and no table."""
    return _extended(report, None)


def with_store_check(workflow: Workflow, report: VerificationReport) -> StoreCheckedReport:
    """`report` with the store reconciled against the log; a difference fails it.

    The entries and rows are read in one transaction of their own, so both describe the
    same moment even while other actions commit. A log that does not verify is no basis
    for reconciliation and is left as it is.
    """
    if not report.ok:
        return _extended(
            report, StoreReconciliation(made=False, why_not="the log itself does not verify")
        )
    # Reads only: an autobegun session, one snapshot, no write lock (begin() takes it).
    with workflow.workspace.session() as session:
        entries = audit_entry_bodies(session)
        rows = read_reconciled_rows(session)
    store = reconcile_tables(entries, rows)
    checked = _extended(report, store)
    if store.ok:
        return checked
    count = store.difference_count
    return replace(
        checked,
        ok=False,
        problem=(
            f"the store disagrees with the audit log in {count} "
            f"{'place' if count == 1 else 'places'}; first: {store.differences[0].sentence()}"
        ),
    )


# -- the log replayed ---------------------------------------------------------------------


@dataclass
class _User:
    username: str
    display_name: str
    unit: str
    certificate_ref: str
    certificate_expires: str
    created_by: str
    roles: set[str]
    disabled: bool = False
    password_digest: str | None = None  # None: set before entries recorded it
    password_seq: int = 0


@dataclass
class _Run:
    seq: int
    count: int
    rows: list[list[Any]] | None  # None: run before entries listed their candidate rows


@dataclass
class _Review:
    seq: int
    search_id: int
    rank: int
    actor: str
    text: str  # the verdict's rationale, the release's reason or the outcome's note
    verdict: str = ""  # or the lead's outcome
    resolves: bool = False


@dataclass
class _Log:
    users: dict[int, _User] = field(default_factory=dict)
    searches: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    purged: set[int] = field(default_factory=set)
    approvals: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    runs: dict[int, _Run] = field(default_factory=dict)
    verdicts: dict[tuple[int, str], _Review] = field(default_factory=dict)
    releases: dict[int, _Review] = field(default_factory=dict)
    outcomes: dict[int, tuple[int, _Review]] = field(default_factory=dict)  # id: candidate, ..
    images: dict[int, tuple[int, str]] = field(default_factory=dict)
    image_subjects: dict[int, int] = field(default_factory=dict)  # removed ones too
    policies: list[str] = field(default_factory=list)  # put in force, in order
    problems: list[Difference] = field(default_factory=list)


_Handler = Callable[[_Log, dict[str, Any]], None]


def _created(log: _Log, entry: dict[str, Any]) -> None:
    details = entry["details"]
    bootstrap = entry["action"] == "user.bootstrap"
    log.users[entry["objects"]["user"]] = _User(
        username=details["username"],
        display_name=details["display_name"],
        unit=details["unit"],
        certificate_ref=details["certificate_ref"],
        certificate_expires=details["certificate_expires"],
        created_by=BOOTSTRAP_CREATOR if bootstrap else entry["actor"],
        roles=set(details["roles"]),
        password_digest=details.get("password_sha256"),
        password_seq=entry["seq"],
    )


def _user(log: _Log, entry: dict[str, Any]) -> _User:
    user_id = entry["objects"]["user"]
    user = log.users.get(user_id)
    if user is None:
        raise KeyError(f"user {user_id}, whom no earlier entry created")
    return user


def _roles_changed(log: _Log, entry: dict[str, Any]) -> None:
    user = _user(log, entry)
    user.roles = set(entry["details"]["roles"])
    if entry["action"] == "user.enabled":
        user.disabled = False


def _disabled(log: _Log, entry: dict[str, Any]) -> None:
    _user(log, entry).disabled = True


def _certificate(log: _Log, entry: dict[str, Any]) -> None:
    user = _user(log, entry)
    user.certificate_ref = entry["details"]["certificate_ref"]
    user.certificate_expires = entry["details"]["certificate_expires"]


def _password(log: _Log, entry: dict[str, Any]) -> None:
    digest = entry["details"].get("password_sha256")
    if entry["action"] == "auth.login" and digest is None:
        return  # a login that kept the stored hash
    user = _user(log, entry)
    user.password_digest, user.password_seq = digest, entry["seq"]


def _requested(log: _Log, entry: dict[str, Any]) -> None:
    objects = entry["objects"]
    kind = entry["action"].split(".", 1)[0]
    log.searches[objects["search"]] = (kind, entry["actor"], str(objects.get("case", "")))


def _approval(log: _Log, entry: dict[str, Any]) -> None:
    decision = entry["action"].split(".", 1)[1]
    log.approvals[entry["objects"]["search"]] = (
        entry["actor"],
        decision,
        entry["details"]["reason"],
    )


def _run(log: _Log, entry: dict[str, Any]) -> None:
    details = entry["details"]
    count = details.get("candidates", 0)
    rows = details.get("candidate_rows")
    log.runs[entry["objects"]["search"]] = _Run(
        seq=entry["seq"],
        count=count if isinstance(count, int) else 0,
        rows=None if rows is None else list(rows),
    )


def _verdict(log: _Log, entry: dict[str, Any]) -> None:
    objects, details = entry["objects"], entry["details"]
    log.verdicts[(objects["candidate"], entry["actor"])] = _Review(
        seq=entry["seq"],
        search_id=objects["search"],
        rank=details["rank"],
        actor=entry["actor"],
        text=details["rationale"],
        verdict=details["verdict"],
        resolves=bool(details.get("resolves", False)),  # absent: a blind verdict
    )


def _released(log: _Log, entry: dict[str, Any]) -> None:
    objects, details = entry["objects"], entry["details"]
    log.releases[objects["candidate"]] = _Review(
        seq=entry["seq"],
        search_id=objects["search"],
        rank=details["rank"],
        actor=entry["actor"],
        text=details["reason"],
    )


def _outcome(log: _Log, entry: dict[str, Any]) -> None:
    objects, details = entry["objects"], entry["details"]
    log.outcomes[objects["lead_outcome"]] = (
        objects["candidate"],
        _Review(
            seq=entry["seq"],
            search_id=objects["search"],
            rank=details["rank"],
            actor=entry["actor"],
            text=details["note"],
            verdict=details["outcome"],
        ),
    )


def _records_purged(log: _Log, entry: dict[str, Any]) -> None:
    log.purged.update(entry["details"]["searches"])


def _enrolled(log: _Log, entry: dict[str, Any]) -> None:
    objects = entry["objects"]
    _image_added(log, objects["image"], objects["subject"], entry["details"]["source_type"])


def _synthetic_loaded(log: _Log, entry: dict[str, Any]) -> None:
    details = entry["details"]
    for image_id, subject_id in zip(details["image_ids"], details["image_subjects"], strict=True):
        _image_added(log, image_id, subject_id, details["source_type"])


def _image_added(log: _Log, image_id: int, subject_id: int, source_type: str) -> None:
    log.images[image_id] = (subject_id, source_type)
    log.image_subjects[image_id] = subject_id


def _images_removed(log: _Log, entry: dict[str, Any]) -> None:
    for image_id in entry["details"]["images"]:
        log.images.pop(image_id, None)


def _policy_changed(log: _Log, entry: dict[str, Any]) -> None:
    log.policies.append(entry["details"]["sha256"])


_HANDLERS: dict[str, _Handler] = {
    "user.bootstrap": _created,
    "user.created": _created,
    "directory.account_created": _created,
    "user.role_granted": _roles_changed,
    "user.role_revoked": _roles_changed,
    "directory.roles_changed": _roles_changed,
    "user.enabled": _roles_changed,
    "user.disabled": _disabled,
    "user.certificate_updated": _certificate,
    "user.password_changed": _password,
    "user.password_reset": _password,
    "auth.login": _password,
    "search.requested": _requested,
    "verify.requested": _requested,
    "search.approved": _approval,
    "search.rejected": _approval,
    "search.run": _run,
    "verify.run": _run,
    "candidate.verdict": _verdict,
    "lead.released": _released,
    "lead.outcome_recorded": _outcome,
    "retention.search_records_purged": _records_purged,
    "gallery.enrolled": _enrolled,
    "gallery.synthetic_loaded": _synthetic_loaded,
    "gallery.expunged": _images_removed,
    "retention.gallery_purged": _images_removed,
    "policy.changed": _policy_changed,
}
_ACTION_START = len(b'{"action":"')


def _replay(entries: Iterable[bytes]) -> _Log:
    log = _Log()
    for raw in entries:
        # Canonical JSON puts "action" first: entries no table depends on are not parsed.
        action = raw[_ACTION_START : raw.find(b'"', _ACTION_START)].decode()
        handler = _HANDLERS.get(action)
        if handler is None:
            continue
        entry = json.loads(raw)
        try:
            handler(log, entry)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            log.problems.append(
                Difference(
                    "audit_entries",
                    f"seq {entry.get('seq')}",
                    action,
                    f"what a {action} entry holds",
                    f"an entry lacking it ({error})",
                )
            )
    return log


# -- the comparison -----------------------------------------------------------------------


def reconcile_tables(entries: Sequence[bytes], rows: ReconciledRows) -> StoreReconciliation:
    """Compare the rows with what the log's entries (canonical bytes, in order) imply."""
    log = _replay(entries)
    usernames = {user.id: user.username for user in rows.users}

    def name(user_id: int) -> str:
        return usernames.get(user_id, f"user id {user_id}")

    differences: list[Difference] = list(log.problems)
    partly: dict[str, str] = dict(_PARTLY)
    differences += _users(log, rows, partly)
    differences += _searches(log, rows, name)
    differences += _approvals(log, rows, name)
    differences += _candidates(log, rows, partly)
    differences += _reviews(log, rows, name)
    differences += _images(log, rows)
    differences += _policies(log, rows)
    return StoreReconciliation(
        made=True,
        entries=len(entries),
        proved=tuple(
            TableCoverage(table, what) for table, what in _PROVED.items() if table not in partly
        ),
        partly=tuple(TableCoverage(table, what) for table, what in partly.items()),
        not_covered=_not_covered(),
        difference_count=len(differences),
        differences=tuple(differences[:MAX_DIFFERENCES_LISTED]),
    )


def _not_covered() -> tuple[TableCoverage, ...]:
    checked = {*_PROVED, *_PARTLY, *_LOG_TABLES}
    return tuple(
        TableCoverage(table, _NOT_COVERED.get(table, "not reconciled with the log"))
        for table in sorted(Base.metadata.tables)
        if table not in checked
    )


def _paired(expected: dict[Any, Any], found: dict[Any, Any]) -> Iterable[tuple[Any, Any, Any]]:
    """(key, what the log implies or None, what the store holds or None), by key."""
    for key in sorted(expected.keys() | found.keys()):
        yield key, expected.get(key), found.get(key)


def _users(log: _Log, rows: ReconciledRows, partly: dict[str, str]) -> list[Difference]:
    differences = []
    stored = {user.id: user for user in rows.users}
    unproved_passwords = []
    for user_id, expected, found in _paired(log.users, stored):
        row = f"id {user_id}"
        if expected is None:
            differences.append(
                Difference("users", row, "presence", "no user created with this id", found.username)
            )
            continue
        if found is None:
            differences.append(Difference("users", row, "presence", expected.username, "no row"))
            continue
        row = f"id {user_id} ({expected.username})"
        for column, want, have in (
            ("username", expected.username, found.username),
            ("display_name", expected.display_name, found.display_name),
            ("unit", expected.unit, found.unit),
            ("certificate_ref", expected.certificate_ref, found.certificate_ref),
            ("certificate_expires", expected.certificate_expires, found.certificate_expires),
            ("disabled", expected.disabled, found.disabled),
            ("created_by", expected.created_by, found.created_by),
        ):
            if want != have:
                differences.append(Difference("users", row, column, want, have))
        if expected.password_digest is None:
            unproved_passwords.append(expected.username)
        elif expected.password_digest != found.password_digest:
            differences.append(
                Difference(
                    "users",
                    row,
                    "password_hash",
                    f"the hash set by entry {expected.password_seq}",
                    "another hash",
                )
            )
    if unproved_passwords:
        older = _some(unproved_passwords, "user", "users")
        partly["users"] = (
            f"{_PROVED['users']}; but the password hash of {older}, set before entries "
            "recorded its digest, is not checked"
        )
    wanted = {(user_id, role) for user_id, user in log.users.items() for role in user.roles}
    held = set(rows.roles)
    for user_id, role in sorted(held - wanted):
        user = log.users.get(user_id)
        differences.append(
            Difference(
                "user_roles",
                f"user_id {user_id}, role {role!r}",
                "presence",
                f"{user.username} holds {sorted(user.roles)}" if user else "no such user",
                "a row granting it",
            )
        )
    for user_id, role in sorted(wanted - held):
        differences.append(
            Difference(
                "user_roles",
                f"user_id {user_id}, role {role!r}",
                "presence",
                f"granted to {log.users[user_id].username}",
                "no row",
            )
        )
    return differences


def _some(names: Sequence[Any], one: str, many: str, limit: int = 5) -> str:
    """e.g. "7 users (admin1, admin2, ana, sam, eve and 2 more)"."""
    shown = ", ".join(str(n) for n in names[:limit])
    more = len(names) - limit
    noun = one if len(names) == 1 else many
    return f"{len(names)} {noun} ({shown}{f' and {more} more' if more > 0 else ''})"


def _searches(log: _Log, rows: ReconciledRows, name: Callable[[int], str]) -> list[Difference]:
    differences = []
    expected = {sid: s for sid, s in log.searches.items() if sid not in log.purged}
    stored = {search.id: search for search in rows.searches}
    for search_id, want, found in _paired(expected, stored):
        row = f"id {search_id}"
        if want is None:
            why = "purged by retention" if search_id in log.purged else "no such request"
            differences.append(Difference("search_requests", row, "presence", why, "a row"))
        elif found is None:
            differences.append(
                Difference("search_requests", row, "presence", f"a {want[0]} request", "no row")
            )
        else:
            for column, value, have in zip(
                ("kind", "requester", "case_number"),
                want,
                (found.kind, name(found.requester_id), found.case_number),
                strict=True,
            ):
                if value != have:
                    differences.append(Difference("search_requests", row, column, value, have))
    return differences


def _approvals(log: _Log, rows: ReconciledRows, name: Callable[[int], str]) -> list[Difference]:
    differences = []
    expected = {sid: a for sid, a in log.approvals.items() if sid not in log.purged}
    stored = {approval.search_id: approval for approval in rows.approvals}
    for search_id, want, found in _paired(expected, stored):
        if want is None:
            differences.append(
                Difference(
                    "approvals",
                    f"id {found.id} (search {search_id})",
                    "presence",
                    "no decision on this search",
                    found.decision,
                )
            )
        elif found is None:
            differences.append(
                Difference("approvals", f"search {search_id}", "presence", want[1], "no row")
            )
        else:
            row = f"id {found.id} (search {search_id})"
            for column, value, have in zip(
                ("supervisor", "decision", "reason"),
                want,
                (name(found.supervisor_id), found.decision, found.reason),
                strict=True,
            ):
                if value != have:
                    differences.append(Difference("approvals", row, column, value, have))
    return differences


def _candidates(log: _Log, rows: ReconciledRows, partly: dict[str, str]) -> list[Difference]:
    differences = []
    by_search: dict[int, dict[int, StoredCandidate]] = defaultdict(dict)
    for candidate in rows.candidates:
        by_search[candidate.search_id][candidate.rank] = candidate
    runs = {sid: run for sid, run in log.runs.items() if sid not in log.purged}
    unlisted = []
    for search_id in sorted(runs.keys() | by_search.keys()):
        held = by_search.get(search_id, {})
        run = runs.get(search_id)
        if run is None:
            why = "purged by retention" if search_id in log.purged else "the search never ran"
            differences += [
                Difference("candidates", _candidate_row(c), "presence", why, "a row")
                for c in held.values()
            ]
        elif run.rows is not None:
            differences += _listed_candidates(search_id, run, held)
        else:
            if run.count:
                unlisted.append(search_id)
            differences += _unlisted_candidates(log, search_id, run, held)
    if unlisted:
        older = _some(unlisted, "search", "searches")
        partly["candidates"] = (
            f"the candidates of {older}, run before entries listed candidate rows, are "
            "checked only for their number, the ranks reviewed and each image's subject; "
            "every later row fully"
        )
    return differences


def _candidate_row(candidate: StoredCandidate) -> str:
    return f"id {candidate.id} (search {candidate.search_id}, rank {candidate.rank})"


def _listed_candidates(
    search_id: int, run: _Run, held: dict[int, StoredCandidate]
) -> list[Difference]:
    differences = []
    rank_at = CANDIDATE_FIELDS.index("rank")
    listed = {record[rank_at]: record for record in run.rows or []}
    for rank in sorted(listed.keys() | held.keys()):
        record, candidate = listed.get(rank), held.get(rank)
        if candidate is None:
            row = f"search {search_id}, rank {rank}"
            differences.append(
                Difference("candidates", row, "presence", f"listed by entry {run.seq}", "no row")
            )
        elif record is None:
            differences.append(
                Difference(
                    "candidates",
                    _candidate_row(candidate),
                    "presence",
                    f"not listed by entry {run.seq}",
                    "a row",
                )
            )
        else:
            for column, want, have in zip(
                CANDIDATE_FIELDS, record, candidate.record(), strict=True
            ):
                if want != have:
                    differences.append(
                        Difference("candidates", _candidate_row(candidate), column, want, have)
                    )
    return differences


def _unlisted_candidates(
    log: _Log, search_id: int, run: _Run, held: dict[int, StoredCandidate]
) -> list[Difference]:
    differences = []
    if len(held) != run.count:
        differences.append(
            Difference(
                "candidates",
                f"search {search_id}",
                "number of rows",
                f"{run.count} (entry {run.seq})",
                len(held),
            )
        )
    for candidate in held.values():
        enrolled_under = log.image_subjects.get(candidate.image_id)
        if enrolled_under is not None and enrolled_under != candidate.subject_id:
            differences.append(
                Difference(
                    "candidates",
                    _candidate_row(candidate),
                    "subject_id",
                    f"{enrolled_under} (image {candidate.image_id} was enrolled under it)",
                    candidate.subject_id,
                )
            )
    return differences


def _reviews(log: _Log, rows: ReconciledRows, name: Callable[[int], str]) -> list[Difference]:
    """Verdicts and releases, and the candidate (search, rank) each entry names."""
    differences = []
    placed = {c.id: (c.search_id, c.rank) for c in rows.candidates}
    verdicts = {
        key: review for key, review in log.verdicts.items() if review.search_id not in log.purged
    }
    held_verdicts = {(v.candidate_id, name(v.examiner_id)): v for v in rows.verdicts}
    for key, want, found in _paired(verdicts, held_verdicts):
        candidate_id, examiner = key
        if want is None:
            differences.append(
                Difference(
                    "verdicts",
                    f"id {found.id} (candidate {candidate_id}, {examiner})",
                    "presence",
                    "no such verdict",
                    found.verdict,
                )
            )
            continue
        if found is None:
            differences.append(
                Difference(
                    "verdicts",
                    f"candidate {candidate_id}, examiner {examiner}",
                    "presence",
                    f"{want.verdict} (entry {want.seq})",
                    "no row",
                )
            )
            continue
        row = f"id {found.id} (candidate {candidate_id}, {examiner})"
        for column, value, have in (
            ("verdict", want.verdict, found.verdict),
            ("rationale", want.text, found.rationale),
            ("resolves", want.resolves, found.resolves),
        ):
            if value != have:
                differences.append(Difference("verdicts", row, column, value, have))
        differences += _placement(candidate_id, want, placed)
    releases = {cid: r for cid, r in log.releases.items() if r.search_id not in log.purged}
    held_releases = {r.candidate_id: r for r in rows.releases}
    for candidate_id, want, found in _paired(releases, held_releases):
        if want is None:
            differences.append(
                Difference(
                    "releases",
                    f"id {found.id} (candidate {candidate_id})",
                    "presence",
                    "not released",
                    f"released by {name(found.released_by)}",
                )
            )
            continue
        if found is None:
            differences.append(
                Difference(
                    "releases",
                    f"candidate {candidate_id}",
                    "presence",
                    f"released by {want.actor} (entry {want.seq})",
                    "no row",
                )
            )
            continue
        row = f"id {found.id} (candidate {candidate_id})"
        for column, value, have in (
            ("released_by", want.actor, name(found.released_by)),
            ("reason", want.text, found.reason),
            ("label", RELEASE_LABEL, found.label),
        ):
            if value != have:
                differences.append(Difference("releases", row, column, value, have))
        differences += _placement(candidate_id, want, placed)
    return differences + _outcomes(log, rows, name, placed)


def _outcomes(
    log: _Log,
    rows: ReconciledRows,
    name: Callable[[int], str],
    placed: dict[int, tuple[int, int]],
) -> list[Difference]:
    """Lead outcomes: each row as its `lead.outcome_recorded` entry says, of that lead."""
    differences = []
    candidate_of = {r.id: r.candidate_id for r in rows.releases}
    outcomes = {
        oid: recorded
        for oid, recorded in log.outcomes.items()
        if recorded[1].search_id not in log.purged
    }
    held = {o.id: o for o in rows.outcomes}
    for outcome_id, want, found in _paired(outcomes, held):
        row = f"id {outcome_id}"
        if want is None:
            differences.append(
                Difference("lead_outcomes", row, "presence", "no outcome recorded", found.outcome)
            )
            continue
        candidate_id, review = want
        if found is None:
            differences.append(
                Difference(
                    "lead_outcomes",
                    row,
                    "presence",
                    f"{review.verdict} (entry {review.seq})",
                    "no row",
                )
            )
            continue
        for column, value, have in (
            ("lead (candidate)", candidate_id, candidate_of.get(found.release_id)),
            ("outcome", review.verdict, found.outcome),
            ("note", review.text, found.note),
            ("recorded_by", review.actor, name(found.recorded_by)),
        ):
            if value != have:
                differences.append(Difference("lead_outcomes", row, column, value, have))
        differences += _placement(candidate_id, review, placed)
    return differences


def _placement(
    candidate_id: int, review: _Review, placed: dict[int, tuple[int, int]]
) -> list[Difference]:
    found = placed.get(candidate_id)
    want = (review.search_id, review.rank)
    if found is None or found == want:
        return []  # a missing candidate fails its own check, and takes its reviews with it
    return [
        Difference(
            "candidates",
            f"id {candidate_id}",
            "search and rank",
            f"search {want[0]}, rank {want[1]} (reviewed in entry {review.seq})",
            f"search {found[0]}, rank {found[1]}",
        )
    ]


def _images(log: _Log, rows: ReconciledRows) -> list[Difference]:
    differences = []
    stored = {image.id: (image.subject_id, image.source_type) for image in rows.images}
    for image_id, want, found in _paired(log.images, stored):
        row = f"id {image_id}"
        if want is None:
            why = "removed" if image_id in log.image_subjects else "never enrolled"
            differences.append(Difference("gallery_images", row, "presence", why, "a row"))
        elif found is None:
            differences.append(Difference("gallery_images", row, "presence", "enrolled", "no row"))
        else:
            for column, value, have in zip(("subject_id", "source_type"), want, found, strict=True):
                if value != have:
                    differences.append(Difference("gallery_images", row, column, value, have))
    return differences


def _policies(log: _Log, rows: ReconciledRows) -> list[Difference]:
    differences = []
    activated = [policy for policy in rows.policies if policy.activated_at is not None]
    put_in_force = set(log.policies)
    for policy in activated:
        row = f"id {policy.id} ({policy.sha256[:12]})"
        if policy.sha256 not in put_in_force:
            differences.append(
                Difference(
                    "policies",
                    row,
                    "activated_at",
                    "never put in force",
                    policy.activated_at.isoformat() if policy.activated_at else None,
                )
            )
        if policy.text_sha256 != policy.sha256:
            differences.append(
                Difference(
                    "policies",
                    row,
                    "source",
                    f"text hashing to {policy.sha256}",
                    f"text hashing to {policy.text_sha256}",
                )
            )
    activated_hashes = {policy.sha256 for policy in activated}
    for sha256 in sorted(put_in_force - activated_hashes):
        differences.append(
            Difference("policies", f"sha256 {sha256[:12]}", "activated_at", "put in force", None)
        )
    if log.policies and activated:
        latest = max(activated, key=lambda policy: (policy.activated_at, policy.id))
        if latest.sha256 != log.policies[-1]:
            differences.append(
                Difference(
                    "policies",
                    f"id {latest.id}",
                    "in force",
                    log.policies[-1][:12],
                    latest.sha256[:12],
                )
            )
    return differences
