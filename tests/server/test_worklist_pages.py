"""What waits, in a real browser: counts on the home page, the approval card with its probe
and the earlier search, who approved a request and why, and the review list a page at a
time, oldest first (Playwright driving Debian's Chromium, as tests/server/test_browser.py).

Requests are written straight into the store (tests/worklist_rows.py): these pages show
rows, they search nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from candor.server.app import create_app
from candor.workflow.worklists import todo, todo_label
from tests.agency import PASSWORD, Agency, make_agency
from tests.server.test_browser import ARGS, CHROMIUM, VIEWPORT, _browser_or_skip, _free_port
from tests.worklist_rows import add_search, judge, photo

pytestmark = pytest.mark.xdist_group("server")


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(tmp_path_factory.mktemp("worklist-pages"), purpose="demo")
    made.ids = {  # type: ignore[attr-defined]
        "earlier": add_search(made, "ana", "2026-EARLY-1", days_ago=10),
        "repeat": add_search(
            made,
            "ana",
            "2026-REP-2",
            status="pending_approval",
            days_ago=1,
            probe=photo(),
        ),
        "other": add_search(made, "ana", "2026-REP-3", status="pending_approval", days_ago=0.5),
        "lists": [add_search(made, "ana", f"2026-L-{n}", days_ago=3 - n) for n in range(3)],
    }
    with made.workflow.workspace.session() as session, session.begin():
        from candor.store import SearchRequest

        row = session.get(SearchRequest, made.ids["repeat"])  # type: ignore[attr-defined]
        assert row is not None
        row.earlier_search_id = made.ids["earlier"]  # type: ignore[attr-defined]
    judge(made, made.ids["lists"][0], "eli", 1)  # type: ignore[attr-defined]
    yield made
    made.workflow.close()


@pytest.fixture(scope="module")
def base(agency: Agency) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(agency.workflow), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages are photographed: CANDOR_SCREENSHOTS, as test_browser.py does."""
    configured = os.environ.get("CANDOR_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("worklist-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def as_user(browser: Any, base: str, name: str) -> Any:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(base + "/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/home")
    return page


def test_home_says_what_waits_with_counts(
    agency: Agency, browser: Any, base: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    # The approval test may have decided one of the two already (tests run in any order).
    waiting = todo(agency.workflow, agency["sam"]).entry("approvals")
    assert waiting is not None and waiting.count in (1, 2)
    supervisor = as_user(browser, base, "sam")
    link = supervisor.get_by_role("link", name=todo_label("approvals", waiting.count))
    expect(link).to_have_attribute("href", "/approvals")
    expect(supervisor.get_by_role("alert")).to_contain_text(
        "1 candidate list in your unit is unreviewed past the policy's 7 days"
    )
    supervisor.screenshot(path=str(shots / "home-supervisor.png"), full_page=True)
    examiner = as_user(browser, base, "eve")
    reviews = examiner.locator("[data-kind=reviews]")
    expect(reviews.get_by_role("link")).to_have_text("4 candidate lists wait for your review")
    expect(reviews).to_contain_text(f"{agency.ids['earlier']}, case 2026-EARLY-1")  # type: ignore[attr-defined]
    expect(reviews).to_contain_text("overdue")
    analyst = as_user(browser, base, "ana")
    expect(analyst.locator("[data-kind=approved_to_run]")).to_contain_text(
        "No approved requests of yours wait to run"
    )


def test_the_approval_card_shows_probe_earlier_search_and_case(
    agency: Agency, browser: Any, base: str, shots: Path
) -> None:
    from playwright.sync_api import expect

    ids = agency.ids  # type: ignore[attr-defined]
    supervisor = as_user(browser, base, "sam")
    supervisor.goto(base + "/approvals")
    card = supervisor.locator("section.card", has=supervisor.locator(f"#pending-{ids['repeat']}"))
    expect(card).to_contain_text("2026-REP-2")
    repeats = card.locator(".earlier")
    expect(repeats).to_contain_text(f"request {ids['earlier']} of ")
    expect(repeats).to_contain_text("by ana, case 2026-EARLY-1, completed (another case)")
    probe = card.get_by_role("img", name=f"The probe photo of request {ids['repeat']}")
    expect(probe).to_be_visible()
    assert probe.evaluate("(image) => image.naturalWidth") == 240
    supervisor.screenshot(path=str(shots / "approvals.png"), full_page=True)

    card.get_by_label("Reason (recorded)").fill("new CCTV still on the case file")
    card.get_by_role("button", name="Approve").click()
    expect(supervisor.get_by_role("status")).to_contain_text(f"Request {ids['repeat']} approved")
    analyst = as_user(browser, base, "ana")
    analyst.goto(f"{base}/requests/{ids['repeat']}")
    decided = analyst.locator(".approval")
    expect(decided).to_contain_text("sam at ")
    expect(decided).to_contain_text("new CCTV still on the case file")
    expect(analyst.get_by_text("Approved by", exact=True)).to_be_visible()
    expect(analyst.locator(".earlier")).to_contain_text("case 2026-EARLY-1")
    expect(analyst.get_by_text("sam approved this request. It runs once.")).to_be_visible()
    analyst.screenshot(path=str(shots / "request-approved.png"), full_page=True)


def test_the_review_list_pages_oldest_first_and_marks_the_overdue(
    agency: Agency, browser: Any, base: str
) -> None:
    from playwright.sync_api import expect

    ids = agency.ids  # type: ignore[attr-defined]
    examiner = as_user(browser, base, "eli")
    examiner.goto(base + "/review?limit=2")
    rows = examiner.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("2026-EARLY-1")
    expect(rows.first).to_contain_text("overdue")
    # eli has reviewed 2026-L-0 already: three lists wait for him.
    expect(examiner.get_by_text("Showing 1-2 of 3, oldest first.")).to_be_visible()
    examiner.get_by_role("link", name="Next").click()
    expect(examiner.get_by_text("Showing 3-3 of 3, oldest first.")).to_be_visible()
    expect(rows.last).to_contain_text("2026-L-2")
    assert re.search(r"offset=2", examiner.url)
    examiner.goto(base + "/review?case=2026-L-1")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(5)).to_have_text("0")
    examiner.goto(base + "/review?overdue=1")
    expect(rows).to_have_count(1)
    assert str(ids["earlier"]) in rows.first.inner_text()


def test_a_bad_page_or_filter_is_one_line_not_a_500(browser: Any, base: str) -> None:
    analyst, examiner = as_user(browser, base, "ana"), as_user(browser, base, "eve")
    for page, query, named in (
        (analyst, "/requests?status=done", "status 'done' is not one of"),
        (analyst, "/requests?limit=0", "limit"),
        (examiner, "/review?offset=-1", "offset"),
    ):
        answer = page.goto(base + query)
        assert answer is not None and 400 <= answer.status < 500, (query, answer and answer.status)
        assert named in page.locator("main").inner_text(), query
