"""The audit browser page: the log filtered by case, user, action and day, newest first,
a page at a time, each entry with its inclusion proof on request."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from candor.server.auth import SESSION_COOKIE
from candor.server.security import token_digest
from tests.server.support import DemoServer

pytestmark = pytest.mark.xdist_group("server")


@pytest.fixture
def auditor(shared_demo: DemoServer) -> Iterator[DemoServer]:
    token = shared_demo.token("ada")
    shared_demo.client.cookies.set(SESSION_COOKIE, token)
    yield shared_demo
    shared_demo.client.cookies.clear()


def rows(html: str) -> list[tuple[int, str, str]]:
    """(entry, user, action) of each row of the entries table."""
    found = re.findall(
        r'<tr id="entry-(\d+)">\s*<td class="num">\d+</td>\s*<td>[^<]*</td>\s*'
        r"<td>([^<]*)</td>\s*<td><code>([^<]*)</code>",
        html,
    )
    return [(int(seq), user, action) for seq, user, action in found]


def test_the_front_page_verifies_and_lists_the_newest_entries(auditor: DemoServer) -> None:
    page = auditor.client.get("/audit", params={"limit": 10})
    assert page.status_code == 200, page.text
    assert "The log verifies" in page.text
    listed = rows(page.text)
    assert len(listed) == 10 and "Showing 1-10 of " in page.text
    assert [seq for seq, _, _ in listed] == sorted((seq for seq, _, _ in listed), reverse=True)
    assert 'rel="next">Older</a>' in page.text


def test_filters_by_user_and_action_keep_to_matching_entries(auditor: DemoServer) -> None:
    page = auditor.client.get("/audit", params={"user": "ana", "action": "auth.login"})
    assert page.status_code == 200, page.text
    listed = rows(page.text)
    assert listed and {(user, action) for _, user, action in listed} == {("ana", "auth.login")}
    # Browsing does not verify the whole log on every page.
    assert "The log verifies" not in page.text and "Verify the log now" in page.text
    assert 'option value="auth.login" selected' in page.text
    nothing = auditor.client.get("/audit", params={"case": "NO-SUCH-CASE"})
    assert rows(nothing.text) == [] and "Showing none, newest first." in nothing.text


def test_pages_link_older_and_newer_keeping_the_filters(auditor: DemoServer) -> None:
    first = auditor.client.get("/audit", params={"action": "auth.login", "limit": 2})
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', first.text)
    assert older, first.text
    link = older.group(1).replace("&amp;", "&")
    assert "action=auth.login" in link and "offset=2" in link and "limit=2" in link
    second = auditor.client.get(link)
    assert 'rel="prev">Newer</a>' in second.text
    assert max(seq for seq, _, _ in rows(second.text)) < min(seq for seq, _, _ in rows(first.text))


def test_an_entry_proves_on_request(auditor: DemoServer) -> None:
    auditor.client.post(
        "/audit/checkpoint",
        data={"csrf": auditor.app.state.candor.guard.csrf_for("session:" + digest(auditor))},
    )
    page = auditor.client.get("/audit", params={"user": "ada"})
    seq, _, _ = rows(page.text)[-1]
    proof_link = re.search(rf'<a href="([^"]*prove={seq}[^"]*)#proof"', page.text)
    assert proof_link, page.text
    proved = auditor.client.get(proof_link.group(1).replace("&amp;", "&"))
    assert "Leaf hash" in proved.text and f"&#34;seq&#34;:{seq}" in proved.text


def test_a_bad_day_is_refused_in_one_line(auditor: DemoServer) -> None:
    page = auditor.client.get("/audit", params={"since": "yesterday"})
    assert page.status_code == 422
    assert "since" in page.text and "Traceback" not in page.text
    backwards = auditor.client.get("/audit", params={"since": "2026-03-02", "until": "2026-03-01"})
    assert backwards.status_code == 400 and "must come before" in backwards.text


def digest(demo: DemoServer) -> str:
    return token_digest(demo.token("ada"))
