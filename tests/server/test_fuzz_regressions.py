"""Inputs the fuzzing (bench/fuzz.py) and the PostgreSQL pass found the API answering with
a 500, replayed: each is now a 422 naming the field.

PostgreSQL cannot store a NUL in a text column; the text limits refuse it (and other
control characters in one-line fields) wherever the text came from. Run under
CANDOR_TEST_DATABASE=postgres too.
"""

from __future__ import annotations

from typing import Any

import pytest
from httpx import Response

from tests.server.support import CASE, DemoServer

pytestmark = pytest.mark.xdist_group("server")

NUL = "\x00"


def refused_naming(answer: Response, field: str) -> None:
    assert answer.status_code == 422, answer.text
    body: dict[str, Any] = answer.json()
    assert f"({field})" in body["detail"] and "U+0000" in body["detail"], body
    assert "\n" not in body["detail"]


def test_a_nul_in_a_case_number_is_a_422(shared_demo: DemoServer) -> None:
    answer = shared_demo.client.post(
        "/api/searches",
        headers=shared_demo.auth("ana"),
        data={**CASE, "case_number": f"2026{NUL}-FUZZ"},
        files={"probe": ("hopper.jpg", shared_demo.photos["hopper.jpg"].read_bytes())},
    )
    refused_naming(answer, "case_number")


def test_a_nul_in_a_subject_reference_is_a_422(shared_demo: DemoServer) -> None:
    answer = shared_demo.client.post(
        "/api/gallery/enrolments",
        headers=shared_demo.auth("admin1"),
        data={
            "subject_ref": f"FUZZ{NUL}1",
            "source_type": "demo",
            "source_ref": "tests",
            "legal_basis": "demonstration only",
            "collected_on": "2024-01-01",
            "retain_until": "2030-01-01",
        },
        files={"photos": ("hopper.jpg", shared_demo.photos["hopper.jpg"].read_bytes())},
    )
    refused_naming(answer, "subject_ref")


def test_a_nul_in_a_note_is_a_422(shared_demo: DemoServer) -> None:
    # Refused before the request is looked up: no lead needs to exist.
    answer = shared_demo.client.post(
        "/api/requests/1/candidates/1/outcome",
        headers=shared_demo.auth("ana"),
        json={"outcome": "excluded", "note": f"an alibi{NUL}"},
    )
    refused_naming(answer, "reason")


def test_a_nul_in_a_username_is_a_422(shared_demo: DemoServer) -> None:
    login = shared_demo.client.post(
        "/api/login", json={"username": f"ana{NUL}", "password": "whatever"}
    )
    refused_naming(login, "username")
    secret = shared_demo.client.post(
        "/api/login", json={"username": "ana", "password": f"pass{NUL}word"}
    )
    refused_naming(secret, "password")
    added = shared_demo.client.post(
        "/api/users",
        headers=shared_demo.auth("admin1"),
        json={
            "username": f"fuzz{NUL}",
            "unit": "Robbery",
            "roles": ["analyst"],
            "certificate_ref": "CERT-1",
            "certificate_expires": "2030-01-01",
            "password": "a long enough passphrase",
        },
    )
    refused_naming(added, "username")


def test_a_tab_in_a_one_line_field_is_a_422(shared_demo: DemoServer) -> None:
    answer = shared_demo.client.post(
        "/api/searches",
        headers=shared_demo.auth("ana"),
        data={**CASE, "requesting_unit": "Rob\tbery"},
        files={"probe": ("hopper.jpg", shared_demo.photos["hopper.jpg"].read_bytes())},
    )
    assert answer.status_code == 422, answer.text
    assert "(requesting_unit)" in answer.json()["detail"]
    assert "U+0009" in answer.json()["detail"]


def test_a_nul_in_a_username_in_the_path_is_a_422(shared_demo: DemoServer) -> None:
    # bench/fuzz.py on PostgreSQL: the lookup of the named user was a 500.
    answer = shared_demo.client.post("/api/users/a%00b/enable", headers=shared_demo.auth("admin1"))
    refused_naming(answer, "username")


def test_a_nul_in_a_subject_reference_in_the_path_is_a_422(shared_demo: DemoServer) -> None:
    # bench/fuzz.py on PostgreSQL: the lookup of the subject (API and page) was a 500.
    answer = shared_demo.client.get(
        "/api/gallery/subjects/a%00b", headers=shared_demo.auth("admin1")
    )
    refused_naming(answer, "subject_ref")


def test_a_nul_in_the_approvals_case_filter_is_a_422(shared_demo: DemoServer) -> None:
    # bench/fuzz.py on PostgreSQL: the filtered query was a 500 (page and API).
    answer = shared_demo.client.get(
        "/api/approvals", params={"case": "a\x00b"}, headers=shared_demo.auth("sam")
    )
    refused_naming(answer, "case_number")
