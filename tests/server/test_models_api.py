"""GET /api/models and /api/models/{name}: the face models, read only, for admins and
auditors (adding and confirming one is `candor model`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from candor.workflow.models import add_model
from tests.faces.test_onnx_models import arcface_file
from tests.server.support import DemoServer

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
