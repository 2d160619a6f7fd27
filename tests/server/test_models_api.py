"""GET /api/models and /api/models/{name}: the face models, read only, for admins and
auditors (adding and confirming one is `candor model`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from candor.server.app import create_app
from candor.workflow.models import activate_model, add_model, confirm_model
from tests.agency import PASSWORD, make_agency
from tests.faces.test_onnx_models import arcface_file
from tests.server.support import CASE, DemoServer, demo_photos
from tests.workflow.test_models import calibrate_model

pytestmark = pytest.mark.xdist_group("server")


def test_models_are_listed_for_admins_and_auditors_only(
    shared_demo: DemoServer, tmp_path: Path
) -> None:
    client, auth = shared_demo.client, shared_demo.auth
    path = tmp_path / "api-vendor.onnx"
    arcface_file(path, 32)
    agency = shared_demo.agency
    add_model(
        agency.workflow, agency["admin1"], path,
        name="api-vendor", licence="contract 9", source="vendor",
    )  # fmt: skip

    listed = client.get("/api/models", headers=auth("ada"))
    assert listed.status_code == 200, listed.text
    models = listed.json()["models"]
    assert models[0]["name"] == "dlib" and models[0]["built_in"] and models[0]["active"]
    vendor = next(model for model in models if model["name"] == "api-vendor")
    assert (vendor["state"], vendor["dimension"], vendor["file_check"]) == (
        "pending",
        32,
        "unchanged",
    )

    shown = client.get("/api/models/api-vendor", headers=auth("admin1"))
    assert shown.status_code == 200, shown.text
    assert shown.json()["model"]["added_by"] == "admin1"
    assert shown.json()["model"]["activations"] == []

    assert client.get("/api/models", headers=auth("ana")).status_code == 403
    assert client.get("/api/models/nothing", headers=auth("ada")).status_code == 404
    assert client.get("/api/models").status_code == 401


def test_a_server_starts_when_the_active_model_file_changed(tmp_path: Path) -> None:
    """Accounts, audit and reports stay reachable; each search is refused in one line."""
    agency = make_agency(tmp_path, purpose="demo")
    workflow = agency.workflow
    path = tmp_path / "vendor.onnx"
    arcface_file(path, 32)
    added = add_model(
        workflow, agency["admin1"], path, name="vendor", licence="contract", source="vendor"
    )
    confirm_model(workflow, agency["admin2"], "vendor")
    calibrate_model(workflow, added.model_key)
    with workflow.workspace.session() as session, session.begin():
        activate_model(session, workflow, agency["admin1"], "vendor", 0, None)
    path.write_bytes(path.read_bytes() + b"\0")
    with TestClient(create_app(workflow)) as client:
        login = client.post("/api/login", json={"username": "admin1", "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        shown = client.get("/api/models/vendor", headers=auth).json()["model"]
        assert shown["active"] and shown["file_check"].startswith("changed (now ")
        token = client.post("/api/login", json={"username": "ana", "password": PASSWORD})
        photo = demo_photos(tmp_path / "photos")["hopper.jpg"]
        refused = client.post(
            "/api/searches",
            headers={"Authorization": f"Bearer {token.json()['token']}"},
            data=CASE,
            files={"probe": ("hopper.jpg", photo.read_bytes(), "image/jpeg")},
        )
        assert refused.status_code == 400, refused.text
        assert "refusing changed bytes" in refused.json()["detail"]
    workflow.close()
