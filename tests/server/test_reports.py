"""Report routes: audited usage and transparency reports, charts as images under the CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from candor.server.app import CONTENT_SECURITY_POLICY
from candor.server.auth import SESSION_COOKIE
from candor.server.reports import chart_images, document_response
from candor.server.security import token_digest
from tests.server.support import DemoServer

pytestmark = pytest.mark.xdist_group("server")


# The transparency year only the publishing test below uses.
YEAR = 2019


def entries(demo: DemoServer) -> int:
    answer = demo.client.get("/api/audit/verification", headers=demo.auth("ada"))
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["entries"]
    return count


def checkpointed(demo: DemoServer) -> None:
    answer = demo.client.post("/api/audit/checkpoints", headers=demo.auth("ada"))
    assert answer.status_code == 201, answer.text


def page(demo: DemoServer, username: str, path: str) -> tuple[int, str, dict[str, str]]:
    demo.client.cookies.set(SESSION_COOKIE, demo.token(username))
    try:
        answer = demo.client.get(path, follow_redirects=False)
    finally:
        demo.client.cookies.clear()
    return answer.status_code, answer.text, dict(answer.headers)


def test_usage_api_is_an_audited_read(demo: DemoServer) -> None:
    checkpointed(demo)
    before = entries(demo)
    answer = demo.client.get(
        "/api/reports/usage",
        params={"from": "2025-01-01", "to": "2027-12-31"},
        headers=demo.auth("sam"),
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()["report"]
    assert report["query"]["date_from"] == "2025-01-01"
    assert "headline" in report
    # One report.generated, plus the verification read that counts it.
    assert entries(demo) == before + 2


def test_usage_csv_and_filters(demo: DemoServer) -> None:
    checkpointed(demo)
    answer = demo.client.get(
        "/api/reports/usage.csv", params={"unit": "Robbery"}, headers=demo.auth("ada")
    )
    assert answer.status_code == 200, answer.text
    assert answer.text.startswith("breakdown,key,user_unit,")
    backwards = demo.client.get(
        "/api/reports/usage",
        params={"from": "2026-02-01", "to": "2026-01-01"},
        headers=demo.auth("ada"),
    )
    assert backwards.status_code == 400
    assert "detail" in backwards.json()
    ages = demo.client.get(
        "/api/reports/usage",
        params={"from": "0001-01-01", "to": "9999-12-31"},
        headers=demo.auth("ada"),
    )
    assert ages.status_code == 400
    assert "at most" in ages.json()["detail"]


def test_dashboard_shows_charts_as_images_under_the_server_csp(demo: DemoServer) -> None:
    checkpointed(demo)
    status, body, headers = page(demo, "ada", "/reports/usage?from=2025-01-01&to=2027-12-31")
    assert status == 200, body
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert body.count('<img src="data:image/svg+xml;base64,') == 3
    assert "<svg" not in body and "<style" not in body and "style=" not in body
    assert 'href="/reports/usage"' in body  # the navigation offers the dashboard
    # The board's questions, each a section, and the form that publishes the public report.
    for section in (
        "Flags, ranked",
        "This period against the previous one",
        "Sparing use: cases and searches per case",
        "Repeat searches: who decided, and why",
        "Denials by reason, per user",
        "Examiner agreement and time to review",
        "What came of each lead",
        "Candidate lists overdue for review",
    ):
        assert section in body, section
    assert 'action="/transparency/2027/publish"' in body


def test_full_report_document_allows_only_its_own_stylesheet(demo: DemoServer) -> None:
    checkpointed(demo)
    status, body, headers = page(
        demo, "sam", "/reports/usage/document?from=2025-01-01&to=2027-12-31"
    )
    assert status == 200, body
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'none'" in policy
    styles = re.findall(r"<style>(.*?)</style>", body, re.DOTALL)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "<svg" not in body and "data:image/svg+xml;base64," in body


def test_the_public_reads_the_published_transparency_report_without_a_login(
    demo: DemoServer,
) -> None:
    # A year no other test publishes (test_matrix publishes this year's report on the shared
    # demo), so that "nothing published yet" holds whatever ran before in the session.
    checkpointed(demo)
    # Nothing published yet: nothing to read, and no report is made for an anonymous caller.
    # What counting the entries itself costs (if anything), so that it is not mistaken.
    first = entries(demo)
    cost = entries(demo) - first
    before = entries(demo)
    unpublished = demo.client.get(f"/transparency/{YEAR}", follow_redirects=False)
    assert unpublished.status_code == 404
    assert "has not been published" in unpublished.text
    assert entries(demo) == before + cost
    # A report reader publishes the year's report: made (report.generated) and published.
    token = demo.token("ada")
    demo.client.cookies.set(SESSION_COOKIE, token)
    try:
        csrf = demo.app.state.candor.guard.csrf_for("session:" + token_digest(token))
        made = demo.client.post(
            f"/transparency/{YEAR}/publish", data={"csrf": csrf}, follow_redirects=False
        )
    finally:
        demo.client.cookies.clear()
    assert made.status_code == 303, made.text
    assert made.headers["location"] == f"/transparency/{YEAR}"
    latest = demo.client.get("/transparency", follow_redirects=False)
    assert (latest.status_code, latest.headers["location"]) == (303, f"/transparency/{YEAR}")
    # Anyone reads it now, with no login, as often as they like: no entry per view.
    published = entries(demo)
    for _ in range(2):
        answer = demo.client.get(f"/transparency/{YEAR}", follow_redirects=False)
        assert answer.status_code == 200, answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "<script" not in answer.text
        assert f"Face search transparency report, {YEAR}" in answer.text
        assert "Outside agencies that asked" in answer.text
        assert "Published " in answer.text
    assert entries(demo) == published + cost
    # Aggregates only: no user of the demo is named.
    for username in ("ana", "ada", "sam", "admin1"):
        assert f">{username}<" not in answer.text and f" {username} " not in answer.text
    # The live report stays a report reader's audited read.
    answer = demo.client.get("/api/reports/transparency/2026", headers=demo.auth("ada"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["report"]["year"] == 2026
    assert demo.client.get("/api/reports/transparency/2026").status_code == 401
    # Publishing needs a report reader.
    demo.client.cookies.set(SESSION_COOKIE, demo.token("ana"))
    try:
        refused = demo.client.post(f"/transparency/{YEAR}/publish", follow_redirects=False)
    finally:
        demo.client.cookies.clear()
    assert refused.status_code in (403, 400)


def test_evaluation_results_for_an_auditor(demo: DemoServer) -> None:
    checkpointed(demo)
    answer = demo.client.get("/api/evaluation/latest", headers=demo.auth("ada"))
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["card"] is None and found["note"]
    status, body, _ = page(demo, "ada", "/evaluation")
    assert status == 200 and found["note"] in body


def test_an_admin_without_reports_read_is_refused_by_the_policy(demo: DemoServer) -> None:
    answer = demo.client.get("/api/evaluation/latest", headers=demo.auth("admin1"))
    assert answer.status_code == 403
    assert "reports.read" in answer.json()["detail"]


def test_chart_alt_text_and_document_without_styles() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><text x="1">Denials &amp; reasons</text></svg>'
    (image,) = chart_images(f"<p>{svg}</p>")
    assert image["alt"] == "Denials & reasons"
    assert base64.b64decode(image["src"].split(",", 1)[1]).decode() == svg
    response = document_response(f"<html><body>{svg}</body></html>")
    assert "style-src 'none'" in response.headers["content-security-policy"]
    assert b'alt="Denials &amp; reasons"' in response.body
