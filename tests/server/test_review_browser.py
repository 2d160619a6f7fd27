"""Review in a real browser (issue 14's review faults): the second examiner reviews blind,
Release is not offered after one examiner's verdict alone, a refusal prints its message
once, the review page shows both whole photos with their face boxes, and the requester
records what came of a released lead. Fixtures as in test_browser.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from candor.server.app import create_app
from candor.workflow import RequestForm, decide_approval, request_search, run_approved
from tests.agency import PASSWORD, Agency
from tests.server.support import CASE
from tests.server.test_browser import ARGS, CHROMIUM, VIEWPORT, _browser_or_skip, live, shots

pytestmark = pytest.mark.xdist_group("server")
__all__ = ["live", "shots"]  # fixtures, used by name


def _search(agency: Agency, photo: Path) -> int:
    form = RequestForm(**{**CASE, "case_number": "2026-BLIND-1"})
    outcome = request_search(agency.workflow, agency["ana"], photo, form)
    if outcome.status == "pending_approval":  # another test searched this photo before
        decide_approval(
            agency.workflow, agency["sam"], outcome.search_id, approve=True, reason="blind test"
        )
        outcome = run_approved(agency.workflow, agency["ana"], outcome.search_id)
    assert outcome.status == "completed"
    return outcome.search_id


def test_blind_review_release_and_outcome_in_a_browser(
    demo_home: tuple[Agency, dict[str, Path]],
    live: Callable[[FastAPI], str],
    shots: Path,
) -> None:
    _browser_or_skip()
    from playwright.sync_api import Page, expect, sync_playwright

    agency, photos = demo_home
    search_id = _search(agency, photos["collins-probe.jpg"])
    base = live(create_app(agency.workflow))
    review = f"{base}/review/{search_id}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)

        def as_user(name: str) -> Page:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(base + "/login")
            page.get_by_label("Username").fill(name)
            page.get_by_label("Password").fill(PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url("**/home")
            return page

        def shot(page: Page, name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        def give_verdict(page: Page, text: str) -> None:
            candidate = page.locator("#candidate-1")
            candidate.get_by_label(re.compile("Rationale")).fill(text)
            candidate.get_by_role("button", name="Possible match").click()
            expect(page.locator("#candidate-1").get_by_text(text)).to_be_visible()

        eve = as_user("eve")
        eve.goto(review)
        # Review material: the whole probe and gallery photos, each boxed, side by side.
        photos_shown = eve.locator("#candidate-1 img.whole")
        expect(photos_shown).to_have_count(2)
        widths = photos_shown.evaluate_all("(images) => images.map(i => i.naturalWidth)")
        assert all(width > 200 for width in widths), widths  # whole photos, not 150 px crops
        expect(eve.locator("#candidate-1").get_by_text("Legal basis")).to_be_visible()
        expect(eve.locator("#candidate-1").get_by_text("Sharpness").first).to_be_visible()
        shot(eve, "review-blind")
        eve.locator("#candidate-1 a[title=Enlarge]").first.click()
        expect(eve.locator("#c1-probe .close")).to_be_visible()  # enlarged, CSS only
        eve.screenshot(path=str(shots / "review-zoom.png"))  # the viewport, as a person sees it
        eve.goto(review)
        give_verdict(eve, "eve: the ear and the brow agree")
        # Her verdict alone does not meet the policy's two examiners: no Release offered.
        expect(eve.get_by_role("button", name="Release as an investigative lead")).to_have_count(0)
        expect(eve.locator("#candidate-1").get_by_text("1 of the 2")).to_be_visible()

        eli = as_user("eli")
        eli.goto(review)
        # Blind: eve's verdict and rationale are not on eli's page before her own.
        expect(eli.get_by_text("eve: the ear")).to_have_count(0)
        expect(
            eli.locator("#candidate-1").get_by_text("1 verdict by other examiners")
        ).to_be_visible()
        shot(eli, "review-second-examiner")

        # A refusal page states its message once (a release the policy does not allow).
        token = eli.locator("input[name=csrf]").first.get_attribute("value")
        refused = eli.request.post(
            f"{review}/release", form={"csrf": token or "", "rank": "2", "reason": "try"}
        )
        assert refused.status >= 400
        assert refused.text().count("cannot be released") == 1

        give_verdict(eli, "eli: hairline and nose agree")
        expect(eli.locator("#candidate-1").get_by_text("eve: the ear")).to_be_visible()
        candidate = eli.locator("#candidate-1")
        candidate.get_by_label(re.compile("Reason for release")).fill("two examiners agree")
        candidate.get_by_role("button", name="Release as an investigative lead").click()
        expect(eli.locator("#candidate-1 .badge")).to_have_text("released as a lead")

        ana = as_user("ana")
        ana.goto(f"{base}/requests/{search_id}/leads")
        ana.get_by_label("Outcome").first.select_option("excluded")
        ana.get_by_label(re.compile("Note")).first.fill("alibi confirmed by CCTV")
        ana.get_by_role("button", name="Record the outcome").first.click()
        expect(ana.get_by_text("alibi confirmed by CCTV")).to_be_visible()
        expect(ana.locator("#lead-1")).to_contain_text("excluded")
        shot(ana, "leads-outcome")
        browser.close()
