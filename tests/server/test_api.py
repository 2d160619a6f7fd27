"""The API and the web session rules, over httpx (FastAPI's TestClient)."""

from __future__ import annotations

import io
import logging
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from candor.server.app import MAX_BODY_BYTES, create_app
from candor.server.auth import PRE_LOGIN_COOKIE, SESSION_COOKIE
from candor.workflow import Workflow
from candor.workflow.server_state import clear_failed_logins
from candor.workflow.workspaces import create_workspace
from tests.agency import PASSWORD
from tests.server.support import CASE, SETUP_TOKEN, DemoServer

pytestmark = pytest.mark.xdist_group("server")


def upload(path: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"probe": (path.name, path.read_bytes(), "image/jpeg")}


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_openapi_is_public_and_docs_load_nothing_external(demo: DemoServer) -> None:
    answer = demo.client.get("/openapi.json")
    assert answer.status_code == 200
    assert "/api/searches" in answer.json()["paths"]
    assert demo.client.get("/docs").status_code == 404


def test_root_sends_visitors_to_log_in(demo: DemoServer) -> None:
    answer = demo.client.get("/", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


def test_lock_out_after_five_failures_even_with_the_right_password(demo: DemoServer) -> None:
    try:
        for _ in range(5):
            wrong = demo.client.post("/api/login", json={"username": "eli", "password": "x" * 12})
            assert wrong.status_code == 401
        right = demo.client.post("/api/login", json={"username": "eli", "password": PASSWORD})
        assert right.status_code == 429
        assert int(right.headers["Retry-After"]) > 0
        other = demo.client.post("/api/login", json={"username": "eve", "password": PASSWORD})
        assert other.status_code == 200
    finally:
        # The lock-out is the workspace's now, and later tests log in as eli.
        clear_failed_logins(demo.agency.workflow, "eli")


def test_idle_sessions_end_and_tokens_from_elsewhere_are_refused(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [datetime.now(UTC)]
    monkeypatch.setattr(demo.agency.workflow, "clock", lambda: now[0])
    app = create_app(demo.agency.workflow, idle_seconds=60)
    client = TestClient(app)
    token = client.post("/api/login", json={"username": "ana", "password": PASSWORD}).json()[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=auth).status_code == 200
    now[0] += timedelta(seconds=59)
    assert client.get("/api/me", headers=auth).status_code == 200
    now[0] += timedelta(seconds=61)
    assert client.get("/api/me", headers=auth).status_code == 401
    # Ended in the workflow too: no other server accepts it either.
    fresh = create_app(demo.agency.workflow)
    assert TestClient(fresh).get("/api/me", headers=auth).status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer made-up"}).status_code == 401


def test_web_login_sets_a_strict_http_only_cookie_and_forms_need_csrf(demo: DemoServer) -> None:
    client = demo.client
    page = client.get("/login")
    assert PRE_LOGIN_COOKIE in page.cookies
    forged = client.post("/login", data={"username": "ana", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 403
    answer = client.post(
        "/login",
        data={"username": "ana", "password": PASSWORD, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    home = client.get("/home")
    assert home.status_code == 200 and "Demo workspace" in home.text
    assert "no-store" in home.headers["cache-control"]
    assert "default-src 'self'" in home.headers["content-security-policy"]
    no_csrf = client.post("/logout", follow_redirects=False)
    assert no_csrf.status_code == 403
    # A bearer token is not a page session, and a cookie is not an API credential.
    assert client.get("/api/me").status_code == 401
    logout = client.post("/logout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert logout.status_code == 303
    assert client.get("/home", follow_redirects=False).status_code == 303


def test_https_cookies_are_secure(demo: DemoServer) -> None:
    client = TestClient(demo.app, base_url="https://candor.example")
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"username": "sam", "password": PASSWORD, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert "Secure" in answer.headers["set-cookie"]


def test_the_governed_path_through_the_api(demo: DemoServer) -> None:
    client, photos = demo.client, demo.photos
    checked = client.post(
        "/api/probe-checks", headers=demo.auth("ana"), files=upload(photos["hopper-blurred.png"])
    )
    assert checked.status_code == 200
    assert checked.json()["faces"][0]["usable"] is False
    assert "quality gate" in checked.json()["verdict"]

    first = client.post(
        "/api/searches",
        headers=demo.auth("ana"),
        data={**CASE, "case_number": "2026-API-1"},
        files={"probe": ("hopper.jpg", photos["hopper.jpg"].read_bytes(), "image/jpeg")},
    )
    assert first.status_code == 200, first.text
    search_id = first.json()["search_id"]
    assert first.json()["status"] in ("completed", "pending_approval")
    if first.json()["status"] == "pending_approval":
        # The shared agency may have searched this photo before: a supervisor approves it.
        decided = client.post(
            f"/api/approvals/{search_id}",
            headers=demo.auth("sam"),
            json={"decision": "approve", "reason": "new evidence"},
        )
        assert decided.status_code == 200
        ran = client.post(f"/api/requests/{search_id}/run", headers=demo.auth("ana"))
        assert ran.json()["status"] == "completed"
    # The requester never sees her own candidates, nor reviews them.
    own = client.get(f"/api/requests/{search_id}/candidates", headers=demo.auth("ana"))
    assert own.status_code == 403
    candidates = client.get(
        f"/api/requests/{search_id}/candidates?faces=true", headers=demo.auth("eve")
    )
    assert candidates.status_code == 200
    body = candidates.json()
    assert body["candidates"][0]["subject_ref"] == "DEMO-0002"
    assert body["faces"]["probe_png"] and body["faces"]["candidates"][0]["provenance"]
    for examiner in ("eve", "eli"):
        verdict = client.post(
            f"/api/requests/{search_id}/candidates/1/verdict",
            headers=demo.auth(examiner),
            json={"verdict": "possible_match", "rationale": f"{examiner}: features agree"},
        )
        assert verdict.status_code == 200, verdict.text
    again = client.post(
        f"/api/requests/{search_id}/candidates/1/verdict",
        headers=demo.auth("eve"),
        json={"verdict": "not_a_match", "rationale": "second thoughts"},
    )
    assert again.status_code == 409
    released = client.post(
        f"/api/requests/{search_id}/candidates/1/release",
        headers=demo.auth("eve"),
        json={"reason": "two examiners agree"},
    )
    assert released.status_code == 200 and released.json()["released"] is True
    leads = client.get(f"/api/requests/{search_id}/leads", headers=demo.auth("ana"))
    assert [lead["rank"] for lead in leads.json()["candidates"]] == [1]
    # Nobody else's requests can be run, and requests are shown only to those involved.
    assert client.post(f"/api/requests/{search_id}/run", headers=demo.auth("eve")).status_code in (
        403,
        409,
    )
    assert client.get(f"/api/requests/{search_id}", headers=demo.auth("ada")).status_code == 200

    verified = client.get("/api/audit/verification", headers=demo.auth("ada"))
    assert verified.status_code == 200 and verified.json()["ok"] is True
    proof = client.get("/api/audit/entries/1/proof", headers=demo.auth("ada"))
    assert proof.status_code == 200 and proof.json()["seq"] == 1
    export = client.post("/api/audit/export", headers=demo.auth("ada"))
    assert export.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert any(name.endswith("entries.jsonl") for name in names)
    assert any(name.endswith("audit.vkey") for name in names)
    tar = client.post("/api/audit/export?format=tar", headers=demo.auth("ada"))
    assert tar.headers["content-type"] == "application/gzip"


def test_workflow_refusals_are_4xx_with_one_line(demo: DemoServer) -> None:
    client = demo.client
    missing = client.get("/api/requests/999999", headers=demo.auth("ana"))
    assert (missing.status_code, missing.json()) == (400, {"error": "no request 999999"})
    not_an_image = client.post(
        "/api/searches",
        headers=demo.auth("ana"),
        data=CASE,
        files={"probe": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert not_an_image.status_code == 400
    assert "notes.jpg" in not_an_image.json()["error"]
    blank = client.post(
        "/api/approvals/1", headers=demo.auth("sam"), json={"decision": "approve", "reason": " "}
    )
    assert blank.status_code == 400 and "reason" in blank.json()["error"]
    self_confirm = client.post("/api/changes/999999/confirm", headers=demo.auth("admin1"))
    assert self_confirm.status_code == 404


def test_bodies_over_the_limit_are_refused_before_they_are_read(demo: DemoServer) -> None:
    answer = demo.client.post(
        "/api/searches",
        headers={**demo.auth("ana"), "Content-Length": str(MAX_BODY_BYTES + 1)},
        content=b"x" * 10,
    )
    assert answer.status_code == 413


def test_tokens_and_passwords_never_reach_the_log(
    demo: DemoServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        token = demo.token("sam")
        demo.client.get("/api/me", headers=demo.auth("sam"))
        demo.client.post("/api/login", json={"username": "sam", "password": "wrong password!"})
    text = caplog.text
    assert token not in text and PASSWORD not in text and "wrong password!" not in text


def test_first_run_needs_the_setup_token_once(tmp_path: Path) -> None:
    workflow = Workflow(create_workspace(tmp_path / "fresh", purpose="demo"))
    client = TestClient(create_app(workflow, setup_token=SETUP_TOKEN))
    assert client.get("/", follow_redirects=False).headers["location"] == "/first-run"
    page = client.get("/first-run")
    assert "Setup token" in page.text and "Demo workspace" in page.text
    admin = {
        "unit": "Records",
        "certificate_ref": "FRT-1",
        "certificate_expires": "2030-12-31",
        "password": PASSWORD,
    }
    form = {
        "csrf": csrf_of(page.text),
        **{f"first_{key}": value for key, value in admin.items()},
        **{f"second_{key}": value for key, value in admin.items()},
        "first_username": "avery",
        "second_username": "blake",
    }
    wrong = client.post("/first-run", data={**form, "setup_token": "guess"})
    assert wrong.status_code == 403
    made = client.post("/first-run", data={**form, "setup_token": SETUP_TOKEN})
    assert made.status_code == 200 and "avery" in made.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    again = client.post(
        "/first-run", data={**form, "setup_token": SETUP_TOKEN}, follow_redirects=False
    )
    assert again.status_code == 303  # users exist: first run is over
    login = client.post("/api/login", json={"username": "avery", "password": PASSWORD})
    assert login.status_code == 200
    workflow.close()


def test_setup_token_guesses_are_limited(tmp_path: Path) -> None:
    workflow = Workflow(create_workspace(tmp_path / "fresh", purpose="demo"))
    client = TestClient(create_app(workflow, setup_token=SETUP_TOKEN))
    page = client.get("/first-run")
    form = {"csrf": csrf_of(page.text), "setup_token": "guess"}
    for key in ("username", "unit", "certificate_ref", "password"):
        form[f"first_{key}"] = form[f"second_{key}"] = "x"
    form["first_certificate_expires"] = form["second_certificate_expires"] = "2030-01-01"
    statuses = [client.post("/first-run", data=form).status_code for _ in range(6)]
    assert statuses == [403] * 5 + [429]
    form["setup_token"] = SETUP_TOKEN
    assert client.post("/first-run", data=form).status_code == 429
    workflow.close()
