"""Forms from the policy in force, in a real browser (Playwright and Debian's Chromium).

The search form offers the policy's closed lists (home agency first and chosen), a photo
whose only face fails the quality gate gets a page that says so (it was a 500), and a role
the policy does not let search is offered no Search link. Skips without Chromium, as
tests/server/test_browser.py does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from candor.server.app import create_app
from tests.agency import PASSWORD, Agency, make_agency
from tests.server.test_browser import ARGS, CHROMIUM, VIEWPORT, _browser_or_skip, live

pytestmark = pytest.mark.xdist_group("server")
__all__ = ["live"]  # the live-server fixture, shared with the governed path's test

HOME = "Example Regional Investigation Unit"  # the two-reviewers example's home agency


def log_in(browser: object, base: str, name: str) -> object:
    page = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[attr-defined]
    page.goto(base + "/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/home")
    return page


def options(page: object, select: str) -> list[str]:
    values: list[str] = page.locator(f"#{select} option").evaluate_all(  # type: ignore[attr-defined]
        "(items) => items.map(o => o.value)"
    )
    return values


@pytest.fixture(scope="module")
def moratorium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    """The moratorium example: examiners may not search, no outside agencies."""
    agency = make_agency(
        Path(tmp_path_factory.mktemp("moratorium")), purpose="demo", example="moratorium"
    )
    yield agency
    agency.workflow.close()


def choose(page: object, field: str, value: str) -> None:
    """Set a case field, a list or (where a form still has one) free text."""
    locator = page.locator(f"#{field}")  # type: ignore[attr-defined]
    if locator.evaluate("(node) => node.tagName") == "SELECT":
        locator.select_option(value)
    else:
        locator.fill(value)


def test_the_search_form_offers_the_policys_lists(
    demo_home: tuple[Agency, dict[str, Path]], live: Callable[[FastAPI], str]
) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    agency, _ = demo_home
    base = live(create_app(agency.workflow))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = log_in(browser, base, "ana")
        page.goto(base + "/search")  # type: ignore[attr-defined]
        # The two-reviewers example's lists, in order; nothing it forbids.
        assert options(page, "probe_kind") == ["still_photo", "video_still"]
        assert options(page, "purpose") == [
            "",
            "deceased_identification",
            "investigative_lead",
            "missing_person",
            "victim_identification",
        ]
        expect(page.locator("#purpose")).to_have_value("investigative_lead")  # type: ignore[attr-defined]
        assert "robbery" in options(page, "offence_category")
        assert "burglary" not in options(page, "offence_category")
        agency_field = page.locator("#requesting_agency")  # type: ignore[attr-defined]
        expect(agency_field).to_have_value(HOME)
        assert options(page, "requesting_agency")[0] == HOME
        # Outside agencies are allowed here: the last choice names one in the text field.
        expect(page.get_by_label("Other agency")).to_be_visible()  # type: ignore[attr-defined]
        expect(page.locator("#requesting_unit")).to_have_value("Robbery")  # type: ignore[attr-defined]
        browser.close()


def test_a_photo_whose_only_face_fails_the_gate_gets_a_page_not_a_500(
    demo_home: tuple[Agency, dict[str, Path]],
    live: Callable[[FastAPI], str],
    tmp_path: Path,
) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    agency, photos = demo_home
    base = live(create_app(agency.workflow))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = log_in(browser, base, "ana")
        page.goto(base + "/search")  # type: ignore[attr-defined]
        choose(page, "case_number", "2026-FORMS-1")
        choose(page, "offence_category", "robbery")
        choose(page, "purpose", "investigative_lead")
        choose(page, "requesting_agency", HOME)
        page.get_by_label("Probe photo").set_input_files(str(photos["hopper-blurred.png"]))  # type: ignore[attr-defined]
        with page.expect_response("**/search/check") as answer:  # type: ignore[attr-defined]
            page.get_by_role("button", name="Check photo").click()  # type: ignore[attr-defined]
        # Before: usable[0] of an empty list, an HTTP 500.
        assert answer.value.status == 200
        alert = page.get_by_role("alert")  # type: ignore[attr-defined]
        expect(alert).to_contain_text("the only face found fails the quality gate: too blurred")
        expect(page.get_by_text("Eye distance")).to_be_visible()  # type: ignore[attr-defined]
        expect(page.get_by_role("button", name="Send request")).to_have_count(0)  # type: ignore[attr-defined]
        page.screenshot(path=str(tmp_path / "check-failed-face.png"), full_page=True)  # type: ignore[attr-defined]
        browser.close()


def test_a_role_the_policy_does_not_let_search_is_not_offered_search(
    moratorium: Agency, live: Callable[[FastAPI], str]
) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    base = live(create_app(moratorium.workflow))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        examiner = log_in(browser, base, "eve")
        nav = examiner.get_by_role("navigation", name="Main")  # type: ignore[attr-defined]
        expect(nav.get_by_role("link", name="Review")).to_be_visible()
        # The route serves examiners, but this policy grants them no search.request.
        expect(nav.get_by_role("link", name="Search")).to_have_count(0)
        expect(nav.get_by_role("link", name="Verify")).to_have_count(0)
        tiles = examiner.locator("main ul.cards")  # type: ignore[attr-defined]
        expect(tiles.get_by_role("link", name="Review")).to_be_visible()
        expect(tiles.get_by_role("link", name="Search")).to_have_count(0)
        examiner.goto(base + "/search")  # type: ignore[attr-defined]
        expect(examiner.locator("form[action='/search/check']")).to_have_count(0)  # type: ignore[attr-defined]
        # Supervisors here read reports but not the log.
        supervisor = log_in(browser, base, "sam")
        nav = supervisor.get_by_role("navigation", name="Main")  # type: ignore[attr-defined]
        expect(nav.get_by_role("link", name="Approvals")).to_be_visible()
        expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
        # No outside agencies: the home agency is the only choice and nothing is typed.
        analyst = log_in(browser, base, "ana")
        analyst.goto(base + "/search")  # type: ignore[attr-defined]
        assert options(analyst, "requesting_agency") == ["Example City Police Department"]
        expect(analyst.get_by_label("Other agency")).to_have_count(0)  # type: ignore[attr-defined]
        browser.close()
