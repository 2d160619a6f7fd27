"""The HTML reports as a browser renders them: the headline numbers are on the page."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from candor.reports import transparency_html, usage_html
from tests.reports.browser import chromium_missing_message, rendered_dom
from tests.reports.scenario import Scenario

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("reports")]


@pytest.fixture(scope="module")
def chromium() -> None:
    """Skips without Chromium, except under CI=true, where its absence fails."""
    missing = chromium_missing_message()
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(missing)
    pytest.skip(missing)


def text_of(dom: str) -> str:
    """The visible text of a DOM dump, whitespace collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", dom)
    return " ".join(html.unescape(without_tags).split())


def headline_in(dom: str) -> str:
    match = re.search(r'<p class="headline" id="headline">(.*?)</p>', dom, re.DOTALL)
    assert match, "no headline in the rendered page"
    return text_of(match.group(1))


def test_usage_report_headline_in_chromium(
    chromium: None, scenario: Scenario, tmp_path: Path
) -> None:
    assert scenario.usage is not None
    page = tmp_path / "usage.html"
    page.write_text(usage_html(scenario.usage), encoding="utf-8")
    dom = rendered_dom(page)
    assert headline_in(dom) == (
        "3 users requested 9 searches between 2027-01-01 and 2027-01-31; "
        "2 were denied and 6 were run."
    )
    text = text_of(dom)
    assert "EVALUATION — test data, not real casework" in text
    assert f"entries 1 to {scenario.usage.as_of.checkpoint_size:,}" in text
    # The charts are inline SVG with their text as text.
    assert dom.count("<svg") >= 3
    assert "Search requests per week, by user" in text
    # The board's questions, each a section of the page.
    for heading in (
        "Flags, ranked",
        "This period against the previous one",
        "Sparing use: cases and searches per case",
        "Repeat searches: who decided, and why",
        "Denials by reason, per user",
        "Examiner agreement and time to review",
        "What came of each lead",
        "Candidate lists overdue for review",
    ):
        assert heading in text, heading
    assert "new still in the file" in text  # sam's reason for approving S2


def test_transparency_report_headline_in_chromium(
    chromium: None, scenario: Scenario, tmp_path: Path
) -> None:
    assert scenario.transparency is not None
    page = tmp_path / "transparency.html"
    page.write_text(transparency_html(scenario.transparency), encoding="utf-8")
    dom = rendered_dom(page)
    assert headline_in(dom) == (
        "In 2027, 9 searches were requested; fewer than 5 were denied by the agency's "
        "policy and fewer than 5 led to an investigative lead being released."
    )
    assert "No accuracy report card recorded." in text_of(dom)
