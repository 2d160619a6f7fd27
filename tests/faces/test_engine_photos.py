"""The dlib pipeline and extract_faces on real photos from ../shared/faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from candor.faces import EngineSettings, FaceEngine, cosine_score, euclidean_distance
from candor.faces.dlib_models import HogDetector
from candor.faces.extraction import extract_faces
from candor.images import DecodedImage, decode_image, encode_png, load_image
from tests.faces.helpers import RecordingDetector

pytestmark = pytest.mark.faces


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


def photo(faces_dir: Path, name: str, number: int) -> Path:
    return faces_dir / "lfw-dev" / name / f"{name}_{number:04d}.jpg"


def test_one_lfw_face_with_its_measures(engine: FaceEngine, faces_dir: Path) -> None:
    image = load_image(photo(faces_dir, "Aaron_Peirsol", 1))
    faces = engine.detect_faces(image)
    assert len(faces) >= 1
    face = faces[0]
    assert face.landmarks.shape == (5, 2)
    assert 30 <= face.quality.eye_distance_px <= 55  # LFW: about 40 px
    assert face.quality.passed, face.quality.reasons
    assert 60 <= face.box.centre[0] <= 190
    chip = engine.aligned_chip(image, face)
    assert chip.shape == (150, 150, 3)
    assert chip.dtype == np.uint8


def test_templates_are_deterministic_dlib_descriptors(engine: FaceEngine, faces_dir: Path) -> None:
    image = load_image(photo(faces_dir, "Aaron_Peirsol", 1))
    face = engine.detect_faces(image)[0]
    first = engine.face_template(image, face)
    second = engine.face_template(image, face)
    assert first.vector.shape == (128,)
    assert first.vector.dtype == np.float32
    assert 1.3 < float(np.linalg.norm(first.vector)) < 1.6
    np.testing.assert_array_equal(first.vector, second.vector)
    assert first.model == engine.model


def test_same_person_scores_higher_than_another(engine: FaceEngine, faces_dir: Path) -> None:
    def template(name: str, number: int):  # type: ignore[no-untyped-def]
        image = load_image(photo(faces_dir, name, number))
        return engine.face_template(image, engine.detect_faces(image)[0])

    a1, a2 = template("Abdullah_Gul", 1), template("Abdullah_Gul", 2)
    other = template("Adam_Sandler", 1)
    assert cosine_score(a1, a2) > cosine_score(a1, other)
    assert euclidean_distance(a1, a2) < 0.6 < euclidean_distance(a1, other)


def test_hog_retry_finds_a_face_scoring_just_under_zero(faces_dir: Path) -> None:
    pixels = load_image(photo(faces_dir, "Ken_Macha", 3)).pixels
    assert HogDetector(upsample=1).detect(pixels) == []
    found = HogDetector(upsample=1, retry_threshold=-0.5).detect(pixels)
    assert len(found) == 1
    assert -0.5 <= found[0][1] < 0.0


def test_cnn_detector_finds_the_face(faces_dir: Path) -> None:
    engine = FaceEngine(EngineSettings(detector="cnn", upsample=0))
    faces = engine.detect_faces(load_image(photo(faces_dir, "Aaron_Peirsol", 1)))
    assert len(faces) == 1
    assert faces[0].confidence > 0
    assert faces[0].quality.eye_distance_px > 30


def test_large_photo_and_webp_under_a_jpg_name(engine: FaceEngine, faces_dir: Path) -> None:
    image = load_image(faces_dir / "deepface-tests" / "deepface_id03" / "img47.jpg")
    assert image.format == "WEBP"
    faces = engine.detect_faces(image)
    assert faces
    assert faces[0].quality.eye_distance_px > 40


def test_a_large_photo_finds_the_face_on_a_copy_and_keeps_its_template(
    engine: FaceEngine, faces_dir: Path
) -> None:
    """Issue 12, fault 4: a 4000 x 3000 photo was detected on all its pixels (26 s)."""
    original = load_image(photo(faces_dir, "Aaron_Peirsol", 1))
    [small_face] = engine.detect_faces(original)
    # The lfw photo 12 times larger, on a grey 4000 x 3000 canvas.
    canvas = Image.new("RGB", (4000, 3000), (120, 120, 120))
    canvas.paste(
        Image.fromarray(original.pixels).resize((3000, 3000), Image.Resampling.BICUBIC), (500, 0)
    )
    large = DecodedImage(np.asarray(canvas), "0" * 64, "PNG", b"")
    # Far above any bound the engine uses, far below the photo: the whole photo fails
    # at once here instead of after seconds of detection.
    recorder = RecordingDetector(HogDetector(upsample=1, retry_threshold=-0.5), 2_000_000)
    bounded = FaceEngine(detector=recorder)

    [face] = bounded.detect_faces(large)

    [(height, width)] = recorder.seen
    assert height * width <= bounded.settings.detect_max_pixels
    assert face.quality.passed, face.quality.reasons
    # Landmarks on the full photo: the eyes are 12 times as far apart as in the original.
    assert face.quality.eye_distance_px == pytest.approx(
        12 * small_face.quality.eye_distance_px, rel=0.05
    )
    expected_x = 500 + 12 * small_face.box.centre[0]
    expected_y = 12 * small_face.box.centre[1]
    assert abs(face.box.centre[0] - expected_x) < 0.1 * face.box.width
    assert abs(face.box.centre[1] - expected_y) < 0.1 * face.box.width
    # The chip comes from the full photo, so the template is the original's but for the
    # resampling (measured: cosine 0.9995; another person scores below 0.9).
    template = bounded.face_template(large, face)
    assert cosine_score(template, engine.face_template(original, small_face)) > 0.995


@pytest.fixture(scope="module")
def mixed_files(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("mixed")
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    blank = folder / "blank.png"
    blank.write_bytes(encode_png(np.full((120, 120, 3), 128, dtype=np.uint8)))
    return [
        photo(faces_dir, "Aaron_Peirsol", 1),
        corrupt,
        photo(faces_dir, "Abdullah_Gul", 1),
        blank,
        photo(faces_dir, "Adam_Sandler", 1),
    ]


def test_extract_faces_in_order_with_refusals(mixed_files: list[Path]) -> None:
    results = list(extract_faces(mixed_files))
    assert [r.path for r in results] == mixed_files
    good = results[0]
    assert good.template is not None
    assert good.refusal is None
    assert good.chosen == 0
    assert good.sha256 is not None and len(good.sha256) == 64
    assert good.data is None and good.chip_png is None
    corrupt = results[1]
    assert corrupt.sha256 is None and corrupt.template is None
    assert corrupt.error is not None and corrupt.refusal == corrupt.error
    blank = results[3]
    assert blank.faces == () and blank.chosen is None
    assert blank.refusal == "no face found in blank.png."


def test_worker_processes_give_the_same_templates(mixed_files: list[Path]) -> None:
    in_process = list(extract_faces(mixed_files))
    pooled = list(extract_faces(mixed_files, workers=2))
    assert [r.path for r in pooled] == mixed_files
    for a, b in zip(in_process, pooled, strict=True):
        assert a.refusal == b.refusal
        assert (a.template is None) == (b.template is None)
        if a.template is not None and b.template is not None:
            np.testing.assert_array_equal(a.template.vector, b.template.vector)


def test_keep_data_returns_bytes_and_chip(mixed_files: list[Path]) -> None:
    result = next(extract_faces(mixed_files[:1], keep_data=True))
    assert result.data == mixed_files[0].read_bytes()
    assert result.chip_png is not None
    chip = decode_image(result.chip_png, name="chip.png")
    assert chip.format == "PNG"
    assert chip.pixels.shape == (150, 150, 3)


def test_face_index_picks_another_face_or_refuses(mixed_files: list[Path]) -> None:
    first = next(extract_faces(mixed_files[:1], face_index=0))
    assert first.chosen == 0 and first.template is not None
    missing = next(extract_faces(mixed_files[:1], face_index=7))
    assert missing.chosen is None and missing.template is None
    assert missing.refusal is not None
    assert missing.refusal.startswith("face 7 was asked for, but Aaron_Peirsol_0001.jpg has")
    with pytest.raises(ValueError):
        extract_faces(mixed_files, face_index=-1)
    with pytest.raises(ValueError):
        extract_faces(mixed_files, workers=0)
