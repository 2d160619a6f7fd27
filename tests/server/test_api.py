"""The API and the web session rules, over httpx (FastAPI's TestClient)."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from candor.server import api
from candor.server.app import MAX_BODY_BYTES, create_app
from candor.server.auth import PRE_LOGIN_COOKIE, SESSION_COOKIE
from candor.workflow import Workflow, WorkspaceBusyError, retries
from candor.workflow.server_state import clear_failed_logins
from candor.workflow.workspaces import create_workspace
from tests.agency import PASSWORD, make_agency
from tests.server.support import CASE, SETUP_TOKEN, DemoServer
from tests.support import side_by_side

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
    assert first.status_code == 201, first.text
    search_id = first.json()["search_id"]
    # A new request is created: 201, and its own URL, where it stands from now on.
    assert first.headers["location"] == f"/api/requests/{search_id}"
    assert client.get(first.headers["location"], headers=demo.auth("ana")).status_code == 200
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
    outcome = client.post(
        f"/api/requests/{search_id}/candidates/1/outcome",
        headers=demo.auth("ana"),
        json={"outcome": "excluded", "note": "an alibi checked out"},
    )
    assert outcome.status_code == 201, outcome.text
    assert outcome.headers["location"] == f"/api/requests/{search_id}/leads"
    assert outcome.json()["current"]["outcome"] == "excluded"
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


def problem(answer: Response, status: int) -> dict[str, Any]:
    """The RFC 9457 problem an API refusal answers, checked for its shape and status."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:candor:problem:") and body["title"]
    assert body["detail"] and "\n" not in body["detail"]
    assert body["instance"] == answer.request.url.path
    return body


def test_workflow_refusals_are_4xx_with_one_line(demo: DemoServer) -> None:
    client = demo.client
    missing = client.get("/api/requests/999999", headers=demo.auth("ana"))
    assert problem(missing, 404)["detail"] == "no request 999999"
    not_an_image = client.post(
        "/api/searches",
        headers=demo.auth("ana"),
        data=CASE,
        files={"probe": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert "notes.jpg" in problem(not_an_image, 400)["detail"]
    blank = client.post(
        "/api/approvals/1", headers=demo.auth("sam"), json={"decision": "approve", "reason": " "}
    )
    assert "reason" in problem(blank, 400)["detail"]
    self_confirm = client.post("/api/changes/999999/confirm", headers=demo.auth("admin1"))
    assert self_confirm.status_code == 404


@pytest.mark.parametrize(
    ("user", "method", "path"),
    [
        ("ana", "GET", "/api/requests/999999"),
        ("eve", "GET", "/api/requests/999999/candidates"),
        ("ana", "GET", "/api/requests/999999/leads"),
        ("ana", "POST", "/api/requests/999999/run"),
        ("admin1", "GET", "/api/gallery/subjects/NO-SUCH-SUBJECT"),
        ("admin1", "POST", "/api/users/nobody/disable"),
        ("admin1", "POST", "/api/changes/999999/confirm"),
        ("ada", "GET", "/api/audit/entries/999999/proof"),
        ("ana", "GET", "/api/no-such-route"),
    ],
)
def test_missing_things_are_404_problems(
    shared_demo: DemoServer, user: str, method: str, path: str
) -> None:
    answer = shared_demo.client.request(method, path, headers=shared_demo.auth(user))
    problem(answer, 404)


def test_a_missing_job_is_a_404_page(shared_demo: DemoServer) -> None:
    client = TestClient(shared_demo.app)
    client.cookies.set(SESSION_COOKIE, shared_demo.token("admin1"))
    answer = client.get("/jobs/999999")
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"] and "no job 999999" in answer.text


def test_every_refusal_is_one_problem_shape(
    shared_demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    unknown = client.get("/api/me")
    body = problem(unknown, 401)
    assert body["type"] == "urn:candor:problem:not-authenticated"
    assert unknown.headers["www-authenticate"].startswith("Bearer")
    made_up = client.get("/api/me", headers={"Authorization": "Bearer made-up"})
    assert problem(made_up, 401) and made_up.headers["www-authenticate"].startswith("Bearer")
    assert "not logged in" in problem(client.post("/api/logout"), 401)["detail"]
    forbidden = client.get("/api/users", headers=auth("ana"))
    assert problem(forbidden, 403)["type"] == "urn:candor:problem:forbidden"
    invalid = client.get("/api/requests?limit=0", headers=auth("ana"))
    body = problem(invalid, 422)
    assert [error["field"] for error in body["errors"]] == ["query.limit"]
    wrong_method = client.put("/api/me", headers=auth("ana"))
    problem(wrong_method, 405)
    # Nothing answers {"error": ...} or FastAPI's {"detail": [...]} any more.
    for answer in (unknown, forbidden, invalid, wrong_method):
        assert "error" not in answer.json() and isinstance(answer.json()["detail"], str)

    def busy(*_args: object) -> None:
        raise WorkspaceBusyError("the workspace database is busy; try again")

    monkeypatch.setattr(api, "workspace_state", busy)
    refused = client.get("/api/status")
    assert problem(refused, 503)["type"] == "urn:candor:problem:busy"
    assert refused.headers["retry-after"] == "1"


def test_a_conflict_is_a_409_problem(shared_demo: DemoServer) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    made = client.post(
        "/api/searches",
        headers=auth("ana"),
        data={**CASE, "case_number": "2026-API-409"},
        files=upload(shared_demo.photos["collins-probe.jpg"]),
    )
    search_id = made.json()["search_id"]
    if made.json()["status"] == "pending_approval":
        decided = client.post(
            f"/api/approvals/{search_id}",
            headers=auth("sam"),
            json={"decision": "reject", "reason": "not needed"},
        )
        assert decided.status_code == 200, decided.text
    again = client.post(
        f"/api/approvals/{search_id}",
        headers=auth("sam"),
        json={"decision": "approve", "reason": "twice"},
    )
    problem(again, 409)


def test_several_faces_name_the_api_field_and_list_the_faces(
    shared_demo: DemoServer, tmp_path: Path
) -> None:
    photos = shared_demo.photos
    # Two faces the default detector sees: collins.png's face is under a tenth of the
    # pair's width, below BlazeFace's range (tests/faces/test_default_detector.py).
    group = side_by_side(photos["hopper.jpg"], photos["hopper.jpg"], tmp_path / "two.jpg")
    answer = shared_demo.client.post(
        "/api/searches",
        headers=shared_demo.auth("ana"),
        data={**CASE, "case_number": "2026-API-FACES"},
        files=upload(group),
    )
    body = problem(answer, 422)
    assert body["type"] == "urn:candor:problem:multiple-faces"
    assert "face_index" in body["detail"] and "--face" not in body["detail"]
    assert body["face_field"] == "face_index"
    assert [face["face_index"] for face in body["faces"]] == list(range(len(body["faces"])))
    assert len(body["faces"]) >= 2
    verified = shared_demo.client.post(
        "/api/verifications",
        headers=shared_demo.auth("ana"),
        data={**CASE, "case_number": "2026-API-FACES"},
        files={
            "first": ("one.jpg", photos["hopper.jpg"].read_bytes(), "image/jpeg"),
            "second": ("two.jpg", group.read_bytes(), "image/jpeg"),
        },
    )
    body = problem(verified, 422)
    assert body["face_field"] == "second_face" and "second_face" in body["detail"]
    chosen = shared_demo.client.post(
        "/api/searches",
        headers=shared_demo.auth("ana"),
        data={**CASE, "case_number": "2026-API-FACES", "face_index": "1"},
        files=upload(group),
    )
    assert chosen.status_code == 201, chosen.text


def test_enrolling_a_photo_with_several_faces_needs_face_index(
    shared_demo: DemoServer, tmp_path: Path
) -> None:
    photos = shared_demo.photos
    # Two faces the default detector sees: collins.png's face is under a tenth of the
    # pair's width, below BlazeFace's range (tests/faces/test_default_detector.py).
    group = side_by_side(photos["hopper.jpg"], photos["hopper.jpg"], tmp_path / "two.jpg")
    provenance = {
        "source_type": "demo",
        "source_ref": "tests",
        "legal_basis": "demonstration only",
        "collected_on": "2024-01-01",
        "retain_until": "2030-01-01",
    }

    def enrol(**extra: str) -> Response:
        return shared_demo.client.post(
            "/api/gallery/enrolments",
            headers=shared_demo.auth("admin1"),
            data={**provenance, "subject_ref": "DEMO-API-GROUP", **extra},
            files={"photos": ("two.jpg", group.read_bytes(), "image/jpeg")},
        )

    # Refused, not the face the engine would pick, and nothing enrolled.
    body = problem(enrol(), 422)
    assert body["type"] == "urn:candor:problem:multiple-faces"
    assert body["face_field"] == "face_index" and "face_index" in body["detail"]
    assert [face["face_index"] for face in body["faces"]] == list(range(len(body["faces"])))
    assert len(body["faces"]) >= 2
    subject = shared_demo.client.get(
        "/api/gallery/subjects/DEMO-API-GROUP", headers=shared_demo.auth("admin1")
    )
    assert subject.status_code == 404, subject.text
    # Chosen: enrolled.
    chosen = enrol(face_index="1")
    assert chosen.status_code == 200, chosen.text
    [outcome] = chosen.json()["outcomes"]
    assert outcome["status"] == "enrolled", outcome


def entries(demo: DemoServer) -> int:
    answer = demo.client.get("/api/audit/verification", headers=demo.auth("ada"))
    count: int = answer.json()["entries"]
    return count


def test_a_retry_with_the_same_idempotency_key_is_one_request(shared_demo: DemoServer) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    key = {"Idempotency-Key": "3f1c2a9e-api-retry"}
    form = {**CASE, "case_number": "2026-API-RETRY"}
    photo = upload(shared_demo.photos["collins-probe.jpg"])
    first = client.post("/api/searches", headers={**auth("ana"), **key}, data=form, files=photo)
    assert first.status_code == 201, first.text
    logged = entries(shared_demo)
    again = client.post("/api/searches", headers={**auth("ana"), **key}, data=form, files=photo)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert entries(shared_demo) == logged  # nothing new was requested, nor audited
    # Another person's key is theirs: the same key makes eli's own request.
    other = client.post("/api/searches", headers={**auth("eli"), **key}, data=form, files=photo)
    assert other.status_code == 201 and other.json()["search_id"] != first.json()["search_id"]
    changed = client.post(
        "/api/searches",
        headers={**auth("ana"), **key},
        data={**form, "case_number": "2026-API-OTHER"},
        files=photo,
    )
    body = problem(changed, 422)
    assert body["type"] == "urn:candor:problem:idempotency-key-reused"
    assert "case number" in body["detail"]
    assert entries(shared_demo) > logged  # eli's request, and nothing for the refused one


def test_lists_are_paged(shared_demo: DemoServer) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    for path, user in (
        ("/api/requests", "ana"),
        ("/api/reviews", "eve"),
        ("/api/approvals", "sam"),
        ("/api/users", "admin1"),
        ("/api/changes", "admin1"),
        ("/api/gallery/subjects", "admin1"),
    ):
        whole = client.get(path, headers=auth(user))
        assert whole.status_code == 200, (path, whole.text)
        body = whole.json()
        assert set(body) == {"items", "total", "limit", "offset", "next_offset"}, path
        assert (body["limit"], body["offset"]) == (50, 0) and body["total"] >= len(body["items"])
    users = client.get("/api/users?limit=2&offset=1", headers=auth("admin1")).json()
    everyone = client.get("/api/users", headers=auth("admin1")).json()
    assert users["items"] == everyone["items"][1:3]
    assert users["next_offset"] == 3 and users["total"] == everyone["total"]


def test_the_description_declares_bearer_security_and_typed_answers(
    shared_demo: DemoServer,
) -> None:
    schema = shared_demo.client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            public = path in ("/api/status", "/api/login")
            assert (operation.get("security") is None) == public, (method, path)
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status.startswith("4") or status.startswith("5"):
                    assert list(content) == ["application/problem+json"], (method, path, status)
                    continue
                if "application/json" not in content:
                    continue  # a download (zip, CSV)
                answer = content["application/json"]["schema"]
                assert "$ref" in answer, (method, path, status, answer)
                model = components[answer["$ref"].rsplit("/", 1)[1]]
                assert model.get("properties"), (method, path, status)
    searches = schema["paths"]["/api/searches"]["post"]
    assert "201" in searches["responses"] and "Location" in searches["responses"]["201"]["headers"]
    assert any(p["name"] == "Idempotency-Key" for p in searches["parameters"])


def test_bodies_over_the_limit_are_refused_before_they_are_read(demo: DemoServer) -> None:
    answer = demo.client.post(
        "/api/searches",
        headers={**demo.auth("ana"), "Content-Length": str(MAX_BODY_BYTES + 1)},
        content=b"x" * 10,
    )
    assert problem(answer, 413)["type"] == "urn:candor:problem:too-large"


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


@pytest.fixture(scope="module")
def spaced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An agency of its own, in a folder whose name holds spaces (as many desktops' do)."""
    home = tmp_path_factory.mktemp("api") / "My Workspaces" / "unit one"
    agency = make_agency(home, example="two-reviewers")
    yield TestClient(create_app(agency.workflow))
    agency.workflow.close()


def bearer(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    answer = client.post("/api/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_no_error_shows_a_server_folder_even_one_with_spaces(spaced: TestClient) -> None:
    # The general rule cuts an absolute path at its first space: a workspace under
    # "My Workspaces" showed ".../tmp/uploads/<random>/notes.jpg" of the server's disk.
    client, auth = spaced, bearer(spaced, "ana")
    broken = {"probe": ("notes.jpg", b"this is not a photo", "image/jpeg")}
    for route, form in (("/api/searches", CASE), ("/api/probe-checks", None)):
        answer = client.post(route, headers=auth, data=form, files=broken)
        detail = problem(answer, 400)["detail"]
        assert detail.startswith("notes.jpg: "), detail
        assert "uploads" not in answer.text and "Workspaces" not in answer.text


def test_an_admin_resets_a_password_and_the_user_must_choose_one(spaced: TestClient) -> None:
    client = spaced
    temporary = "temporary-" + PASSWORD
    reset = client.post(
        "/api/users/eli/password",
        headers=bearer(client, "admin1"),
        json={"temporary_password": temporary},
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["user"]["username"] == "eli"
    eli = bearer(client, "eli", temporary)
    refused = problem(client.get("/api/todo", headers=eli), 403)
    assert refused["type"] == "urn:candor:problem:password-change-required"
    assert "/api/password" in refused["title"]
    chosen = client.post("/api/password", headers=eli, json={"new_password": "own-" + PASSWORD})
    assert chosen.status_code == 200, chosen.text
    assert client.get("/api/todo", headers=eli).json()["username"] == "eli"
    missing = client.post(
        "/api/gallery/subjects/NO-SUCH-SUBJECT/expunge",
        headers=bearer(client, "admin1"),
        json={"reason": "court order 2026/17"},
    )
    problem(missing, 404)


def test_the_audit_log_is_browsed_a_page_at_a_time(shared_demo: DemoServer) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    answer = client.get(
        "/api/audit/entries", params={"action": "auth.login", "limit": 2}, headers=auth("ada")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["items"]) == 2 and body["total"] >= 2 and body["next_offset"] == 2
    assert {entry["action"] for entry in body["items"]} == {"auth.login"}
    assert problem(client.get("/api/audit/entries", headers=auth("ana")), 403)


def test_two_retries_at_once_are_still_one_request(
    shared_demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    key = {**auth("ana"), "Idempotency-Key": "race-2026-API-TWICE"}
    form = {**CASE, "case_number": "2026-API-TWICE"}
    photo = upload(shared_demo.photos["collins-probe.jpg"])
    first = client.post("/api/searches", headers=key, data=form, files=photo)
    assert first.status_code == 201, first.text
    # The second retry looked before the first committed: it finds nothing, so its insert
    # meets the key's unique index, and it answers the first request after all.
    looked = []
    real = retries.request_by_idempotency_key

    def not_yet(*args: Any) -> Any:
        looked.append(args)
        return None if len(looked) == 1 else real(*args)

    monkeypatch.setattr(retries, "request_by_idempotency_key", not_yet)
    second = client.post("/api/searches", headers=key, data=form, files=photo)
    assert second.status_code == 201, second.text
    assert second.json()["search_id"] == first.json()["search_id"] and len(looked) == 2
