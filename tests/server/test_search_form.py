"""The search form's agency list: "another agency" stands for the name typed beside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from candor.server.auth import SESSION_COOKIE
from candor.server.security import token_digest
from candor.server.web import OTHER_AGENCY
from tests.server.support import CASE, DemoServer

pytestmark = pytest.mark.xdist_group("server")


@pytest.fixture
def analyst(shared_demo: DemoServer) -> Iterator[tuple[DemoServer, str]]:
    token = shared_demo.token("ana")
    shared_demo.client.cookies.set(SESSION_COOKIE, token)
    csrf = shared_demo.app.state.candor.guard.csrf_for("session:" + token_digest(token))
    yield shared_demo, csrf
    shared_demo.client.cookies.clear()


def check(demo: DemoServer, csrf: str, **fields: str) -> str:
    photo = demo.photos["collins-probe.jpg"]
    answer = demo.client.post(
        "/search/check",
        data={**CASE, "csrf": csrf, **fields},
        files={"probe": (photo.name, photo.read_bytes(), "image/jpeg")},
    )
    return f"{answer.status_code} {answer.text}"


def test_another_agency_is_the_name_typed_beside_the_list(
    analyst: tuple[DemoServer, str],
) -> None:
    demo, csrf = analyst
    page = check(demo, csrf, requesting_agency=OTHER_AGENCY, other_agency="  County Sheriff ")
    assert page.startswith("200 ")
    assert "<dd>County Sheriff, Robbery</dd>" in page
    assert 'name="requesting_agency" value="County Sheriff"' in page


def test_another_agency_without_a_name_is_refused_in_one_line(
    analyst: tuple[DemoServer, str],
) -> None:
    demo, csrf = analyst
    page = check(demo, csrf, requesting_agency=OTHER_AGENCY, other_agency=" ")
    assert page.startswith("400 ")
    assert "type its name beside the list" in page
