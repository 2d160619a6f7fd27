"""Report pages and API: the usage dashboard, the transparency report, evaluation results.

Every report is an audited read: the routes call the workflow's `generate_report`, which
checks `reports.read`, computes the report as of the latest signed checkpoint and records
`report.generated` (or `report.refused`). Nothing here counts anything itself.

The reports part renders self-contained HTML with an inline stylesheet and inline SVG
charts, and the SVG that Matplotlib writes styles its shapes with `style` attributes.
The server's CSP allows neither, and it stays that way. So:

- the dashboard is a server page, and each chart is shown as an <img> whose source is a
  data: URI of the chart's SVG: an image document runs no script and loads nothing, and
  the page's own CSP (img-src data:) covers it unchanged;
- the full report document is sent as it was rendered, its charts turned into such
  images, under a stricter CSP of its own: nothing may load (default-src 'none'), no
  script runs, and the only style allowed is the report's own stylesheet, by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import date, timedelta
from html import unescape
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from candor.reports import (
    ReportError,
    TransparencyReport,
    UsageQuery,
    UsageReport,
    transparency_from_json,
    transparency_html,
    transparency_json,
    transparency_report,
    usage_board_html,
    usage_csv,
    usage_html,
    usage_json,
    usage_report,
)
from candor.server.api import CallerDep, Json, StateDep, json_of, run
from candor.server.api_models import EvaluationAnswer, ReportAnswer
from candor.server.errors import RefusedError
from candor.server.state import ServerState
from candor.server.web import render
from candor.workflow import Actor
from candor.workflow.reporting import (
    ReportSource,
    generate_report,
    publish_report,
    published_report,
)

api_router = APIRouter(prefix="/api", tags=["reports"])
page_router = APIRouter(include_in_schema=False)

# The dashboard opens on the last four whole weeks and today.
DEFAULT_DAYS = 28
# Every week of the period is a bar of the weekly chart and a row of a table: a request
# for the year 1 to 9999 must not cost the server's one worker minutes of drawing.
MAX_PERIOD_DAYS = 3 * 366
Year = Annotated[int, PathParam(ge=1970, le=9999, description="The calendar year.")]
DateFrom = Annotated[date | None, Query(alias="from", description="First day, inclusive.")]
DateTo = Annotated[date | None, Query(alias="to", description="Last day, inclusive.")]
UnitFilter = Annotated[str | None, Query(max_length=200, description="Only users of this unit.")]
UserFilter = Annotated[str | None, Query(max_length=200, description="Only this user.")]

_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
_TEXT = re.compile(r"<text\b[^>]*>(.*?)</text>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")

DOCUMENT_CSP_BASE = (
    "default-src 'none'; img-src data:; script-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


# -- computing (audited) --------------------------------------------------------------------


def usage_query(
    date_from: date | None, date_to: date | None, unit: str | None, user: str | None, today: date
) -> UsageQuery:
    """The dashboard's filters as a usage query; by default the last four weeks."""
    last = date_to or today
    first = date_from or last - timedelta(days=DEFAULT_DAYS - 1)
    try:
        query = UsageQuery(first, last, unit or None, user or None)
    except ValueError as error:
        raise RefusedError(400, str(error)) from None
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise RefusedError(
            400, f"a usage report covers at most {MAX_PERIOD_DAYS} days; ask for a shorter period"
        )
    return query


def make_usage(state: ServerState, actor: Actor, query: UsageQuery) -> UsageReport:
    def compute(source: ReportSource) -> UsageReport:
        return usage_report(source.workspace, source.verifier_key, query)

    return run(
        state,
        generate_report,
        state.workflow,
        actor,
        "usage",
        query.period(),
        compute,
        refusals=(ReportError,),
    )


def make_transparency(state: ServerState, actor: Actor, year: int) -> TransparencyReport:
    def compute(source: ReportSource) -> TransparencyReport:
        return transparency_report(source.workspace, source.verifier_key, year)

    return run(
        state,
        generate_report,
        state.workflow,
        actor,
        "transparency",
        {"year": year},
        compute,
        refusals=(ReportError,),
    )


# -- charts and documents under the CSP ------------------------------------------------------


def svg_image(svg: str) -> dict[str, str]:
    """A chart as an <img> source and alt text (its words: title, labels, numbers)."""
    words = [" ".join(unescape(_TAG.sub("", text)).split()) for text in _TEXT.findall(svg)]
    alt = "; ".join(word for word in words if word) or "chart"
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return {"src": "data:image/svg+xml;base64," + encoded, "alt": alt[:1000]}


def chart_images(document: str) -> list[dict[str, str]]:
    """Every inline SVG chart of a rendered report, as images."""
    return [svg_image(match.group(0)) for match in _SVG.finditer(document)]


def _img_tag(svg: str) -> str:
    image = svg_image(svg)
    alt = image["alt"].replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return f'<img src="{image["src"]}" alt="{alt}">'


def document_response(document: str, filename: str | None = None) -> HTMLResponse:
    """A rendered report as its own page, charts as images, under the document CSP."""
    body = _SVG.sub(lambda match: _img_tag(match.group(0)), document)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"
        for style in _STYLE.findall(body)
    )
    styles = hashes or "'none'"
    headers = {"Content-Security-Policy": f"{DOCUMENT_CSP_BASE}; style-src {styles}"}
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return HTMLResponse(body, headers=headers)


def _usage_name(query: UsageQuery, suffix: str) -> str:
    return f"candor-usage-{query.date_from}-{query.date_to}.{suffix}"


# -- pages ----------------------------------------------------------------------------------


@page_router.get("/reports/usage")
def usage_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    unit: UnitFilter = None,
    user: UserFilter = None,
) -> Response:
    query = usage_query(date_from, date_to, unit, user, state.workflow.today())
    filters = {
        "from": query.date_from.isoformat(),
        "to": query.date_to.isoformat(),
        "unit": query.unit or "",
        "user": query.user or "",
    }
    try:
        report = make_usage(state, who.signed_in, query)
    except RefusedError as refused:
        return render(
            request,
            "usage.html",
            status=refused.status,
            title="Usage report",
            filters=filters,
            report=None,
            error=refused.message,
        )
    return render(
        request,
        "usage.html",
        title="Usage report",
        filters=filters,
        report=report,
        charts=chart_images(usage_html(report)),
        # Rendered by the reports part (autoescaped there): the same tables as the document.
        board=usage_board_html(report),
        downloads=_download_links(filters),
        year=query.date_to.year,
    )


def _download_links(filters: dict[str, str]) -> dict[str, str]:
    shown = urlencode({key: value for key, value in filters.items() if value})
    return {
        "html": f"/reports/usage/document?{shown}",
        "csv": f"/reports/usage/document?{shown}&format=csv",
    }


@page_router.get("/reports/usage/document")
def usage_document(
    state: StateDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    unit: UnitFilter = None,
    user: UserFilter = None,
    format: Annotated[Literal["html", "csv"], Query()] = "html",
) -> Response:
    query = usage_query(date_from, date_to, unit, user, state.workflow.today())
    report = make_usage(state, who.signed_in, query)
    if format == "csv":
        return Response(
            usage_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_usage_name(query, "csv")}"'},
        )
    return document_response(usage_html(report))


@page_router.get("/transparency")
def transparency_latest(state: StateDep) -> Response:
    """The year published last (else this year, which says it is not published yet)."""
    newest = run(state, published_report, state.workflow, "transparency")
    year = newest.period.get("year") if newest is not None else None
    if not isinstance(year, int):
        year = state.workflow.today().year
    return RedirectResponse(f"/transparency/{year}", status_code=303)


@page_router.get("/transparency/{year}")
def transparency_page(request: Request, state: StateDep, year: Year) -> Response:
    """The public report: the newest copy a report reader published, to anyone, no login."""
    published = run(state, published_report, state.workflow, "transparency", {"year": year})
    if published is None:
        return render(
            request,
            "error.html",
            status=404,
            title="Transparency report",
            message=f"The transparency report for {year} has not been published yet.",
        )
    report = transparency_from_json(published.document, published.published_at)
    return document_response(transparency_html(report))


@page_router.post("/transparency/{year}/publish")
def transparency_publish(state: StateDep, who: CallerDep, year: Year) -> Response:
    """A report reader makes the year's report and publishes it for the public page."""

    def compute(source: ReportSource) -> TransparencyReport:
        return transparency_report(source.workspace, source.verifier_key, year)

    run(
        state,
        publish_report,
        state.workflow,
        who.signed_in,
        "transparency",
        {"year": year},
        compute,
        transparency_json,
        refusals=(ReportError,),
    )
    return RedirectResponse(f"/transparency/{year}", status_code=303)


@page_router.get("/evaluation")
def evaluation_page(request: Request, state: StateDep, who: CallerDep) -> Response:
    year = state.workflow.today().year
    try:
        report = make_transparency(state, who.signed_in, year)
    except RefusedError as refused:
        return render(
            request,
            "evaluation.html",
            status=refused.status,
            title="Evaluation results",
            card=None,
            error=refused.message,
        )
    return render(
        request,
        "evaluation.html",
        title="Evaluation results",
        card=report.accuracy,
        note=report.accuracy_note,
        as_of=report.as_of.sentence(),
    )


# -- API ------------------------------------------------------------------------------------


@api_router.get(
    "/reports/usage",
    summary="The usage report for a period (audited)",
    response_model=ReportAnswer,
)
def api_usage(
    state: StateDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    unit: UnitFilter = None,
    user: UserFilter = None,
) -> Json:
    query = usage_query(date_from, date_to, unit, user, state.workflow.today())
    return json_of({"report": usage_json(make_usage(state, who.signed_in, query))})


@api_router.get(
    "/reports/usage.csv",
    summary="The usage report as CSV (audited)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def api_usage_csv(
    state: StateDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    unit: UnitFilter = None,
    user: UserFilter = None,
) -> Response:
    query = usage_query(date_from, date_to, unit, user, state.workflow.today())
    return Response(
        usage_csv(make_usage(state, who.signed_in, query)), media_type="text/csv; charset=utf-8"
    )


@api_router.get(
    "/reports/transparency/{year}",
    summary="The transparency report of a year",
    response_model=ReportAnswer,
)
def api_transparency(state: StateDep, who: CallerDep, year: Year) -> Json:
    return json_of({"report": transparency_json(make_transparency(state, who.signed_in, year))})


@api_router.get(
    "/evaluation/latest",
    summary="The latest accuracy report card's figures",
    response_model=EvaluationAnswer,
)
def api_evaluation(state: StateDep, who: CallerDep) -> Json:
    report = make_transparency(state, who.signed_in, state.workflow.today().year)
    card: Any = report.accuracy
    return json_of({"card": card, "note": report.accuracy_note, "as_of": report.as_of.sentence()})


__all__ = ["api_router", "page_router"]
