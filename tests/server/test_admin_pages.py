"""The verification page and the user-administration forms, through the pages and the API."""

from __future__ import annotations

import pytest

from candor.server.auth import SESSION_COOKIE
from candor.server.security import token_digest
from tests.server.support import CASE, DemoServer

pytestmark = pytest.mark.xdist_group("server")


def as_page_user(demo: DemoServer, username: str) -> str:
    """Log `username`'s cookie in; returns the CSRF token for their forms."""
    token = demo.token(username)
    demo.client.cookies.set(SESSION_COOKIE, token)
    return demo.app.state.candor.guard.csrf_for("session:" + token_digest(token))


def test_verify_page_sends_a_one_to_one_request(demo: DemoServer) -> None:
    csrf = as_page_user(demo, "ana")
    try:
        assert 'name="second"' in demo.client.get("/verify").text
        photos = {
            name: (demo.photos[file].name, demo.photos[file].read_bytes(), "image/png")
            for name, file in (("first", "collins.png"), ("second", "collins-probe.jpg"))
        }
        answer = demo.client.post(
            "/verify",
            data={**CASE, "csrf": csrf, "first_face": "0"},
            files=photos,
            follow_redirects=False,
        )
    finally:
        demo.client.cookies.clear()
    assert answer.status_code == 303, answer.text
    search_id = int(answer.headers["location"].rsplit("/", 1)[1])
    status = demo.client.get(f"/api/requests/{search_id}", headers=demo.auth("ana"))
    assert status.status_code == 200 and status.json()["outcome"]["kind"] == "verify"


def test_role_grant_is_a_change_for_a_second_admin(demo: DemoServer) -> None:
    csrf = as_page_user(demo, "admin1")
    try:
        page = demo.client.post("/users/eli/roles", data={"role": "supervisor", "csrf": csrf})
    finally:
        demo.client.cookies.clear()
    assert page.status_code == 200, page.text
    assert "Granting supervisor to eli requested as change" in page.text
    pending = demo.client.get("/api/changes", headers=demo.auth("admin2")).json()["items"]
    change = next(c for c in pending if c["payload"].get("role") == "supervisor")
    rejected = demo.client.post(
        f"/api/changes/{change['id']}/reject",
        json={"reason": "test only"},
        headers=demo.auth("admin2"),
    )
    assert rejected.status_code == 200, rejected.text


def test_revoking_a_role_the_user_lacks_is_refused(demo: DemoServer) -> None:
    csrf = as_page_user(demo, "admin1")
    try:
        page = demo.client.post("/users/eli/roles/revoke", data={"role": "admin", "csrf": csrf})
    finally:
        demo.client.cookies.clear()
    assert page.status_code == 400
    assert "eli" in page.text


def test_certificate_update_takes_effect_at_once(demo: DemoServer) -> None:
    answer = demo.client.post(
        "/api/users/eli/certificate",
        json={"certificate_ref": "FRT-eli-2", "certificate_expires": "2031-01-31"},
        headers=demo.auth("admin1"),
    )
    assert answer.status_code == 200, answer.text
    users = demo.client.get("/api/users", headers=demo.auth("admin2")).json()["items"]
    eli = next(u for u in users if u["username"] == "eli")
    assert (eli["certificate_ref"], eli["certificate_expires"]) == ("FRT-eli-2", "2031-01-31")
    refused = demo.client.post(
        "/api/users/eli/certificate",
        json={"certificate_ref": "x", "certificate_expires": "2031-01-31"},
        headers=demo.auth("eve"),
    )
    assert refused.status_code == 403
