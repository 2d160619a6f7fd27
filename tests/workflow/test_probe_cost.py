"""What one probe photo may cost the workflow (issue 12, fault 4).

A 143 kB PNG declaring 7000 x 7000 ran detection and the CNN fallback for 284 s at 10 GB,
holding the server's workflow all that time; a normal 4000 x 3000 photo held it for 26 s.
A probe over `PROBE_LIMITS` is refused from its header, and a large probe within it is
detected on a bounded copy. The detector is wrapped so that the old behaviour (the whole
photo handed to it) fails at once instead of running for minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from PIL import Image

from candor.images import ImageTooLargeError
from candor.workflow import RequestForm, request_search
from candor.workflow.probe_check import check_probe
from tests.agency import Agency, make_agency
from tests.faces.helpers import RecordingDetector
from tests.images.pictures import flat_png

pytestmark = pytest.mark.xdist_group("workflow")

# Far above any detection bound, far below the photos here.
CEILING = 2_000_000
FORM = RequestForm(
    case_number="2026-000777",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    made = make_agency(tmp_path_factory.mktemp("probe-cost"))
    yield made
    made.workflow.close()


@pytest.fixture
def guarded(agency: Agency, monkeypatch: pytest.MonkeyPatch) -> RecordingDetector:
    engine = agency.workflow.engine
    recorder = RecordingDetector(engine.detector, CEILING)
    monkeypatch.setattr(engine, "detector", recorder)
    return recorder


@pytest.fixture(scope="module")
def huge_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    path.write_bytes(flat_png(7000, 7000))
    return path


def test_a_probe_check_of_a_7000_by_7000_photo_is_refused_before_detection(
    agency: Agency, guarded: RecordingDetector, huge_probe: Path
) -> None:
    with pytest.raises(ImageTooLargeError) as refused:
        check_probe(agency.workflow, agency["ana"], huge_probe)
    message = str(refused.value)
    assert "7000 x 7000 pixels" in message
    assert "over the limit of 25.0 megapixels for a probe photo" in message
    assert guarded.seen == []


def test_a_search_with_a_7000_by_7000_probe_is_refused_before_detection(
    agency: Agency, guarded: RecordingDetector, huge_probe: Path
) -> None:
    with pytest.raises(ImageTooLargeError, match="for a probe photo"):
        request_search(agency.workflow, agency["ana"], huge_probe, FORM)
    assert guarded.seen == []


def test_a_4000_by_3000_probe_is_checked_on_a_bounded_copy(
    agency: Agency, guarded: RecordingDetector, tmp_path: Path
) -> None:
    # Grace Hopper's public-domain portrait (512 x 600, shipped with matplotlib), 5 times
    # larger on a 4000 x 3000 canvas.
    data = files("matplotlib").joinpath("mpl-data/sample_data/grace_hopper.jpg").read_bytes()
    path = tmp_path / "hopper.jpg"
    path.write_bytes(data)
    hopper = Image.open(path).convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (90, 90, 90))
    canvas.paste(hopper.resize((2560, 3000), Image.Resampling.BICUBIC), (720, 0))
    large = tmp_path / "large.jpg"
    canvas.save(large, quality=90)

    found = check_probe(agency.workflow, agency["ana"], large)

    [(height, width)] = guarded.seen
    assert height * width <= agency.workflow.engine.settings.detect_max_pixels
    assert (found.width, found.height) == (4000, 3000)
    assert found.faces and found.faces[0].usable, found.faces
    left, _, right, _ = found.faces[0].box
    assert right - left > 500  # in pixels of the full photo, not of the copy
