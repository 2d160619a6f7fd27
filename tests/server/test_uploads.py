"""Uploaded photos stay inside the workspace, in a private folder, and go after the request.

Issue 12, fault 8: a killed server left probe photos in /tmp/candor-upload-*, a folder
anyone on the machine could list.
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from candor.server import api
from tests.server.support import DemoServer


def test_uploads_never_touch_the_shared_temporary_folder(
    demo: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    seen: list[tuple[Path, int]] = []
    real_check_probe = api.check_probe

    def spying_check_probe(workflow, actor, path):  # type: ignore[no-untyped-def]
        seen.append((path, stat.S_IMODE(path.parent.stat().st_mode)))
        return real_check_probe(workflow, actor, path)

    monkeypatch.setattr(api, "check_probe", spying_check_probe)
    answer = demo.client.post(
        "/api/probe-checks",
        headers=demo.auth("ana"),
        files={"probe": ("probe.png", demo.photos["collins.png"].read_bytes(), "image/png")},
    )
    assert answer.status_code == 200, answer.text

    home = demo.agency.workflow.workspace.home
    [(path, mode)] = seen
    assert path.is_relative_to(home / "tmp" / "uploads")
    assert mode == 0o700
    assert not path.exists()
    assert list(shared.iterdir()) == []
