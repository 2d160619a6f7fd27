"""The public transparency report: aggregates only, small counts suppressed.

It names no user, case number, subject or examiner. Every count from 1 to 4 is shown as
"<5", so that a figure cannot single out a person or a case; 0 is shown as 0. Totals
are suppressed by the same rule, but no complementary suppression is done: where a
total and all but one of its parts are shown, the remaining part can be worked out.
Figures are counted from the audit log up to the latest signed checkpoint.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from candor.reports.basis import AsOf, ReportBasis, establish_basis
from candor.reports.facts import OUTCOMES, search_facts
from candor.reports.snapshot import ModelInUse, StoredReportCard
from candor.store import Workspace

SUPPRESSED = "<5"
# Suppressed: 1 to this many.
SUPPRESS_UP_TO = 4

Shown = int | str


def public(count: int) -> Shown:
    """A count as the public report shows it: 1 to 4 become "<5"."""
    return SUPPRESSED if 1 <= count <= SUPPRESS_UP_TO else count


def _words(value: Shown) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return "fewer than 5" if value == SUPPRESSED else value


@dataclass(frozen=True)
class OffenceRow:
    """Searches for one offence category, by outcome."""

    offence_category: str
    total: Shown
    outcomes: tuple[tuple[str, Shown], ...]


@dataclass(frozen=True)
class AccuracyCard:
    """The latest accuracy report card, with the dataset it was measured on and its limits."""

    measured_at: datetime
    model_key: str
    dataset: str
    dataset_sha256: str
    results: tuple[tuple[str, str], ...]
    dataset_limits: str


@dataclass(frozen=True)
class TransparencyReport:
    """Everything the public report shows."""

    year: int
    purpose: str
    timezone: str
    as_of: AsOf
    generated_at: datetime
    period_end_note: str
    headline: str
    searches: Shown
    verifications: Shown
    outcomes: tuple[tuple[str, Shown], ...]
    by_offence: tuple[OffenceRow, ...]
    denials: Shown
    denial_reasons: tuple[tuple[str, Shown], ...]
    outside_agency_requests: Shown
    gallery_by_source: tuple[tuple[str, Shown], ...]
    gallery_total: Shown
    enrolments_by_source: tuple[tuple[str, Shown], ...]
    enrolments: Shown
    expungements: Shown
    expunged_images: Shown
    purges: tuple[tuple[str, Shown], ...]
    accuracy: AccuracyCard | None
    accuracy_note: str
    # The outside agencies that asked for searches, with how many requests each made
    # (allowed or not): organisations, never people.
    outside_agencies: tuple[tuple[str, Shown], ...] = ()
    # Set on a published copy: when it was published (RFC 3339 UTC).
    published_at: str | None = None
    # The face model searches use now, and in plain words since when and how accurate its
    # latest report card says it is (`accuracy` is that card).
    model_in_use: ModelInUse | None = None
    model_note: str = ""

    @property
    def checkpoint_size(self) -> int:
        """The size of the signed checkpoint the figures are counted up to."""
        return self.as_of.checkpoint_size


PURGE_LABELS = {
    "retention.probes_purged": "searches whose probe photos were purged",
    "retention.search_records_purged": "search records purged",
    "retention.gallery_purged": "gallery photos purged",
}
NO_CARD = "No accuracy report card recorded."


def transparency_report(
    workspace: Workspace, verifier_key: str, year: int, *, now: datetime | None = None
) -> TransparencyReport:
    """Verify the log, reconcile the store, and count the public report for `year`."""
    return compute_transparency(establish_basis(workspace, verifier_key), year, now=now)


def compute_transparency(
    basis: ReportBasis, year: int, *, now: datetime | None = None
) -> TransparencyReport:
    """The transparency report from an established basis."""
    snapshot, ledger, as_of = basis.snapshot, basis.ledger, basis.as_of
    zone = ZoneInfo(snapshot.timezone)
    upto = as_of.checkpoint_size
    first, last = date(year, 1, 1), date(year, 12, 31)

    def in_year(moment: datetime) -> bool:
        return first <= moment.astimezone(zone).date() <= last

    outcome_counts: Counter[str] = Counter()
    by_offence: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    agencies: Counter[str] = Counter()
    searches = verifications = denials = outside = 0
    for trail in ledger.searches.values():
        if trail.seq > upto or not in_year(trail.time):
            continue
        facts = search_facts(trail, upto, snapshot.home_agencies)
        searches += 1
        verifications += trail.kind == "verify"
        outcome_counts[facts.final] += 1
        by_offence[trail.offence_category][facts.final] += 1
        outside += facts.outside_agency
        if facts.outside_agency:
            agencies[trail.requesting_agency] += 1
        if facts.outcome == "deny":
            denials += 1
            reasons.update(facts.reasons)

    year_end = datetime(year + 1, 1, 1, tzinfo=zone)
    held: Counter[str] = Counter()
    enrolled: Counter[str] = Counter()
    for image in ledger.images.values():
        if image.enrolled_seq > upto:
            continue
        if in_year(image.enrolled_time):
            enrolled[image.source_type] += 1
        removed = (
            image.removed_seq is not None
            and image.removed_seq <= upto
            and image.removed_time is not None
            and image.removed_time < year_end
        )
        if image.enrolled_time < year_end and not removed:
            held[image.source_type] += 1

    expungements = expunged_images = 0
    purges: Counter[str] = Counter()
    for removal in ledger.removals:
        if removal.seq > upto or not in_year(removal.time):
            continue
        if removal.action == "gallery.expunged":
            expungements += 1
            expunged_images += removal.count
        else:
            purges[removal.action] += removal.count

    checkpoint_local = as_of.checkpoint_time.astimezone(zone)
    if checkpoint_local < year_end:
        period_end_note = (
            f"The year is not over at the checkpoint: figures run to "
            f"{checkpoint_local:%Y-%m-%d %H:%M} ({snapshot.timezone}); the gallery size is "
            "as of then."
        )
    else:
        period_end_note = f"The gallery size is as of the end of {year}."
    accuracy = _accuracy(snapshot.report_card)
    model_note = (
        ""
        if snapshot.model_in_use is None
        else _model_note(snapshot.model_in_use, snapshot.report_card, zone)
    )
    shown_searches = public(searches)
    released = public(outcome_counts["run_lead_released"])
    headline = (
        f"In {year}, {_words(shown_searches)} "
        f"{'search was' if searches == 1 else 'searches were'} requested; "
        f"{_words(public(denials))} {'was' if denials == 1 else 'were'} denied by the "
        f"agency's policy and {_words(released)} led to an investigative lead being released."
    )
    return TransparencyReport(
        year=year,
        purpose=snapshot.purpose,
        timezone=snapshot.timezone,
        as_of=as_of,
        generated_at=now or datetime.now(UTC),
        period_end_note=period_end_note,
        headline=headline,
        searches=shown_searches,
        verifications=public(verifications),
        outcomes=tuple((name, public(outcome_counts[name])) for name in OUTCOMES),
        by_offence=tuple(
            OffenceRow(
                offence_category=offence,
                total=public(sum(counts.values())),
                outcomes=tuple((name, public(counts[name])) for name in OUTCOMES),
            )
            for offence, counts in sorted(by_offence.items())
        ),
        denials=public(denials),
        denial_reasons=tuple(
            (code, public(count))
            for code, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        outside_agency_requests=public(outside),
        gallery_by_source=tuple((source, public(n)) for source, n in sorted(held.items())),
        gallery_total=public(sum(held.values())),
        enrolments_by_source=tuple((source, public(n)) for source, n in sorted(enrolled.items())),
        enrolments=public(sum(enrolled.values())),
        expungements=public(expungements),
        expunged_images=public(expunged_images),
        purges=tuple((action, public(purges[action])) for action in PURGE_LABELS),
        accuracy=accuracy,
        accuracy_note=_accuracy_note(accuracy),
        outside_agencies=tuple(
            (agency, public(count))
            for agency, count in sorted(agencies.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        model_in_use=snapshot.model_in_use,
        model_note=model_note,
    )


def transparency_from_json(document: dict[str, Any], published_at: str) -> TransparencyReport:
    """A published report back from its document (`render.transparency_json`'s form)."""
    as_of = document["as_of"]
    card = document.get("accuracy")
    outcome_names = list(OUTCOMES)
    return TransparencyReport(
        year=document["year"],
        purpose=document["purpose"],
        timezone=document["timezone"],
        as_of=AsOf(
            checkpoint_size=as_of["checkpoint_size"],
            checkpoint_time=datetime.fromisoformat(as_of["checkpoint_time"]),
            root_hash=as_of["root_hash"],
            log_entries=as_of["log_entries"],
        ),
        generated_at=datetime.fromisoformat(document["generated_at"]),
        period_end_note=document["period_end_note"],
        headline=document["headline"],
        searches=document["searches"],
        verifications=document["verifications"],
        # The published copy lives in the log as canonical JSON, keys sorted: each figure
        # goes back to its place by name, not by the order the keys were read in.
        outcomes=tuple((name, document["outcomes"][name]) for name in outcome_names),
        by_offence=tuple(
            OffenceRow(
                offence_category=row["offence_category"],
                total=row["total"],
                outcomes=tuple((name, row[name]) for name in outcome_names),
            )
            for row in document["by_offence"]
        ),
        denials=document["denials"],
        denial_reasons=tuple(document["denial_reasons"].items()),
        outside_agency_requests=document["outside_agency_requests"],
        gallery_by_source=tuple(document["gallery_by_source"].items()),
        gallery_total=document["gallery_total"],
        enrolments_by_source=tuple(document["enrolments_by_source"].items()),
        enrolments=document["enrolments"],
        expungements=document["expungements"],
        expunged_images=document["expunged_images"],
        purges=tuple((action, document["purges"][action]) for action in PURGE_LABELS),
        accuracy=None
        if card is None
        else AccuracyCard(
            measured_at=datetime.fromisoformat(card["measured_at"]),
            model_key=card["model_key"],
            dataset=card["dataset"],
            dataset_sha256=card["dataset_sha256"],
            results=tuple(card["results"].items()),
            dataset_limits=card["dataset_limits"],
        ),
        accuracy_note=document["accuracy_note"],
        outside_agencies=tuple(document.get("outside_agencies", {}).items()),
        published_at=published_at,
        # Copies published before models were named have neither.
        model_in_use=_model_from_json(document.get("model_in_use")),
        model_note=document.get("model_note", ""),
    )


def _model_from_json(value: Any) -> ModelInUse | None:
    if not isinstance(value, dict):
        return None
    since = value.get("since")
    return ModelInUse(
        name=value["name"],
        model_key=value.get("model_key"),
        since=None if since is None else datetime.fromisoformat(since),
    )


# Figures of a report card the public report shows (counts, then rates with intervals);
# the card's curves, settings and per-group tables stay in the card itself.
_CARD_COUNTS = ("people", "photos", "gallery_size", "mated_searches", "nonmated_searches")
_CARD_RATE_PREFIXES = ("rank", "fnir_at_", "fpir_at_", "fnmr_at_")


def _accuracy(card: StoredReportCard | None) -> AccuracyCard | None:
    if card is None:
        return None
    result = card.result
    intervals = result.get("ci")
    results = [(name, str(result[name])) for name in _CARD_COUNTS if name in result]
    for name, value in result.items():
        if not name.startswith(_CARD_RATE_PREFIXES):
            continue
        text = "not defined on this dataset" if value is None else _result_text(value)
        interval = intervals.get(name) if isinstance(intervals, dict) else None
        if isinstance(interval, list) and len(interval) == 2:
            text += f" ({_result_text(interval[0])} to {_result_text(interval[1])})"
        results.append((name, text))
    return AccuracyCard(
        measured_at=card.created_at,
        model_key=card.model_key,
        # The folder's name, not the path it had on the machine that measured it.
        dataset=Path(card.dataset).name or card.dataset,
        dataset_sha256=card.dataset_sha256,
        results=tuple(results),
        dataset_limits=card.dataset_limits,
    )


def _result_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _accuracy_note(card: AccuracyCard | None) -> str:
    if card is None:
        return NO_CARD
    return (
        f"Measured on {card.measured_at:%Y-%m-%d} with model {card.model_key} on the dataset "
        f"{card.dataset} (sha256 {card.dataset_sha256[:16]}…). Its limits: "
        f"{card.dataset_limits}"
    )


def _percent(value: object) -> str:
    return (
        f"{100.0 * float(value):.1f} %" if isinstance(value, int | float) else "an undefined share"
    )


def _percent_interval(result: dict[str, object], key: str, level: str) -> str:
    intervals = result.get("ci")
    interval = intervals.get(key) if isinstance(intervals, dict) else None
    if isinstance(interval, list) and len(interval) == 2:
        return f"; {level} {_percent(interval[0])} to {_percent(interval[1])}"
    return ""


def _model_note(model: ModelInUse, card: StoredReportCard | None, zone: ZoneInfo) -> str:
    """Which model searches use, since when, and its figures in plain words."""
    if model.model_key is None:
        sentence = (
            f"Searches use the built-in face model {model.name}, in use since the workspace began."
        )
    else:
        since = "" if model.since is None else f" since {model.since.astimezone(zone):%Y-%m-%d}"
        sentence = (
            f"Searches use the face model {model.name} (model key {model.model_key}), in "
            f"use{since}."
        )
    if card is None:
        return sentence + " No report card of this model is recorded: its accuracy is unmeasured."
    result = card.result
    declared = result.get("face_model")
    licence = declared.get("licence") if isinstance(declared, dict) else None
    bootstrap = result.get("bootstrap")
    level = bootstrap.get("level") if isinstance(bootstrap, dict) else None
    level_text = f"{100 * float(level):.0f} % interval" if isinstance(level, float) else "interval"
    rank1, fnir = result.get("rank1"), result.get("fnir_at_fpir_0.01")
    return (
        f"{sentence} Its latest report card (dataset {Path(card.dataset).name or card.dataset}, "
        f"measured {card.created_at.astimezone(zone):%Y-%m-%d}) says: in "
        f"{_percent(rank1)} of searches for someone in the gallery, that person was the "
        f"first candidate (rank-1{_percent_interval(result, 'rank1', level_text)}); at the "
        "score threshold where 1 in 100 searches for someone not in the gallery still "
        f"returns a candidate, {_percent(fnir)} of searches for someone in the gallery did "
        "not return them (FNIR at FPIR 0.01"
        f"{_percent_interval(result, 'fnir_at_fpir_0.01', level_text)})."
        + ("" if licence is None else f" Its licence, as declared: {licence}.")
    )
