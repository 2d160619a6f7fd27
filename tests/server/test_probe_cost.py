"""One photo cannot tie up the server (issue 12, fault 4).

A 143 kB PNG declaring 7000 x 7000 sent to /api/probe-checks ran the detectors for 284 s
and ended in a 500, while every other request waited. It is now a 400 saying what and the
limit, answered before any detection: the detector is wrapped so that handing it the whole
photo (the old behaviour) fails at once instead of running for minutes.
"""

from __future__ import annotations

import pytest

from tests.faces.helpers import RecordingDetector
from tests.images.pictures import flat_png
from tests.server.support import CASE, DemoServer

pytestmark = pytest.mark.xdist_group("server")


@pytest.fixture
def guarded(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> RecordingDetector:
    engine = demo.agency.workflow.engine
    recorder = RecordingDetector(engine.detector, ceiling=2_000_000)
    monkeypatch.setattr(engine, "detector", recorder)
    return recorder


@pytest.fixture(scope="module")
def huge() -> dict[str, tuple[str, bytes, str]]:
    return {"probe": ("huge.png", flat_png(7000, 7000), "image/png")}


@pytest.mark.parametrize(("route", "form"), [("/api/probe-checks", None), ("/api/searches", CASE)])
def test_a_7000_by_7000_probe_gets_a_400_saying_what_and_the_limit(
    demo: DemoServer,
    guarded: RecordingDetector,
    huge: dict[str, tuple[str, bytes, str]],
    route: str,
    form: dict[str, str] | None,
) -> None:
    answer = demo.client.post(route, headers=demo.auth("ana"), data=form, files=huge)
    assert answer.status_code == 400, answer.text
    error = answer.json()["detail"]
    assert "huge.png: the picture declares 7000 x 7000 pixels (49.0 megapixels)" in error
    assert "over the limit of 25.0 megapixels for a probe photo" in error
    assert guarded.seen == []
    # The server is free at once for the next request.
    assert demo.client.get("/api/me", headers=demo.auth("ana")).status_code == 200
