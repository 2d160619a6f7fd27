"""The usage report: who searched, for whom, for what, when, and what came of it.

Figures are counted from the audit log up to the latest signed checkpoint (see
`basis`); a search belongs to the period in which it was requested (its day, week and
hour in the workspace's time zone), and what became of it is counted as of the
checkpoint. The user's unit is the one the users table holds now: units are not in the
log.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from candor.reports.basis import AsOf, ReportBasis, establish_basis
from candor.reports.facts import OUTCOMES, SearchFacts, search_facts
from candor.store import Workspace

# Unusual hours: a request before 07:00 or from 20:00 local time, or on a Saturday or
# Sunday. Agencies with night shifts would change these constants.
WORKDAY_START = time(7, 0)
WORKDAY_END = time(20, 0)
WEEKEND_DAYS = frozenset({5, 6})
# One late request is a working day that ran long; a habit is worth a supervisor's look.
UNUSUAL_FLAG_AT = 3
# High volume: the Iglewicz–Hoaglin modified z-score, 0.6745 (x - median) / MAD, written
# as (x - median) / (1.4826 MAD); above 3.5 is an outlier. The MAD is floored at one
# request: in a unit where most people made the same number, the MAD is 0 and any
# difference at all would score as infinite. Units with fewer than three users have no
# meaningful median, so nobody in them is scored.
MAD_SCALE = 1.4826
MAD_FLOOR = 1.0
ROBUST_THRESHOLD = 3.5
MIN_UNIT_USERS = 3
# Candidate lists never reviewed: run, with candidates, this many days before the
# checkpoint, and still without any examiner's verdict.
REVIEW_DAYS = 7
# Repeated probes: a user whose probe matched an earlier search (same photo, or a
# template the policy counts as near-identical) at least this many times.
REPEAT_FLAG_AT = 2


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
    """Something a supervisor should look at, with the sentence that says why."""

    kind: str
    user: str
    unit: str
    count: int
    explanation: str
    search_ids: tuple[int, ...]
    score: float | None = None


FLAG_RULES: dict[str, str] = {
    "high_volume": (
        "Far above the unit: a user's number of requests scores above "
        f"{ROBUST_THRESHOLD} on the robust scale (count − unit median) / "
        f"({MAD_SCALE} × MAD), the MAD (median absolute deviation) floored at "
        f"{MAD_FLOOR:g} request; only units with at least {MIN_UNIT_USERS} users "
        "who made requests in the period are scored."
    ),
    "unusual_hours": (
        f"Unusual hours: a user who made at least {UNUSUAL_FLAG_AT} requests before "
        f"{WORKDAY_START:%H:%M} or from {WORKDAY_END:%H:%M}, or on a Saturday or Sunday, "
        "in the workspace's time zone."
    ),
    "never_reviewed": (
        "Candidate lists never reviewed: searches run with at least one candidate more "
        "than {review_days} days before the checkpoint, on which no examiner has recorded "
        "a verdict."
    ),
    "repeated_probes": (
        "Repeated probes: a user whose probe matched an earlier search (the same photo, or "
        "one the policy counts as near-identical) at least {repeat_flag_at} times; each "
        "such request needed a supervisor's approval or was denied."
    ),
}


@dataclass(frozen=True)
class UsageQuery:
    """The period (inclusive local dates) and optional filters of a usage report."""

    date_from: date
    date_to: date
    unit: str | None = None
    user: str | None = None
    review_days: int = REVIEW_DAYS
    repeat_flag_at: int = REPEAT_FLAG_AT

    def __post_init__(self) -> None:
        if self.date_to < self.date_from:
            raise ValueError(
                f"the period ends ({self.date_to}) before it starts ({self.date_from})"
            )
        if self.review_days < 0:
            raise ValueError("review_days must be 0 or more")
        if self.repeat_flag_at < 1:
            raise ValueError("repeat_flag_at must be 1 or more")

    def period(self) -> dict[str, str]:
        """The period and filters as plain text, e.g. for an audit entry."""
        period = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()}
        if self.unit is not None:
            period["unit"] = self.unit
        if self.user is not None:
            period["user"] = self.user
        return period


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


def compute_usage(
    basis: ReportBasis, query: UsageQuery, *, now: datetime | None = None
) -> UsageReport:
    """The usage report from an established basis."""
    snapshot, as_of = basis.snapshot, basis.as_of
    zone = ZoneInfo(snapshot.timezone)
    upto = as_of.checkpoint_size
    units = snapshot.units
    period: list[tuple[SearchFacts, datetime]] = []
    for trail in basis.ledger.searches.values():
        if trail.seq > upto:
            continue
        local = trail.time.astimezone(zone)
        if query.date_from <= local.date() <= query.date_to:
            period.append((search_facts(trail, upto, snapshot.home_agencies), local))
    period.sort(key=lambda item: item[0].trail.search_id)
    shown = [
        (facts, local)
        for facts, local in period
        if (query.unit is None or units.get(facts.trail.requester) == query.unit)
        and (query.user is None or facts.trail.requester == query.user)
    ]

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
    flags = [
        *_high_volume(period, units, {f.trail.requester for f, _ in shown}),
        *_unusual_hours(shown, units),
        *_never_reviewed(shown, units, as_of, query.review_days),
        *_repeated_probes(shown, units, query.repeat_flag_at),
    ]
    rules = {
        kind: text.format(review_days=query.review_days, repeat_flag_at=query.repeat_flag_at)
        for kind, text in FLAG_RULES.items()
    }
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
        flag_rules=tuple(rules.items()),
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


def _by_user(
    searches: Iterable[tuple[SearchFacts, datetime]],
) -> dict[str, list[tuple[SearchFacts, datetime]]]:
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


def _high_volume(
    period: list[tuple[SearchFacts, datetime]], units: dict[str, str], shown_users: set[str]
) -> list[Flag]:
    """Scored against every requester of the unit in the period, whatever the filters."""
    per_user = _by_user(period)
    per_unit: dict[str, list[str]] = defaultdict(list)
    for user in per_user:
        per_unit[units.get(user, "(unknown unit)")].append(user)
    flags = []
    for unit, members in sorted(per_unit.items()):
        if len(members) < MIN_UNIT_USERS:
            continue
        counts = {user: len(per_user[user]) for user in members}
        median = statistics.median(counts.values())
        mad = statistics.median(abs(count - median) for count in counts.values())
        scores = robust_scores(counts)
        for user in sorted(members):
            count, score = counts[user], scores[user]
            if user in shown_users and score > ROBUST_THRESHOLD:
                flags.append(
                    Flag(
                        kind="high_volume",
                        user=user,
                        unit=unit,
                        count=count,
                        explanation=(
                            f"{user} made {count} requests, against a median of {median:g} "
                            f"among the {len(members)} users of {unit} who made any "
                            f"(MAD {mad:g}); robust score {score:.1f}, above "
                            f"{ROBUST_THRESHOLD}."
                        ),
                        search_ids=tuple(f.trail.search_id for f, _ in per_user[user]),
                        score=round(score, 2),
                    )
                )
    return flags


def _unusual_hours(shown: list[tuple[SearchFacts, datetime]], units: dict[str, str]) -> list[Flag]:
    flags = []
    for user, searches in sorted(_by_user(shown).items()):
        odd = [facts.trail.search_id for facts, local in searches if _is_unusual(local)]
        if len(odd) >= UNUSUAL_FLAG_AT:
            flags.append(
                Flag(
                    kind="unusual_hours",
                    user=user,
                    unit=units.get(user, "(unknown unit)"),
                    count=len(odd),
                    explanation=(
                        f"{user} made {len(odd)} of {len(searches)} requests outside "
                        f"{WORKDAY_START:%H:%M}–{WORKDAY_END:%H:%M} on weekdays "
                        f"({_listed(odd)})."
                    ),
                    search_ids=tuple(odd),
                )
            )
    return flags


def _never_reviewed(
    shown: list[tuple[SearchFacts, datetime]],
    units: dict[str, str],
    as_of: AsOf,
    review_days: int,
) -> list[Flag]:
    cutoff = as_of.checkpoint_time - timedelta(days=review_days)
    flags = []
    for user, searches in sorted(_by_user(shown).items()):
        waiting = [
            facts.trail.search_id
            for facts, _ in searches
            if facts.run
            and facts.candidates > 0
            and not facts.reviewed
            and facts.trail.run_time is not None
            and facts.trail.run_time <= cutoff
        ]
        if waiting:
            listed = _listed(waiting)
            flags.append(
                Flag(
                    kind="never_reviewed",
                    user=user,
                    unit=units.get(user, "(unknown unit)"),
                    count=len(waiting),
                    explanation=(
                        f"{_plural(len(waiting), 'candidate list')} from {user}'s searches "
                        f"({listed}) ran more than {review_days} days before the checkpoint "
                        "and no examiner has recorded a verdict."
                    ),
                    search_ids=tuple(waiting),
                )
            )
    return flags


def _repeated_probes(
    shown: list[tuple[SearchFacts, datetime]], units: dict[str, str], threshold: int
) -> list[Flag]:
    flags = []
    for user, searches in sorted(_by_user(shown).items()):
        repeats = [facts.trail.search_id for facts, _ in searches if facts.repeat]
        if len(repeats) >= threshold:
            flags.append(
                Flag(
                    kind="repeated_probes",
                    user=user,
                    unit=units.get(user, "(unknown unit)"),
                    count=len(repeats),
                    explanation=(
                        f"{user}'s probe matched an earlier search {len(repeats)} times "
                        f"(requests {_listed(repeats)})."
                    ),
                    search_ids=tuple(repeats),
                )
            )
    return flags
