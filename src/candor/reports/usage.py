"""The usage report: who searched, for whom, for what, when, and what came of it.

Figures are counted from the audit log up to the latest signed checkpoint (see
`basis`); a search belongs to the period in which it was requested (its day, week and
hour in the workspace's time zone), and what became of it is counted as of the
checkpoint. The user's unit is the one the users table holds now: units are not in the
log.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from candor.reports.basis import AsOf, ReportBasis, establish_basis
from candor.reports.facts import OUTCOMES, SearchFacts, search_facts
from candor.reports.ledger import certificate_expiry
from candor.store import Workspace
from candor.store.governance import LEAD_OUTCOMES
from candor.store.review_state import candidate_unsettled, list_under_review

# Unusual hours: a request before 07:00 or from 20:00 local time, or on a Saturday or
# Sunday. Agencies with night shifts would change these constants.
WORKDAY_START = time(7, 0)
WORKDAY_END = time(20, 0)
WEEKEND_DAYS = frozenset({5, 6})
# Flags rank users by how far they stand from their peers: the Iglewicz–Hoaglin modified
# z-score, 0.6745 (x - median) / MAD, written as (x - median) / (1.4826 MAD); above 3.5
# is an outlier. The MAD is floored (at one request for counts, five percentage points
# for shares): where most people do the same, the MAD is 0 and any difference at all
# would score as infinite. A user is measured against the users of their own unit who
# made requests in the period when there are at least MIN_UNIT_PEERS of them, else
# against every requester of the period (units of three or four people have no
# meaningful median); with fewer than MIN_PEERS requesters nobody is scored. So a flag
# that fits everyone is no flag: a measure the whole unit shares scores 0.
MAD_SCALE = 1.4826
MAD_FLOOR = 1.0
SHARE_MAD_FLOOR = 0.05
RATIO_MAD_FLOOR = 0.25
ROBUST_THRESHOLD = 3.5
MIN_PEERS = 3
MIN_UNIT_PEERS = 5
MIN_UNIT_USERS = MIN_PEERS
# Searches on an expired certificate are flagged whatever the peers do: a rule broken,
# not a habit. The log shows it two ways: the policy denied a request for
# `no_certificate`, or a request was made or run on a local date after the certificate's
# expiry as the log's user entries (user.created, user.certificate_updated) recorded it.
NO_CERTIFICATE = "no_certificate"
# Candidate lists overdue for review: run more than the deciding policy's
# review.review_within_days (default 7) before the checkpoint and, as of the checkpoint,
# still under review as the review queue says (`candor.store.review_state`): candidates,
# no lead released, and fewer examiners than the policy's reviewers_to_release gave
# verdicts or a disagreement waits to be settled. A policy the report cannot read counts a
# list reviewed once any examiner gave a verdict.
REVIEW_DAYS = 7
UNKNOWN_POLICY_RULE = (1, False)


@dataclass(slots=True)
class Counts:
    """The measures of one row of the report."""

    requested: int = 0
    denied: int = 0
    needed_approval: int = 0
    approved: int = 0
    rejected: int = 0
    run: int = 0
    reviewed: int = 0
    leads_released: int = 0
    repeat_searches: int = 0
    outside_agency: int = 0
    quota_reached: int = 0

    def add(self, facts: SearchFacts) -> None:
        """Count one search."""
        self.requested += 1
        self.denied += facts.outcome == "deny"
        self.needed_approval += facts.outcome == "needs_approval"
        self.approved += facts.approval == "approved"
        self.rejected += facts.approval == "rejected"
        self.run += facts.run
        self.reviewed += facts.reviewed
        self.leads_released += facts.leads
        self.repeat_searches += facts.repeat
        self.outside_agency += facts.outside_agency
        self.quota_reached += facts.quota_reached

    def as_dict(self) -> dict[str, int]:
        """The measures by name, in column order."""
        return asdict(self)


MEASURES: tuple[str, ...] = tuple(f.name for f in fields(Counts))
MEASURE_LABELS: dict[str, str] = {
    "requested": "requested",
    "denied": "denied",
    "needed_approval": "needed approval",
    "approved": "approved",
    "rejected": "rejected",
    "run": "run",
    "reviewed": "reviewed",
    "leads_released": "leads released",
    "repeat_searches": "repeat searches",
    "outside_agency": "for outside agencies",
    "quota_reached": "quota reached",
}


@dataclass(frozen=True)
class Row:
    """One line of a breakdown: its key (a user, a unit, a week ...) and its counts."""

    key: str
    counts: Counts
    unit: str | None = None


@dataclass(frozen=True)
class Flag:
    """A user who stands out from their peers (or broke a rule), with the sentence why.

    value: the user's measure (a count, a share or a ratio); peer_median: the peers'
    median of it; score: the robust z-score that ranks the flag (None for a rule broken,
    which ranks first).
    """

    kind: str
    user: str
    unit: str
    count: int
    explanation: str
    search_ids: tuple[int, ...]
    score: float | None = None
    value: float | None = None
    peer_median: float | None = None
    peers: int = 0


FLAG_LABELS: dict[str, str] = {
    "expired_certificate": "searched on an expired certificate",
    "high_volume": "far more requests than peers",
    "repeats": "re-runs earlier searches",
    "denials": "often denied",
    "unusual_hours": "searches at unusual hours",
    "outside_agency": "serves outside agencies",
    "searches_per_case": "many searches per case",
}
_SCORED = (
    f"scored (value − peers' median) / ({MAD_SCALE} × MAD) and raised above "
    f"{ROBUST_THRESHOLD}; peers are the requesters of the user's unit in the period when "
    f"there are at least {MIN_UNIT_PEERS}, else every requester of the period (at least "
    f"{MIN_PEERS})"
)
FLAG_RULES: dict[str, str] = {
    "expired_certificate": (
        "Searched on an expired certificate: always flagged, first. A request the policy "
        "denied for want of a valid training certificate, or a request made or run on a "
        "local date after the expiry the audit log recorded for the user's certificate at "
        "that moment."
    ),
    "high_volume": f"Far more requests than peers: the number of requests, {_SCORED}; "
    f"the MAD floored at {MAD_FLOOR:g} request.",
    "repeats": f"Re-runs earlier searches: the share of requests whose probe matched an "
    f"earlier search (at least 2 such requests), {_SCORED}; the MAD floored at "
    f"{SHARE_MAD_FLOOR:.0%}.",
    "denials": f"Often denied: the share of requests the policy denied (at least 2), "
    f"{_SCORED}; the MAD floored at {SHARE_MAD_FLOOR:.0%}.",
    "unusual_hours": f"Unusual hours: the share of requests made before "
    f"{WORKDAY_START:%H:%M} or from {WORKDAY_END:%H:%M}, or on a Saturday or Sunday, in "
    f"the workspace's time zone (at least 3), {_SCORED}; the MAD floored at "
    f"{SHARE_MAD_FLOOR:.0%}.",
    "outside_agency": f"Serves outside agencies: the share of requests made for an agency "
    f"other than the policy's home agency (at least 2), {_SCORED}; the MAD floored at "
    f"{SHARE_MAD_FLOOR:.0%}.",
    "searches_per_case": f"Many searches per case: requests per distinct case number (at "
    f"least 2 more requests than cases), {_SCORED}; the MAD floored at "
    f"{RATIO_MAD_FLOOR:g}.",
}


@dataclass(frozen=True)
class UsageQuery:
    """The period (inclusive local dates) and optional filters of a usage report."""

    date_from: date
    date_to: date
    unit: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if self.date_to < self.date_from:
            raise ValueError(
                f"the period ends ({self.date_to}) before it starts ({self.date_from})"
            )

    def previous(self) -> UsageQuery:
        """The period of equal length that ends the day before this one starts."""
        length = self.date_to - self.date_from
        last = self.date_from - timedelta(days=1)
        return UsageQuery(last - length, last, self.unit, self.user)

    def period(self) -> dict[str, str]:
        """The period and filters as plain text, e.g. for an audit entry."""
        period = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()}
        if self.unit is not None:
            period["unit"] = self.unit
        if self.user is not None:
            period["user"] = self.user
        return period


@dataclass(frozen=True)
class CaseUse:
    """The test of sparing use for one user: how many cases, how many searches each."""

    user: str
    unit: str
    requests: int
    cases: int
    searches_per_case: float
    busiest_case: str
    busiest_case_requests: int


@dataclass(frozen=True)
class RepeatRow:
    """A request whose probe matched an earlier search, and who decided it and why."""

    search_id: int
    requester: str
    case_number: str
    earlier_search_id: int
    decision: str  # approved, rejected, awaiting approval, denied by the policy
    approver: str | None
    reason: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class Agreement:
    """Examiners' verdicts compared, two at a time, on the same candidate."""

    candidates: int  # candidates with verdicts from two or more examiners
    pairs: int
    agreed: int
    disagreed: int
    rate: float | None  # agreed / pairs; None when no candidate had two verdicts
    disagreements: tuple[int, ...]  # the searches with a disagreement


@dataclass(frozen=True)
class Timing:
    """How long one step of review took after the search ran, in hours."""

    name: str
    label: str
    count: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class Overdue:
    """A candidate list that waited for review longer than its policy allows."""

    search_id: int
    requester: str
    case_number: str
    ran_at: datetime
    days_waiting: int
    limit_days: int


@dataclass(frozen=True)
class Change:
    """One figure of this period beside the previous period of equal length."""

    name: str
    label: str
    current: float | None
    previous: float | None
    change: float | None


@dataclass(frozen=True)
class UsageReport:
    """Everything the usage report shows, in every output format."""

    purpose: str
    timezone: str
    query: UsageQuery
    as_of: AsOf
    generated_at: datetime
    headline: str
    users: int
    totals: Counts
    by_user: tuple[Row, ...]
    by_user_unit: tuple[Row, ...]
    by_requesting_unit: tuple[Row, ...]
    by_agency: tuple[Row, ...]
    by_offence: tuple[Row, ...]
    by_purpose: tuple[Row, ...]
    by_kind: tuple[Row, ...]
    by_week: tuple[Row, ...]
    denial_reasons: tuple[tuple[str, int], ...]
    outcomes: tuple[tuple[str, int], ...]
    weekly_by_user: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    flags: tuple[Flag, ...]
    flag_rules: tuple[tuple[str, str], ...]
    # The board's questions, each answered for the period (see docs/reports.md).
    cases_by_user: tuple[CaseUse, ...] = ()
    distinct_cases: int = 0
    searches_per_case: float | None = None
    repeats: tuple[RepeatRow, ...] = ()
    denials_by_user: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    agreement: Agreement | None = None
    review_times: tuple[Timing, ...] = ()
    lead_outcomes: tuple[tuple[str, int], ...] = ()
    overdue: tuple[Overdue, ...] = ()
    previous_period: tuple[date, date] | None = None
    comparison: tuple[Change, ...] = ()

    @property
    def checkpoint_size(self) -> int:
        """The size of the signed checkpoint the figures are counted up to."""
        return self.as_of.checkpoint_size

    def breakdowns(self) -> tuple[tuple[str, str, tuple[Row, ...]], ...]:
        """(name, title, rows) of every breakdown, in the order reports show them."""
        return (
            ("user", "By user", self.by_user),
            ("user_unit", "By the user's unit", self.by_user_unit),
            ("requesting_unit", "By requesting unit", self.by_requesting_unit),
            ("requesting_agency", "By requesting agency", self.by_agency),
            ("offence_category", "By offence category", self.by_offence),
            ("purpose", "By purpose", self.by_purpose),
            ("kind", "By kind (1:N search or 1:1 verification)", self.by_kind),
            ("week", "By week (ISO weeks, Monday first)", self.by_week),
        )


def usage_report(
    workspace: Workspace, verifier_key: str, query: UsageQuery, *, now: datetime | None = None
) -> UsageReport:
    """Verify the log, reconcile the store, and count the usage report for `query`.

    Raises a ReportError subclass when the log does not verify, has no checkpoint, or
    disagrees with the store.
    """
    return compute_usage(establish_basis(workspace, verifier_key), query, now=now)


def week_label(day: date) -> str:
    """The ISO week of a date, e.g. 2019-W03."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


Period = list[tuple[SearchFacts, datetime]]


def _in_period(basis: ReportBasis, query: UsageQuery) -> Period:
    """Every search requested in the query's local dates, as of the checkpoint, by id."""
    snapshot, upto = basis.snapshot, basis.as_of.checkpoint_size
    zone = ZoneInfo(snapshot.timezone)
    period: Period = []
    for trail in basis.ledger.searches.values():
        if trail.seq > upto:
            continue
        local = trail.time.astimezone(zone)
        if query.date_from <= local.date() <= query.date_to:
            period.append((search_facts(trail, upto, snapshot.home_agencies), local))
    period.sort(key=lambda item: item[0].trail.search_id)
    return period


def _filtered(period: Period, query: UsageQuery, units: dict[str, str]) -> Period:
    return [
        (facts, local)
        for facts, local in period
        if (query.unit is None or units.get(facts.trail.requester) == query.unit)
        and (query.user is None or facts.trail.requester == query.user)
    ]


def compute_usage(
    basis: ReportBasis, query: UsageQuery, *, now: datetime | None = None
) -> UsageReport:
    """The usage report from an established basis."""
    snapshot, as_of = basis.snapshot, basis.as_of
    units = snapshot.units
    period = _in_period(basis, query)
    shown = _filtered(period, query, units)

    def unit_of(facts: SearchFacts) -> str:
        return units.get(facts.trail.requester, "(unknown unit)")

    totals = Counts()
    for facts, _ in shown:
        totals.add(facts)
    weeks = _weeks(query.date_from, query.date_to)
    by_week = _rows(shown, lambda f, local: week_label(local.date()), order=weeks)
    by_user = _rows(shown, lambda f, local: f.trail.requester)
    users = len(by_user)
    weekly: dict[str, Counter[str]] = {week: Counter() for week in weeks}
    for facts, local in shown:
        weekly[week_label(local.date())][facts.trail.requester] += 1
    reasons: Counter[str] = Counter()
    for facts, _ in shown:
        if facts.outcome == "deny":
            reasons.update(facts.reasons)
    outcomes = Counter(facts.final for facts, _ in shown)
    flags = _flags(basis, period, {f.trail.requester for f, _ in shown})
    figures = _Figures(basis, shown)
    previous_query = _previous(query)
    comparison: tuple[Change, ...] = ()
    if previous_query is not None:
        before = _Figures(basis, _filtered(_in_period(basis, previous_query), query, units))
        comparison = _compare(figures, before)
    return UsageReport(
        purpose=snapshot.purpose,
        timezone=snapshot.timezone,
        query=query,
        as_of=as_of,
        generated_at=now or datetime.now(UTC),
        headline=_headline(query, users, totals),
        users=users,
        totals=totals,
        by_user=tuple(
            Row(row.key, row.counts, units.get(row.key, "(unknown unit)")) for row in by_user
        ),
        by_user_unit=_rows(shown, lambda f, local: unit_of(f)),
        by_requesting_unit=_rows(shown, lambda f, local: f.trail.requesting_unit),
        by_agency=_rows(shown, lambda f, local: f.trail.requesting_agency),
        by_offence=_rows(shown, lambda f, local: f.trail.offence_category),
        by_purpose=_rows(shown, lambda f, local: f.trail.purpose),
        by_kind=_rows(shown, lambda f, local: f.trail.kind),
        by_week=by_week,
        denial_reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        outcomes=tuple((name, outcomes.get(name, 0)) for name in OUTCOMES),
        weekly_by_user=tuple((week, tuple(sorted(weekly[week].items()))) for week in weeks),
        flags=tuple(flags),
        flag_rules=tuple(FLAG_RULES.items()),
        cases_by_user=figures.case_use(units),
        distinct_cases=figures.distinct_cases,
        searches_per_case=figures.searches_per_case,
        repeats=_repeats(shown),
        denials_by_user=_denials_by_user(shown),
        agreement=figures.agreement,
        review_times=figures.timings,
        lead_outcomes=figures.lead_outcomes,
        overdue=figures.overdue,
        previous_period=None
        if previous_query is None
        else (previous_query.date_from, previous_query.date_to),
        comparison=comparison,
    )


def _previous(query: UsageQuery) -> UsageQuery | None:
    try:
        return query.previous()
    except OverflowError:  # a period that starts in year 1 has no previous one
        return None


class _Figures:
    """The board's figures over one period's searches (this period's or the previous)."""

    def __init__(self, basis: ReportBasis, searches: Period) -> None:
        self.searches = searches
        self.counts = Counts()
        for facts, _ in searches:
            self.counts.add(facts)
        cases = {(f.trail.requester, f.trail.case_number) for f, _ in searches}
        self.distinct_cases = len({case for _, case in cases})
        self.searches_per_case = _ratio(len(searches), self.distinct_cases)
        upto = basis.as_of.checkpoint_size
        self.agreement = _agreement(searches, upto)
        self.timings = _timings(searches, upto)
        self.lead_outcomes = _lead_outcomes(searches, upto)
        self.overdue = _overdue(searches, basis)

    def case_use(self, units: dict[str, str]) -> tuple[CaseUse, ...]:
        rows = []
        for user, searches in sorted(_by_user(self.searches).items()):
            per_case = Counter(facts.trail.case_number for facts, _ in searches)
            busiest, most = min(per_case.items(), key=lambda kv: (-kv[1], kv[0]))
            rows.append(
                CaseUse(
                    user=user,
                    unit=units.get(user, "(unknown unit)"),
                    requests=len(searches),
                    cases=len(per_case),
                    searches_per_case=round(len(searches) / len(per_case), 2),
                    busiest_case=busiest,
                    busiest_case_requests=most,
                )
            )
        return tuple(sorted(rows, key=lambda row: (-row.searches_per_case, row.user)))

    def values(self) -> dict[str, float | None]:
        counts = self.counts
        timing = {t.name: t.median_hours for t in self.timings}
        return {
            "requested": counts.requested,
            "users": len(_by_user(self.searches)),
            "denied": counts.denied,
            "run": counts.run,
            "reviewed": counts.reviewed,
            "leads_released": counts.leads_released,
            "repeat_searches": counts.repeat_searches,
            "outside_agency": counts.outside_agency,
            "distinct_cases": self.distinct_cases,
            "searches_per_case": self.searches_per_case,
            "agreement_rate": None if self.agreement.rate is None else self.agreement.rate,
            "hours_to_first_verdict": timing.get("first_verdict"),
            "hours_to_release": timing.get("release"),
            "overdue": len(self.overdue),
        }


COMPARED: dict[str, str] = {
    "requested": "requests",
    "users": "users who made requests",
    "denied": "denied by the policy",
    "run": "run",
    "reviewed": "reviewed",
    "leads_released": "leads released",
    "repeat_searches": "repeat searches",
    "outside_agency": "for outside agencies",
    "distinct_cases": "distinct cases",
    "searches_per_case": "searches per case",
    "agreement_rate": "examiner agreement (share of verdict pairs that agree)",
    "hours_to_first_verdict": "median hours from run to first verdict",
    "hours_to_release": "median hours from run to release",
    "overdue": "candidate lists overdue for review",
}


def _compare(now: _Figures, before: _Figures) -> tuple[Change, ...]:
    current, previous = now.values(), before.values()
    changes = []
    for name, label in COMPARED.items():
        a, b = current[name], previous[name]
        change = None if a is None or b is None else round(a - b, 4)
        changes.append(Change(name, label, a, b, change))
    return tuple(changes)


def _ratio(count: int, of: int) -> float | None:
    return round(count / of, 2) if of else None


def _repeats(shown: Period) -> tuple[RepeatRow, ...]:
    rows = []
    for facts, _ in shown:
        trail = facts.trail
        if not facts.repeat or trail.earlier_search_id is None:
            continue
        if facts.outcome == "deny":
            decision = "denied by the policy"
        elif facts.approval is not None:
            decision = facts.approval
        else:
            decision = "awaiting approval"
        decided = facts.approval is not None
        rows.append(
            RepeatRow(
                search_id=trail.search_id,
                requester=trail.requester,
                case_number=trail.case_number,
                earlier_search_id=trail.earlier_search_id,
                decision=decision,
                approver=trail.approver if decided else None,
                reason=trail.approval_reason if decided else None,
                decided_at=trail.approval_time if decided else None,
            )
        )
    return tuple(rows)


def _denials_by_user(shown: Period) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    rows = []
    for user, searches in sorted(_by_user(shown).items()):
        reasons: Counter[str] = Counter()
        for facts, _ in searches:
            if facts.outcome == "deny":
                reasons.update(facts.reasons)
        if reasons:
            rows.append((user, tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))))
    return tuple(rows)


def _agreement(searches: Period, upto: int) -> Agreement:
    """Each pair of examiners' verdicts on one candidate, agreeing or not.

    An examiner's latest verdict on a candidate is theirs; a senior's verdict settling a
    disagreement is one more verdict, so it is compared too.
    """
    pairs = agreed = candidates = 0
    disagreements = []
    for facts, _ in searches:
        by_candidate: dict[int, dict[str, str]] = defaultdict(dict)
        for verdict in facts.trail.verdicts:
            if verdict.seq <= upto:
                by_candidate[verdict.candidate_id][verdict.examiner] = verdict.verdict
        disagreed_here = False
        for verdicts in by_candidate.values():
            given = list(verdicts.values())
            if len(given) < 2:
                continue
            candidates += 1
            for i, first in enumerate(given):
                for second in given[i + 1 :]:
                    pairs += 1
                    agreed += first == second
                    disagreed_here |= first != second
        if disagreed_here:
            disagreements.append(facts.trail.search_id)
    return Agreement(
        candidates=candidates,
        pairs=pairs,
        agreed=agreed,
        disagreed=pairs - agreed,
        rate=round(agreed / pairs, 4) if pairs else None,
        disagreements=tuple(disagreements),
    )


TIMINGS = {
    "first_verdict": "search run → first verdict",
    "release": "search run → first lead released",
}


def _percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with `share` of values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _timings(searches: Period, upto: int) -> tuple[Timing, ...]:
    waits: dict[str, list[float]] = {name: [] for name in TIMINGS}
    for facts, _ in searches:
        trail = facts.trail
        if not facts.run or trail.run_time is None:
            continue
        verdicts = [v.time for v in trail.verdicts if v.seq <= upto and v.time is not None]
        if verdicts:
            waits["first_verdict"].append(_hours(min(verdicts) - trail.run_time))
        released = [
            moment
            for (seq, _), moment in zip(trail.releases, trail.release_times, strict=False)
            if seq <= upto
        ]
        if released:
            waits["release"].append(_hours(min(released) - trail.run_time))
    return tuple(
        Timing(
            name=name,
            label=label,
            count=len(waits[name]),
            median_hours=round(statistics.median(waits[name]), 2) if waits[name] else None,
            p90_hours=round(_percentile(waits[name], 0.9), 2) if waits[name] else None,
        )
        for name, label in TIMINGS.items()
    )


def _hours(span: timedelta) -> float:
    return span.total_seconds() / 3600


def _lead_outcomes(searches: Period, upto: int) -> tuple[tuple[str, int], ...]:
    """Each lead released (as of the checkpoint) by what its requester last recorded."""
    counts: Counter[str] = Counter()
    for facts, _ in searches:
        latest = {
            candidate: outcome
            for seq, candidate, outcome in facts.trail.lead_outcomes
            if seq <= upto
        }
        for seq, candidate in facts.trail.releases:
            if seq <= upto:
                counts[latest.get(candidate, "pending")] += 1
    return tuple((name, counts.get(name, 0)) for name in LEAD_OUTCOMES)


def _overdue(searches: Period, basis: ReportBasis) -> tuple[Overdue, ...]:
    checkpoint = basis.as_of.checkpoint_time
    limits = basis.snapshot.review_within_days
    rules = basis.snapshot.review_rules
    upto = basis.as_of.checkpoint_size
    rows = []
    for facts, _ in searches:
        trail = facts.trail
        if not facts.run or trail.kind != "search" or trail.run_time is None:
            continue
        reviewers, resolving = rules.get(trail.policy_sha256 or "", UNKNOWN_POLICY_RULE)
        if not _under_review(facts, upto, reviewers, resolving):
            continue
        limit = limits.get(trail.policy_sha256 or "", REVIEW_DAYS)
        waited = checkpoint - trail.run_time
        if waited > timedelta(days=limit):
            rows.append(
                Overdue(
                    search_id=trail.search_id,
                    requester=trail.requester,
                    case_number=trail.case_number,
                    ran_at=trail.run_time,
                    days_waiting=waited.days,
                    limit_days=limit,
                )
            )
    # Oldest first: the list that has waited longest leads.
    return tuple(sorted(rows, key=lambda row: (row.ran_at, row.search_id)))


def _under_review(facts: SearchFacts, upto: int, reviewers: int, resolving: bool) -> bool:
    """The search's list as of entry `upto`, asked of the review queue's rule."""
    given = [v for v in facts.trail.verdicts if v.seq <= upto]
    by_candidate: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    for verdict in given:
        by_candidate[verdict.candidate_id].append((verdict.verdict, verdict.resolves))
    return list_under_review(
        candidates=facts.candidates,
        released=facts.leads > 0,
        blind_examiners=len({v.examiner for v in given if not v.resolves}),
        unsettled=any(candidate_unsettled(said) for said in by_candidate.values()),
        reviewers_required=reviewers,
        resolving=resolving,
    )


def _weeks(first: date, last: date) -> list[str]:
    labels: list[str] = []
    day = first - timedelta(days=first.weekday())
    while day <= last:
        labels.append(week_label(day))
        day += timedelta(days=7)
    return labels


def _rows(
    searches: Iterable[tuple[SearchFacts, datetime]],
    key: Callable[[SearchFacts, datetime], str],
    *,
    order: list[str] | None = None,
) -> tuple[Row, ...]:
    counts: dict[str, Counts] = defaultdict(Counts)
    if order is not None:
        for name in order:
            counts[name] = Counts()
    for facts, local in searches:
        counts[key(facts, local)].add(facts)
    if order is not None:
        return tuple(Row(name, counts[name]) for name in order)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1].requested, kv[0]))
    return tuple(Row(name, value) for name, value in ranked)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def _headline(query: UsageQuery, users: int, totals: Counts) -> str:
    span = f"between {query.date_from.isoformat()} and {query.date_to.isoformat()}"
    searches = _plural(totals.requested, "search", "searches")
    if query.user is not None:
        who = f"{query.user} requested {searches}"
    else:
        who = f"{_plural(users, 'user')} requested {searches}"
        if query.unit is not None:
            who = f"In unit {query.unit}, {who}"
    denied = "was" if totals.denied == 1 else "were"
    ran = "was" if totals.run == 1 else "were"
    return f"{who} {span}; {totals.denied:,} {denied} denied and {totals.run:,} {ran} run."


def _listed(search_ids: list[int], shown: int = 10) -> str:
    """Search ids for a sentence: the first few, then how many more (all are in JSON)."""
    text = ", ".join(str(search_id) for search_id in search_ids[:shown])
    more = len(search_ids) - shown
    return f"{text} and {more} more" if more > 0 else text


def _is_unusual(local: datetime) -> bool:
    moment = local.time()
    return local.weekday() in WEEKEND_DAYS or moment < WORKDAY_START or moment >= WORKDAY_END


def _by_user(searches: Iterable[tuple[SearchFacts, datetime]]) -> dict[str, Period]:
    grouped: dict[str, list[tuple[SearchFacts, datetime]]] = defaultdict(list)
    for facts, local in searches:
        grouped[facts.trail.requester].append((facts, local))
    return grouped


def robust_scores(counts: dict[str, int]) -> dict[str, float]:
    """Each member's (count - median) / (1.4826 x MAD), the MAD floored at MAD_FLOOR."""
    values = list(counts.values())
    median = statistics.median(values)
    mad = statistics.median(abs(value - median) for value in values)
    scale = MAD_SCALE * max(mad, MAD_FLOOR)
    return {member: (count - median) / scale for member, count in counts.items()}


@dataclass(frozen=True)
class _Measure:
    """One way a user can stand out: their value, how many requests it counts, which."""

    value: float
    count: int
    search_ids: tuple[int, ...]


def _measures(searches: Period) -> dict[str, _Measure]:
    total = len(searches)

    def share(ids: list[int]) -> _Measure:
        return _Measure(len(ids) / total, len(ids), tuple(ids))

    cases = len({facts.trail.case_number for facts, _ in searches})
    every = tuple(facts.trail.search_id for facts, _ in searches)
    return {
        "high_volume": _Measure(total, total, every),
        "repeats": share([f.trail.search_id for f, _ in searches if f.repeat]),
        "denials": share([f.trail.search_id for f, _ in searches if f.outcome == "deny"]),
        "unusual_hours": share([f.trail.search_id for f, local in searches if _is_unusual(local)]),
        "outside_agency": share([f.trail.search_id for f, _ in searches if f.outside_agency]),
        "searches_per_case": _Measure(total / cases, total - cases, every),
    }


# kind -> (the least count a flag needs, the MAD floor, how the value reads)
_MEASURE_RULES: dict[str, tuple[int, float, str]] = {
    "high_volume": (1, MAD_FLOOR, "count"),
    "repeats": (2, SHARE_MAD_FLOOR, "share"),
    "denials": (2, SHARE_MAD_FLOOR, "share"),
    "unusual_hours": (3, SHARE_MAD_FLOOR, "share"),
    "outside_agency": (2, SHARE_MAD_FLOOR, "share"),
    "searches_per_case": (2, RATIO_MAD_FLOOR, "ratio"),
}


def _flags(basis: ReportBasis, period: Period, shown_users: set[str]) -> list[Flag]:
    """Ranked flags: expired certificates first, then by robust score, highest first.

    Users are scored against every requester of the period whatever the filters (a
    filter picks whose flags are shown, not who they are compared with).
    """
    units = basis.snapshot.units
    per_user = _by_user(period)
    measures = {user: _measures(searches) for user, searches in per_user.items()}
    per_unit: dict[str, list[str]] = defaultdict(list)
    for user in per_user:
        per_unit[units.get(user, "(unknown unit)")].append(user)
    flags = [*_expired_certificates(basis, per_user, shown_users)]
    for user in sorted(shown_users & per_user.keys()):
        unit = units.get(user, "(unknown unit)")
        peers = per_unit[unit] if len(per_unit[unit]) >= MIN_UNIT_PEERS else list(per_user)
        if len(peers) < MIN_PEERS:
            continue
        among = "the users of " + unit if peers is per_unit[unit] else "all requesters"
        for kind, (least, floor, reads) in _MEASURE_RULES.items():
            mine = measures[user][kind]
            values = [measures[peer][kind].value for peer in peers]
            median = statistics.median(values)
            mad = statistics.median(abs(value - median) for value in values)
            score = (mine.value - median) / (MAD_SCALE * max(mad, floor))
            if score <= ROBUST_THRESHOLD or mine.count < least:
                continue
            flags.append(
                Flag(
                    kind=kind,
                    user=user,
                    unit=unit,
                    count=mine.count,
                    explanation=_why(
                        kind, user, mine, len(per_user[user]), median, reads, among, len(peers)
                    )
                    + f" Robust score {score:.1f}.",
                    search_ids=mine.search_ids,
                    score=round(score, 2),
                    value=round(mine.value, 4),
                    peer_median=round(median, 4),
                    peers=len(peers),
                )
            )
    return sorted(flags, key=lambda f: (f.score is not None, -(f.score or 0.0), f.user, f.kind))


def _shown(value: float, reads: str) -> str:
    if reads == "share":
        return f"{value:.0%}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if reads == "ratio" else f"{value:g}"


def _why(
    kind: str,
    user: str,
    mine: _Measure,
    requests: int,
    median: float,
    reads: str,
    among: str,
    peers: int,
) -> str:
    against = f"against a median of {_shown(median, reads)} among {among} ({peers})"
    listed = _listed(list(mine.search_ids))
    if kind == "high_volume":
        return f"{user} made {requests} requests, {against}."
    if kind == "searches_per_case":
        return (
            f"{user} made {requests} requests on {requests - mine.count} cases, "
            f"{_shown(mine.value, reads)} per case, {against}."
        )
    what = {
        "repeats": "repeated an earlier search",
        "denials": "were denied by the policy",
        "unusual_hours": f"were made outside {WORKDAY_START:%H:%M}–{WORKDAY_END:%H:%M} on weekdays",
        "outside_agency": "were for outside agencies",
    }[kind]
    return (
        f"{mine.count} of {user}'s {requests} requests ({_shown(mine.value, reads)}) {what} "
        f"({listed}), {against}."
    )


def _expired_certificates(
    basis: ReportBasis, per_user: dict[str, Period], shown_users: set[str]
) -> list[Flag]:
    ledger, units = basis.ledger, basis.snapshot.units
    zone = ZoneInfo(basis.snapshot.timezone)
    upto = basis.as_of.checkpoint_size
    flags = []
    for user in sorted(shown_users & per_user.keys()):
        found: list[tuple[int, str]] = []
        for facts, local in per_user[user]:
            trail = facts.trail
            expiry = certificate_expiry(ledger, user, trail.seq)
            if NO_CERTIFICATE in facts.reasons:
                found.append((trail.search_id, f"{trail.search_id} (denied: no valid certificate)"))
            elif expiry is not None and local.date() > expiry:
                found.append((trail.search_id, f"{trail.search_id} (requested, expired {expiry})"))
            elif facts.run and trail.run_seq is not None and trail.run_time is not None:
                at_run = certificate_expiry(ledger, user, trail.run_seq)
                run_day = trail.run_time.astimezone(zone).date()
                if at_run is not None and run_day > at_run and trail.run_seq <= upto:
                    found.append((trail.search_id, f"{trail.search_id} (run, expired {at_run})"))
        if found:
            flags.append(
                Flag(
                    kind="expired_certificate",
                    user=user,
                    unit=units.get(user, "(unknown unit)"),
                    count=len(found),
                    explanation=(
                        f"{user} asked for or ran {_plural(len(found), 'search', 'searches')} "
                        f"while their training certificate had expired, as the audit log "
                        f"records it: {'; '.join(text for _, text in found[:10])}"
                        + (f"; and {len(found) - 10} more." if len(found) > 10 else ".")
                    ),
                    search_ids=tuple(search_id for search_id, _ in found),
                )
            )
    return flags
