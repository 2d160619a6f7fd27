"""Bad input through the server: a clear 4xx that names the field, never a 500 or a path."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from candor.server import app as app_module
from candor.workflow import limits
from tests.server.support import CASE, DemoServer

pytestmark = pytest.mark.xdist_group("server")

# A path on the server's disk: a slash-separated run after a space, quote or line start.
SERVER_PATH = re.compile(r"(?:^|[\s'\"(])/[\w.-]+/")
BOUNDARY = "candor-test-boundary"


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def multipart(fields: dict[str, bytes], files: dict[str, tuple[str, bytes]]) -> bytes:
    """A multipart body of raw bytes (httpx would encode every field as UTF-8)."""
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    for name, (filename, data) in files.items():
        parts.append(
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# -- 413 for every body over the limit ----------------------------------------------------------


def test_a_chunked_body_over_the_limit_is_413(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "MAX_BODY_BYTES", 200_000)

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit is only found by counting what arrives.
        yield multipart({key: value.encode() for key, value in CASE.items()}, {})[:-20]
        for _ in range(40):
            yield b"x" * 10_000

    answer = demo.client.post(
        "/api/searches", headers={**demo.auth("ana"), **MULTIPART}, content=chunks()
    )
    assert answer.status_code == 413
    assert answer.json()["detail"] == "the request is larger than 200,000 bytes"


def test_a_chunked_page_form_over_the_limit_is_413(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "MAX_BODY_BYTES", 50_000)
    answer = demo.client.post(
        "/login",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=iter([b"username=ana&password=", *[b"x" * 10_000] * 10]),
    )
    assert answer.status_code == 413


# -- a policy nested thousands deep --------------------------------------------------------------


def test_a_policy_nested_thousands_deep_is_a_400_naming_the_upload(demo: DemoServer) -> None:
    deep = ("[meta]\nname = " + "[" * 5000 + "]" * 5000 + "\n").encode()
    answer = demo.client.post(
        "/api/policy",
        headers=demo.auth("admin1"),
        files={"policy": ("deep.toml", deep, "application/toml")},
    )
    assert answer.status_code == 400
    error = answer.json()["detail"]
    assert error.startswith("deep.toml: ") and "nested too deeply" in error


# -- no server paths in what the caller reads ----------------------------------------------------


def test_refusals_name_the_uploaded_file_never_a_server_path(demo: DemoServer) -> None:
    client = demo.client
    not_an_image = client.post(
        "/api/probe-checks",
        headers=demo.auth("ana"),
        files={"probe": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert not_an_image.status_code == 400
    error = not_an_image.json()["detail"]
    assert error.startswith("notes.jpg: ")
    assert not SERVER_PATH.search(error) and "candor-upload" not in error

    broken = client.post(
        "/api/policy",
        headers=demo.auth("admin1"),
        files={"policy": ("mine.toml", b"[meta\n", "application/toml")},
    )
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("mine.toml: line 1")
    assert not SERVER_PATH.search(broken.json()["detail"])

    page = client.post(
        "/api/searches",
        headers=demo.auth("ana"),
        data=CASE,
        files={"probe": ("blank.png", b"\x89PNG\r\n\x1a\n", "image/png")},
    )
    assert page.status_code == 400
    assert page.json()["detail"].startswith("blank.png: ")
    assert not SERVER_PATH.search(page.json()["detail"])


def test_a_refused_page_upload_names_the_file_never_a_server_path(demo: DemoServer) -> None:
    client = demo.client
    login = client.get("/login")
    client.post(
        "/login",
        data={"username": "ana", "password": "correct horse battery staple"}
        | {"csrf": csrf_of(login.text)},
    )
    search = client.get("/search")
    answer = client.post(
        "/search/check",
        data={**CASE, "csrf": csrf_of(search.text)},
        files={"probe": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert answer.status_code == 400
    assert "notes.jpg: the file is text, not an image" in answer.text
    home = str(demo.agency.workflow.workspace.home)
    assert home not in answer.text and "/tmp/" not in answer.text


# -- form text must be UTF-8 ---------------------------------------------------------------------


def test_a_multipart_field_that_is_not_utf8_is_a_400_naming_it(demo: DemoServer) -> None:
    fields = {key: value.encode() for key, value in CASE.items()}
    fields["case_number"] = b"2026-\xe9\xff"
    answer = demo.client.post(
        "/api/searches",
        headers={**demo.auth("ana"), **MULTIPART},
        content=multipart(fields, {"probe": ("probe.jpg", b"not read")}),
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == "the form field 'case_number' is not UTF-8 text"


def test_utf8_form_text_is_taken_as_typed(demo: DemoServer) -> None:
    fields = {key: value.encode() for key, value in CASE.items()}
    fields["requesting_unit"] = "Équipe Sûreté".encode()
    answer = demo.client.post(
        "/api/searches",
        headers={**demo.auth("ana"), **MULTIPART},
        content=multipart(fields, {"probe": ("notes.jpg", b"not a photo")}),
    )
    # Read as text and passed on: refused for the photo, not for the unit.
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("notes.jpg: ")


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        (b"%E9quipe", "is not UTF-8 text"),
        (b"\xe9quipe", "is not URL-encoded"),
        # Even UTF-8 sent raw: Starlette reads a URL-encoded body's raw bytes as Latin-1.
        (b"\xc3\xa9quipe", "is not URL-encoded"),
    ],
    ids=["escaped Latin-1", "raw Latin-1", "raw UTF-8"],
)
def test_a_page_form_field_that_is_not_utf8_is_a_400_naming_it(
    demo: DemoServer, encoded: bytes, problem: str
) -> None:
    client = demo.client
    login = client.get("/login")
    client.post(
        "/login",
        data={"username": "admin1", "password": "correct horse battery staple"}
        | {"csrf": csrf_of(login.text)},
    )
    users = client.get("/users")
    body = (
        b"username=newbie&unit="
        + encoded
        + b"&role=analyst&certificate_ref=FRT-9&certificate_expires=2030-01-01"
        + b"&password=a+long+enough+password&csrf="
        + csrf_of(users.text).encode()
    )
    answer = client.post(
        "/users",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=body,
    )
    assert answer.status_code == 400
    assert f"the form field &#39;unit&#39; {problem}" in answer.text
    assert "newbie" not in client.get("/users").text


# -- one list of limits --------------------------------------------------------------------------


def test_the_api_declares_the_workflow_limits(demo: DemoServer) -> None:
    schema = demo.client.get("/openapi.json").json()
    search = schema["paths"]["/api/searches"]["post"]["requestBody"]["content"]
    form_ref = search["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = schema["components"]["schemas"][form_ref]["properties"]
    for limit in (limits.CASE_NUMBER, limits.OFFENCE_CATEGORY, limits.REQUESTING_UNIT):
        assert fields[limit.field]["maxLength"] == limit.max_length
    too_long = demo.client.post(
        "/api/searches",
        headers=demo.auth("ana"),
        data={**CASE, "case_number": "7" * (limits.CASE_NUMBER.max_length + 1)},
        files={"probe": ("probe.jpg", b"not read", "image/jpeg")},
    )
    assert too_long.status_code == 422
    assert "case_number" in too_long.json()["detail"]


def test_an_enrolment_refusal_names_the_uploaded_file_never_a_server_path(
    demo: DemoServer,
) -> None:
    answer = demo.client.post(
        "/api/gallery/enrolments",
        headers=demo.auth("admin1"),
        data={
            "subject_ref": "DEMO-0099",
            "source_type": "demo",
            "source_ref": "tests",
            "legal_basis": "demonstration only",
            "collected_on": "2024-01-01",
            "retain_until": "2030-01-01",
        },
        files={"photos": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert answer.status_code == 200
    [outcome] = answer.json()["outcomes"]
    assert outcome["status"] == "refused" and outcome["path"] == "notes.jpg"
    assert outcome["reason"].startswith("notes.jpg: ")
    assert not SERVER_PATH.search(outcome["reason"])
