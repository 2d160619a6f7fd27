"""A report in each of its forms: HTML (Jinja2 templates, inline SVG charts), CSV, JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from candor.reports.charts import bars_svg, weekly_by_user_svg
from candor.reports.facts import OUTCOMES
from candor.reports.transparency import PURGE_LABELS, TransparencyReport
from candor.reports.usage import FLAG_LABELS, MEASURE_LABELS, MEASURES, UsageReport

PURPOSE_BANNERS = {
    "evaluation": "EVALUATION — test data, not real casework",
    "demo": "DEMO — demonstration data, not real casework",
    "benchmark": "BENCHMARK — synthetic data, not real casework",
    "simulation": "SIMULATION — not real casework",
}
REASON_LABELS = {
    "disabled": "requester's account disabled",
    "role_conflict": "requester holds conflicting roles",
    "permission_missing": "requester's role may not search",
    "no_certificate": "no valid training certificate",
    "offence_not_allowed": "offence category not allowed",
    "purpose_not_allowed": "purpose not allowed",
    "probe_kind_not_allowed": "probe kind not allowed",
    "edited_probe_not_allowed": "edited probe not allowed",
    "outside_agency": "search for an outside agency",
    "quota_per_day": "daily quota reached",
    "quota_per_30_days": "30-day quota reached",
    "repeat_search": "repeat search",
    "no_policy": "no policy active",
    "probe_unusable": "probe photo unusable",
}


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("candor.reports", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["count"] = lambda value: f"{value:,}" if isinstance(value, int) else value
    environment.filters["reason"] = lambda code: REASON_LABELS.get(code, code)
    return environment


_ENVIRONMENT = _environment()


def _banner(purpose: str) -> str | None:
    return PURPOSE_BANNERS.get(purpose)


def usage_html(report: UsageReport) -> str:
    """The usage report as one self-contained HTML page."""
    charts = {
        "weekly": weekly_by_user_svg(report.weekly_by_user),
        "reasons": bars_svg(
            "Denials by reason (a denial may give several)",
            [(REASON_LABELS.get(code, code), n) for code, n in report.denial_reasons],
            colour="#D55E00",
        ),
        "outcomes": bars_svg(
            "What became of each request",
            [(OUTCOMES[name], n) for name, n in report.outcomes],
            colour="#009E73",
        ),
    }
    return _ENVIRONMENT.get_template("usage.html").render(
        report=report,
        banner=_banner(report.purpose),
        charts=charts,
        measures=MEASURES,
        labels=MEASURE_LABELS,
        outcome_labels=OUTCOMES,
        flag_labels=FLAG_LABELS,
    )


def usage_board_html(report: UsageReport) -> str:
    """The ranked flags and the board's answers, as an HTML fragment for another page."""
    return _ENVIRONMENT.get_template("_board.html").render(report=report, flag_labels=FLAG_LABELS)


def transparency_html(report: TransparencyReport) -> str:
    """The public transparency report as one self-contained HTML page."""
    return _ENVIRONMENT.get_template("transparency.html").render(
        report=report,
        banner=_banner(report.purpose),
        outcome_labels=OUTCOMES,
        purge_labels=PURGE_LABELS,
    )


CSV_COLUMNS = ("breakdown", "key", "user_unit", *MEASURES, "figure", "value", "previous", "change")


def usage_csv(report: UsageReport) -> str:
    """Every breakdown in one table: a `breakdown` column, its key, then the measures.

    Denial reasons follow as breakdown "denial_reason" with only `denied` filled; a
    spreadsheet filter on the first column gives any one table. The board's answers
    follow in long form (breakdowns named "board.*": a key, a `figure`, its `value`, and
    for the comparison the `previous` value and the `change`), and the ranked flags as
    breakdown "flag" (key: the user; figure: the kind; value: the score). The flags'
    sentences are in the HTML and JSON forms.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["total", "all", "", *report.totals.as_dict().values()])
    for name, _, rows in report.breakdowns():
        for row in rows:
            writer.writerow([name, row.key, row.unit or "", *row.counts.as_dict().values()])
    empty = [""] * len(MEASURES)
    denied_column = MEASURES.index("denied")
    for code, count in report.denial_reasons:
        values = list(empty)
        values[denied_column] = str(count)
        writer.writerow(["denial_reason", code, "", *values])
    for breakdown, key, unit, figure, value, *rest in _board_rows(report):
        writer.writerow([breakdown, key, unit, *empty, figure, _cell(value), *map(_cell, rest)])
    return buffer.getvalue()


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _board_rows(report: UsageReport) -> list[tuple[object, ...]]:
    """(breakdown, key, unit, figure, value[, previous, change]) of each board answer."""
    rows: list[tuple[object, ...]] = []
    for row in report.cases_by_user:
        for figure in ("requests", "cases", "searches_per_case", "busiest_case_requests"):
            rows.append(("board.cases", row.user, row.unit, figure, getattr(row, figure)))
    rows.append(("board.cases", "all", "", "distinct_cases", report.distinct_cases))
    rows.append(("board.cases", "all", "", "searches_per_case", report.searches_per_case))
    for repeat in report.repeats:
        key = str(repeat.search_id)
        rows.append(("board.repeat", key, "", "requester", repeat.requester))
        rows.append(("board.repeat", key, "", "earlier_search", repeat.earlier_search_id))
        rows.append(("board.repeat", key, "", "decision", repeat.decision))
        rows.append(("board.repeat", key, "", "approver", repeat.approver))
        rows.append(("board.repeat", key, "", "reason", repeat.reason))
    for user, reasons in report.denials_by_user:
        for code, count in reasons:
            rows.append(("board.denials_by_user", user, "", code, count))
    if report.agreement is not None:
        for figure in ("candidates", "pairs", "agreed", "disagreed", "rate"):
            rows.append(("board.agreement", "all", "", figure, getattr(report.agreement, figure)))
    for timing in report.review_times:
        for figure in ("count", "median_hours", "p90_hours"):
            rows.append(("board.review_time", timing.name, "", figure, getattr(timing, figure)))
    for outcome, count in report.lead_outcomes:
        rows.append(("board.lead_outcome", outcome, "", "leads", count))
    for overdue in report.overdue:
        key = str(overdue.search_id)
        rows.append(("board.overdue", key, "", "days_waiting", overdue.days_waiting))
    for change in report.comparison:
        rows.append(
            ("board.comparison", change.name, "", change.name, change.current,
             change.previous, change.change)
        )  # fmt: skip
    for flag in report.flags:
        rows.append(("flag", flag.user, flag.unit, flag.kind, flag.score))
    return rows


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def usage_json(report: UsageReport) -> dict[str, Any]:
    """The usage report as plain JSON values (breakdowns as lists of rows)."""
    document: dict[str, Any] = _jsonable(report)
    document["as_of"]["statement"] = report.as_of.sentence()
    document["denial_reasons"] = [
        {"code": code, "denied": count} for code, count in report.denial_reasons
    ]
    document["outcomes"] = {name: count for name, count in report.outcomes}
    document["weekly_by_user"] = {week: dict(users) for week, users in report.weekly_by_user}
    document["flag_rules"] = dict(report.flag_rules)
    document["lead_outcomes"] = dict(report.lead_outcomes)
    document["denials_by_user"] = {user: dict(reasons) for user, reasons in report.denials_by_user}
    return document


def transparency_json(report: TransparencyReport) -> dict[str, Any]:
    """The transparency report as plain JSON values; suppressed counts are the text "<5"."""
    document: dict[str, Any] = _jsonable(report)
    document["as_of"]["statement"] = report.as_of.sentence()
    document["outcomes"] = dict(report.outcomes)
    document["by_offence"] = [
        {"offence_category": row.offence_category, "total": row.total, **dict(row.outcomes)}
        for row in report.by_offence
    ]
    for key in (
        "denial_reasons",
        "gallery_by_source",
        "enrolments_by_source",
        "purges",
        "outside_agencies",
    ):
        document[key] = dict(getattr(report, key))
    if report.accuracy is not None:
        document["accuracy"]["results"] = dict(report.accuracy.results)
    return document
