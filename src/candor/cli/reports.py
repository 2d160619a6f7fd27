"""`candor report usage` and `candor report transparency`: audited reads of the log.

Both are computed as of the latest signed checkpoint, after the log is verified and the
store reconciled with it; a disagreement refuses the report (and the refusal is logged).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import add_literal_row, emit_json, fail, reported_errors, stdout
from candor.cli.session import logged_in
from candor.reports import (
    FLAG_LABELS,
    MEASURE_LABELS,
    MEASURES,
    ReportError,
    Row,
    TransparencyReport,
    UsageQuery,
    UsageReport,
    transparency_html,
    transparency_json,
    transparency_report,
    usage_csv,
    usage_html,
    usage_json,
    usage_report,
)
from candor.workflow.reporting import ReportSource, generate_report, publish_report

report_app = typer.Typer(
    help="Reports from the audit log: usage (for oversight) and transparency (for the public)."
)
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write the report as one HTML file here.")
]


def register(app: typer.Typer) -> None:
    """Add `candor report ...` to the app."""
    app.add_typer(report_app, name="report")


def _date(text: str, option: str, as_json: bool) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date in YYYY-MM-DD form", as_json=as_json)


@report_app.command("usage")
def usage(
    date_from: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD), inclusive.")],
    date_to: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.")],
    unit: Annotated[str | None, typer.Option(help="Only users of this unit.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user.")] = None,
    html: HtmlOption = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Also write every breakdown as CSV here.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Who searched, for whom, for what, when, and what came of it; with anomaly flags."""
    try:
        query = UsageQuery(
            _date(date_from, "--from", as_json), _date(date_to, "--to", as_json), unit, user
        )
    except ValueError as error:
        fail(str(error), as_json=as_json)

    def compute(source: ReportSource) -> UsageReport:
        return usage_report(source.workspace, source.verifier_key, query)

    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        report = generate_report(
            workflow, actor, "usage", query.period(), compute, refusals=(ReportError,)
        )
    written = []
    if html is not None:
        html.write_text(usage_html(report), encoding="utf-8")
        written.append(html)
    if csv is not None:
        csv.write_text(usage_csv(report), encoding="utf-8")
        written.append(csv)
    if as_json:
        emit_json({"ok": True, "report": usage_json(report), "written": written})
        return
    print_usage(report)
    for path in written:
        stdout.print(f"Wrote {path}")


@report_app.command("transparency")
def transparency(
    year: Annotated[int, typer.Option(min=1970, max=9999, help="The calendar year.")],
    html: HtmlOption = None,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Also publish it: the public /transparency page (no login) shows this copy.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The public report for a year: aggregates only, counts from 1 to 4 shown as <5."""

    def compute(source: ReportSource) -> TransparencyReport:
        return transparency_report(source.workspace, source.verifier_key, year)

    period = {"year": year}
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        if publish:
            report, _ = publish_report(
                workflow,
                actor,
                "transparency",
                period,
                compute,
                transparency_json,
                refusals=(ReportError,),
            )
        else:
            report = generate_report(
                workflow, actor, "transparency", period, compute, refusals=(ReportError,)
            )
    if html is not None:
        html.write_text(transparency_html(report), encoding="utf-8")
    if as_json:
        emit_json(
            {
                "ok": True,
                "report": transparency_json(report),
                "written": [html] if html else [],
                "published": publish,
            }
        )
        return
    _banner(report.purpose)
    stdout.print(f"[bold]{report.headline}[/]")
    stdout.print(report.as_of.sentence())
    stdout.print(report.period_end_note)
    if html is not None:
        stdout.print(f"Wrote {html}")
    if publish:
        stdout.print(f"Published: /transparency/{year} shows this copy to anyone, with no login.")


def _banner(purpose: str) -> None:
    if purpose != "operational":
        stdout.print(f"[bold white on red] {purpose.upper()} workspace: not real casework [/]")


# Short headers so that eleven measures fit a terminal; the HTML and CSV spell them out.
_SHORT = {
    "requested": "req",
    "denied": "denied",
    "needed_approval": "appr?",
    "approved": "appr",
    "rejected": "rej",
    "run": "run",
    "reviewed": "revd",
    "leads_released": "leads",
    "repeat_searches": "rpt",
    "outside_agency": "outs",
    "quota_reached": "quota",
}
_LEGEND = "; ".join(f"{_SHORT[name]} = {MEASURE_LABELS[name]}" for name in MEASURES)


def _counts_table(title: str, key: str, rows: tuple[Row, ...], *, with_unit: bool) -> Table:
    table = Table(title=title, title_justify="left", padding=(0, 1), pad_edge=False)
    table.add_column(key, no_wrap=True, min_width=8)
    if with_unit:
        table.add_column("unit", no_wrap=True, min_width=8)
    for name in MEASURES:
        table.add_column(_SHORT[name], justify="right")
    for row in rows:
        cells = [row.key, *([row.unit or ""] if with_unit else [])]
        add_literal_row(table, *cells, *(f"{value:,}" for value in row.counts.as_dict().values()))
    return table


def print_usage(report: UsageReport) -> None:
    """The usage report at the terminal: headline, basis, every breakdown, reasons, flags."""
    _banner(report.purpose)
    stdout.print(f"[bold]{report.headline}[/]")
    stdout.print(report.as_of.sentence())
    stdout.print(f"Columns: {_LEGEND}.")
    for name, title, rows in report.breakdowns():
        stdout.print(_counts_table(title, name.replace("_", " "), rows, with_unit=name == "user"))
    reasons = Table(title="Denials by reason", title_justify="left")
    reasons.add_column("reason")
    reasons.add_column("denials", justify="right")
    for code, count in report.denial_reasons:
        add_literal_row(reasons, code, f"{count:,}")
    stdout.print(reasons)
    print_board(report)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", padding=(0, 1), pad_edge=False)
    for column in columns:
        table.add_column(column)
    return table


def print_board(report: UsageReport) -> None:
    """The ranked flags and the board's answers, as the HTML and CSV give them."""
    if report.flags:
        flags = _table("Flags, ranked (furthest from peers first)", "#", "flag", "user", "score")
        for rank, flag in enumerate(report.flags, start=1):
            score = "rule" if flag.score is None else f"{flag.score:.1f}"
            add_literal_row(
                flags, str(rank), FLAG_LABELS.get(flag.kind, flag.kind), flag.user, score
            )
        stdout.print(flags)
        for rank, flag in enumerate(report.flags, start=1):
            stdout.print(f"{rank}. {flag.explanation}", markup=False)
    else:
        stdout.print("No flags in this period.")
    if report.previous_period is not None:
        first, last = report.previous_period
        changes = _table(
            f"This period against the previous one ({first} to {last})",
            "figure", "this period", "previous", "change",
        )  # fmt: skip
        for change in report.comparison:
            add_literal_row(
                changes,
                change.label,
                _number(change.current),
                _number(change.previous),
                _number(change.change),
            )
        stdout.print(changes)
    cases = _table(
        f"Sparing use: {report.distinct_cases:,} distinct cases, "
        f"{_number(report.searches_per_case)} searches per case",
        "user", "requests", "cases", "per case", "busiest case",
    )  # fmt: skip
    for use in report.cases_by_user:
        add_literal_row(
            cases,
            use.user,
            f"{use.requests:,}",
            f"{use.cases:,}",
            _number(use.searches_per_case),
            f"{use.busiest_case} ({use.busiest_case_requests})",
        )
    stdout.print(cases)
    repeats = _table(
        "Repeat searches: who decided, and why",
        "request", "requester", "repeats request", "decision", "by", "reason",
    )  # fmt: skip
    for repeat in report.repeats:
        add_literal_row(
            repeats,
            str(repeat.search_id),
            repeat.requester,
            str(repeat.earlier_search_id),
            repeat.decision,
            repeat.approver or "—",
            repeat.reason or "—",
        )
    stdout.print(repeats)
    denials = _table("Denials by reason, per user", "user", "reason", "denials")
    for user, reasons in report.denials_by_user:
        for code, count in reasons:
            add_literal_row(denials, user, code, f"{count:,}")
    stdout.print(denials)
    agreement = report.agreement
    if agreement is not None and agreement.rate is not None:
        stdout.print(
            f"Examiner agreement: of {agreement.pairs:,} pairs of verdicts on "
            f"{agreement.candidates:,} candidates, {agreement.agreed:,} agreed and "
            f"{agreement.disagreed:,} disagreed ({agreement.rate:.0%}).",
            markup=False,
        )
    else:
        stdout.print("Examiner agreement: no candidate had verdicts from two examiners.")
    times = _table("Time to review (hours)", "step", "searches", "median", "90th percentile")
    for timing in report.review_times:
        add_literal_row(
            times,
            timing.label,
            f"{timing.count:,}",
            _number(timing.median_hours),
            _number(timing.p90_hours),
        )
    stdout.print(times)
    outcomes = _table("What came of each lead", "outcome", "leads")
    for outcome, count in report.lead_outcomes:
        add_literal_row(outcomes, outcome.replace("_", " "), f"{count:,}")
    stdout.print(outcomes)
    overdue = _table(
        f"Candidate lists overdue for review: {len(report.overdue):,}",
        "request", "requester", "case", "days waiting", "limit",
    )  # fmt: skip
    for waiting in report.overdue:
        add_literal_row(
            overdue,
            str(waiting.search_id),
            waiting.requester,
            waiting.case_number,
            str(waiting.days_waiting),
            str(waiting.limit_days),
        )
    stdout.print(overdue)
