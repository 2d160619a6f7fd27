"""Flags rank users by how far they stand from their peers; expired certificates always.

Each test replays a small log written out by hand (the entries a workflow would
write, with the fields the reports read), so every figure is known without faces, a
database or a clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from candor.reports import AsOf, ReportBasis, UsageQuery, compute_usage
from candor.reports.ledger import replay
from candor.reports.snapshot import StoreSnapshot

HOME = "Example Regional Investigation Unit"
POLICY = "p" * 64
PERIOD = UsageQuery(date(2027, 1, 1), date(2027, 1, 31))
CHECKPOINT = datetime(2027, 2, 1, 9, tzinfo=UTC)


@dataclass
class Log:
    """Audit entries written out by hand, numbered as they are added."""

    units: dict[str, str] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    next_search: Iterator[int] = field(default_factory=lambda: iter(range(1, 10_000)))

    def add(
        self,
        action: str,
        actor: str | None,
        moment: datetime,
        objects: dict[str, Any],
        **details: Any,
    ) -> None:
        self.entries.append(
            {
                "action": action,
                "actor": actor,
                "details": details,
                "objects": objects,
                "seq": len(self.entries) + 1,
                "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    def user(self, name: str, unit: str, expires: date = date(2030, 1, 1)) -> None:
        self.units[name] = unit
        self.add(
            "user.created",
            "admin1",
            datetime(2026, 12, 1, 9, tzinfo=UTC),
            {"user": len(self.units)},
            username=name,
            unit=unit,
            certificate_expires=expires.isoformat(),
        )

    def search(
        self,
        user: str,
        moment: datetime,
        *,
        case: str | None = None,
        outcome: str = "allow",
        reasons: tuple[str, ...] = (),
        earlier: int | None = None,
        candidates: int = 3,
    ) -> int:
        search_id = next(self.next_search)
        self.add(
            "search.requested",
            user,
            moment,
            {"search": search_id, "case": case or f"C-{search_id}"},
            offence_category="robbery",
            purpose="investigative_lead",
            requesting_agency=HOME,
            requesting_unit=self.units[user],
        )
        decision = {
            "outcome": outcome,
            "reasons": [{"code": code} for code in reasons],
            "policy_sha256": POLICY,
            "earlier_search_id": earlier,
        }
        self.add("policy.decided", None, moment, {"search": search_id}, decision=decision)
        if outcome == "needs_approval":
            self.add(
                "search.approved",
                "sup",
                moment + timedelta(minutes=30),
                {"search": search_id},
                reason="new information in the file",
            )
        if outcome != "deny":
            self.add(
                "search.run",
                user,
                moment + timedelta(hours=1),
                {"search": search_id},
                candidates=candidates,
            )
        return search_id

    def basis(self) -> ReportBasis:
        raw = [
            json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
            for entry in self.entries
        ]
        snapshot = StoreSnapshot(
            purpose="evaluation",
            timezone="UTC",
            entries=raw,
            notes=[],
            units={**self.units, "admin1": "Records", "sup": "Robbery"},
            searches={},
            candidates={},
            verdicts={},
            releases={},
            images={},
            home_agencies={POLICY: HOME},
        )
        as_of = AsOf(len(raw), CHECKPOINT, "0" * 64, len(raw))
        return ReportBasis(snapshot=snapshot, ledger=replay(raw), as_of=as_of)


def weekday(day: int, hour: int = 10) -> datetime:
    return datetime(2027, 1, day, hour, tzinfo=UTC)


def test_a_flag_that_fits_everyone_is_no_flag() -> None:
    """Every analyst has unreviewed lists and one repeat; only the re-runner stands out."""
    log = Log()
    analysts = [f"a{n}" for n in range(1, 6)] + ["rerun"]
    for name in analysts:
        log.user(name, "Robbery")
    for name in analysts:
        first = log.search(name, weekday(4))
        repeats = 4 if name == "rerun" else 1
        for day in range(5, 5 + repeats):
            log.search(name, weekday(day), outcome="needs_approval", earlier=first)
        for day in range(5 + repeats, 9):
            log.search(name, weekday(day))
    report = compute_usage(log.basis(), PERIOD)
    assert {(flag.kind, flag.user) for flag in report.flags} == {("repeats", "rerun")}
    flag = report.flags[0]
    assert flag.count == 4 and flag.value == 0.8 and flag.peer_median == 0.2
    assert flag.score is not None and flag.score > 3.5
    # Every list is still counted as overdue, in its own section, oldest first.
    assert len(report.overdue) == 30
    assert report.overdue[0].ran_at <= report.overdue[-1].ran_at


def test_volume_flags_rank_the_furthest_first() -> None:
    log = Log()
    for n, count in enumerate((5, 5, 6, 4, 5, 30, 14), start=1):
        name = f"a{n}"
        log.user(name, "Burglary")
        for i in range(count):
            log.search(name, weekday(4 + i % 20))
    report = compute_usage(log.basis(), PERIOD)
    volume = [flag for flag in report.flags if flag.kind == "high_volume"]
    assert [flag.user for flag in volume] == ["a6", "a7"]
    assert volume[0].score is not None and volume[1].score is not None
    assert volume[0].score > volume[1].score


def test_searches_on_an_expired_certificate_are_flagged_first() -> None:
    log = Log()
    for n in range(1, 5):
        log.user(f"a{n}", "Robbery")
    log.user("lapsed", "Robbery", expires=date(2027, 1, 10))
    for n in range(1, 5):
        for day in (4, 5, 6):
            log.search(f"a{n}", weekday(day))
    kept_on = log.search("lapsed", weekday(4))
    denied = log.search("lapsed", weekday(12), outcome="deny", reasons=("no_certificate",))
    slipped = log.search("lapsed", weekday(13))  # made after the expiry the log records
    log.add(
        "user.certificate_updated",
        "admin1",
        weekday(14),
        {"user": 5},
        username="lapsed",
        certificate_expires="2029-01-01",
    )
    renewed = log.search("lapsed", weekday(15))
    report = compute_usage(log.basis(), PERIOD)
    first = report.flags[0]
    assert (first.kind, first.user) == ("expired_certificate", "lapsed")
    assert first.search_ids == (denied, slipped)
    assert kept_on not in first.search_ids and renewed not in first.search_ids
    assert "expired" in first.explanation


def test_board_figures_of_a_small_log() -> None:
    """Cases, repeats with approver and reason, denials per user: counted by hand."""
    log = Log()
    for name in ("ana", "bob", "cy"):
        log.user(name, "Robbery")
    s1 = log.search("ana", weekday(4), case="K-1")
    s2 = log.search("ana", weekday(5), case="K-1", outcome="needs_approval", earlier=s1)
    log.search("ana", weekday(6), case="K-1", outcome="deny", reasons=("quota_per_day",))
    log.search("ana", weekday(7), case="K-2")
    log.search("bob", weekday(4), case="K-3", outcome="deny", reasons=("outside_agency",))
    log.search("cy", weekday(5), case="K-4")
    # Two blind verdicts disagree on s1's candidate 11; a senior's verdict settles it.
    for examiner, verdict, hour in (
        ("eve", "possible_match", 11),
        ("eli", "not_a_match", 12),
        ("sue", "possible_match", 13),
    ):
        log.add(
            "candidate.verdict",
            examiner,
            datetime(2027, 1, 5, hour, tzinfo=UTC),
            {"search": s1, "candidate": 11},
            verdict=verdict,
        )
    log.add(
        "lead.released",
        "eve",
        datetime(2027, 1, 6, 11, tzinfo=UTC),
        {"search": s1, "candidate": 11},
    )
    log.add(
        "lead.released",
        "eve",
        datetime(2027, 1, 6, 11, tzinfo=UTC),
        {"search": s1, "candidate": 12},
    )
    for outcome in ("excluded", "confirmed_by_other_evidence"):  # the newest stands
        log.add(
            "lead.outcome_recorded",
            "ana",
            datetime(2027, 1, 20, 9, tzinfo=UTC),
            {"search": s1, "candidate": 11},
            outcome=outcome,
        )
    # The previous period (December): one request by bob.
    log.search("bob", datetime(2026, 12, 10, 10, tzinfo=UTC), case="K-0")
    report = compute_usage(log.basis(), PERIOD)
    cases = {
        row.user: (row.requests, row.cases, row.searches_per_case) for row in report.cases_by_user
    }
    assert cases == {"ana": (4, 2, 2.0), "bob": (1, 1, 1.0), "cy": (1, 1, 1.0)}
    assert report.cases_by_user[0].busiest_case == "K-1"
    assert report.distinct_cases == 4 and report.searches_per_case == 1.5
    assert [(r.search_id, r.decision, r.approver, r.reason) for r in report.repeats] == [
        (s2, "approved", "sup", "new information in the file")
    ]
    assert dict(report.denials_by_user) == {
        "ana": (("quota_per_day", 1),),
        "bob": (("outside_agency", 1),),
    }
    assert report.previous_period == (date(2026, 12, 1), date(2026, 12, 31))
    agreement = report.agreement
    assert agreement is not None
    assert (agreement.candidates, agreement.pairs, agreement.agreed, agreement.disagreed) == (
        1, 3, 1, 2
    )  # fmt: skip
    assert agreement.rate == 0.3333 and agreement.disagreements == (s1,)
    times = {t.name: (t.count, t.median_hours, t.p90_hours) for t in report.review_times}
    # s1 ran on the 4th at 11:00: first verdict the 5th at 11:00, released the 6th at 11:00.
    assert times == {"first_verdict": (1, 24.0, 24.0), "release": (1, 48.0, 48.0)}
    assert dict(report.lead_outcomes) == {
        "pending": 1, "confirmed_by_other_evidence": 1, "excluded": 0, "no_action": 0
    }  # fmt: skip
    change = {c.name: (c.current, c.previous, c.change) for c in report.comparison}
    assert change["requested"] == (6, 1, 5)
    assert change["denied"] == (2, 0, 2)
    assert change["distinct_cases"] == (4, 1, 3)
