"""ONNX embedder and detector, on tiny graphs built here with the `onnx` package."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import candor.faces.onnx_models as arcface_module
from candor.faces import EngineSettings, FaceBox, FaceEmbedder, FaceEngine
from candor.faces.onnx_models import (
    OnnxArcFaceEmbedder,
    OnnxModelError,
    OnnxModelSpec,
    OnnxScrfdDetector,
    OnnxSignature,
    arcface_transform,
    inspect_model_file,
    recognise,
    similarity_transform,
)
from tests.faces.helpers import FakeLandmarks, frontal_landmarks, image_of

OPSET = [helper.make_opsetid("", 17)]


def _save(model: onnx.ModelProto, path: Path) -> str:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def arcface_file(
    path: Path,
    dimension: int = 128,
    *,
    layout: str = "NCHW",
    size: int = 112,
    batch: str | int = "N",
    normalises: bool = False,
) -> tuple[str, np.ndarray]:
    """(N,3,S,S) -> channel means (N,3) -> MatMul (3,D): a linear 'ArcFace'.

    layout "NHWC": the input is (N,S,S,3) and the graph transposes it first; normalises:
    the graph begins with Sub and Mul on its input, as insightface's mxnet exports do.
    """
    weights = np.random.default_rng(7).standard_normal((3, dimension)).astype(np.float32)
    nodes = []
    initialisers = [numpy_helper.from_array(weights, "w")]
    current = "input.1"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [current], ["nchw"], perm=[0, 3, 1, 2]))
        current = "nchw"
    if normalises:
        initialisers.append(numpy_helper.from_array(np.array(127.5, np.float32), "m"))
        initialisers.append(numpy_helper.from_array(np.array(1 / 127.5, np.float32), "s"))
        nodes.append(helper.make_node("Sub", [current, "m"], ["centred"]))
        nodes.append(helper.make_node("Mul", ["centred", "s"], ["scaled"]))
        current = "scaled"
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["683"]),
    ]
    shape = [batch, 3, size, size] if layout == "NCHW" else [batch, size, size, 3]
    graph = helper.make_graph(
        nodes,
        "tiny-arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [batch, dimension])],
        initialisers,
    )
    return _save(helper.make_model(graph, opset_imports=OPSET), path), weights


def scrfd_file(path: Path, size: int = 64) -> str:
    """A 9-output SCRFD layout (3 strides, 2 anchors, keypoints) with one fixed detection.

    Outputs are constants plus 0 x the input's mean, so they depend on the input: stride 8,
    cell (x=3, y=2), anchor 0 scores 0.9 with distances (1, 1, 2, 2) strides; the
    same cell at stride 16 (x=1, y=1) scores 0.8 on a box that overlaps it (dropped by NMS).
    """
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0)]
    initialisers = []
    outputs = []
    names: list[str] = []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            rows = (size // stride) ** 2 * 2
            value = np.zeros((rows, width), dtype=np.float32)
            if kind == "score" and stride == 8:
                value[(2 * (size // 8) + 3) * 2, 0] = 0.9
            if kind == "score" and stride == 16:
                value[(1 * (size // 16) + 1) * 2, 0] = 0.8
            if kind == "bbox" and stride == 8:
                value[(2 * (size // 8) + 3) * 2] = [1, 1, 2, 2]
            if kind == "bbox" and stride == 16:
                value[(1 * (size // 16) + 1) * 2] = [0.5, 0.5, 1, 1]
            name = f"{kind}_{stride}"
            initialisers.append(numpy_helper.from_array(value, f"{name}_c"))
            nodes.append(helper.make_node("Mul", ["mean", "zero"], [f"{name}_z"]))
            nodes.append(helper.make_node("Add", [f"{name}_c", f"{name}_z"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [rows, width]))
            names.append(name)
    initialisers.append(numpy_helper.from_array(np.zeros((), dtype=np.float32), "zero"))
    graph = helper.make_graph(
        nodes,
        "tiny-scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initialisers,
    )
    return _save(helper.make_model(graph, opset_imports=OPSET), path)


def spec(path: Path, digest: str, **extra: object) -> OnnxModelSpec:
    return OnnxModelSpec(name="tiny", version="1", path=path, sha256=digest, **extra)  # type: ignore[arg-type]


def test_arcface_embedder_runs_the_graph_and_names_its_model(tmp_path: Path) -> None:
    path = tmp_path / "arc.onnx"
    digest, weights = arcface_file(path)
    embedder = OnnxArcFaceEmbedder(spec(path, digest))
    assert isinstance(embedder, FaceEmbedder)
    assert embedder.model.dimension == 128
    assert embedder.model.weights_sha256 == digest
    chips = [np.full((112, 112, 3), value, dtype=np.uint8) for value in (0, 100, 255)]
    chips[1][:, :, 2] = 30
    got = embedder.embed_batch(chips)
    means = np.array([chip.reshape(-1, 3).mean(axis=0) for chip in chips], dtype=np.float64)
    expected = ((means - 127.5) / 127.5) @ weights.astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=3e-4)  # float32 sums
    np.testing.assert_allclose(embedder.embed(chips[1]), got[1], rtol=1e-6)
    with pytest.raises(ValueError, match="112"):
        embedder.embed(np.zeros((150, 150, 3), dtype=np.uint8))


def test_a_file_differing_from_its_declared_hash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(OnnxModelError, match="not the declared"):
        _ = OnnxArcFaceEmbedder(spec(path, wrong)).model
    with pytest.raises(OnnxModelError, match="does not exist"):
        _ = OnnxArcFaceEmbedder(spec(tmp_path / "missing.onnx", digest)).model
    with pytest.raises(ValueError, match="64 hex"):
        spec(path, "abc")


def test_unavailable_provider_is_a_clear_error(tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    with pytest.raises(OnnxModelError, match="CUDAExecutionProvider is not available"):
        _ = OnnxArcFaceEmbedder(spec(path, digest, provider="cuda")).model


def test_models_are_recognised_by_their_signature(tmp_path: Path) -> None:
    arc = tmp_path / "arc.onnx"
    det = tmp_path / "det.onnx"
    arc_digest, _ = arcface_file(arc, dimension=512)
    det_digest = scrfd_file(det)
    assert OnnxArcFaceEmbedder(spec(arc, arc_digest)).model.dimension == 512
    with pytest.raises(OnnxModelError, match=r"is a face detector .*, not a face-embedding"):
        _ = OnnxArcFaceEmbedder(spec(det, det_digest)).model
    with pytest.raises(OnnxModelError, match=r"is a face-embedding model .*, not a face detector"):
        OnnxScrfdDetector(spec(arc, arc_digest)).detect(np.zeros((8, 8, 3), dtype=np.uint8))
    odd = OnnxSignature(inputs=((1, 3, 224, 224),), outputs=((1, 1000), (1, 4)))
    with pytest.raises(OnnxModelError, match=r"not a recognised face model: .*\(1, 1000\)"):
        recognise(odd)
    with pytest.raises(OnnxModelError, match=r"wrong input size: .*\(1, 3, 224, 224\)"):
        recognise(OnnxSignature(inputs=((1, 3, 224, 224),), outputs=((1, 1000),)))
    assert recognise(OnnxSignature(((None, 3, 112, 112),), ((None, 256),))) == "arcface"
    assert recognise(OnnxSignature(((None, 112, 112, 3),), ((None, 192),))) == "arcface"
    assert recognise(OnnxSignature(((1, 3, None, None),), ((None, 1),) * 15)) == "scrfd"


def test_scrfd_decodes_boxes_at_each_stride_and_merges_overlaps(tmp_path: Path) -> None:
    path = tmp_path / "det.onnx"
    detector = OnnxScrfdDetector(spec(path, scrfd_file(path), input_mean=127.5, input_std=128.0))
    # A 128 px photo is scaled by 0.5 into the 64 px input; the stride-8 box there is
    # centre (24, 16) minus (8, 8) and plus (16, 16): (16, 8)-(40, 32), so (32, 16)-(80, 64).
    found = detector.detect(np.zeros((128, 128, 3), dtype=np.uint8))
    assert found == [(FaceBox(32, 16, 80, 64), pytest.approx(0.9))]
    assert detector.keypoints_present
    assert "size=64x64" in detector.key
    detector.threshold = 0.95
    assert detector.detect(np.zeros((128, 128, 3), dtype=np.uint8)) == []


def test_alignment_puts_the_eyes_where_arcface_expects_them() -> None:
    landmarks = frontal_landmarks(100.0, 80.0, 60.0)
    matrix = arcface_transform(landmarks, points="eyes")
    left_eye = np.array([70.0, 80.0, 1.0])  # image-left eye centre of frontal_landmarks
    right_eye = np.array([130.0, 80.0, 1.0])
    np.testing.assert_allclose(matrix @ left_eye, [38.2946, 51.6963], atol=1e-6)
    np.testing.assert_allclose(matrix @ right_eye, [73.5318, 51.5014], atol=1e-6)


def test_engine_takes_the_onnx_embedder_without_caller_changes(tmp_path: Path) -> None:
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    from tests.faces.helpers import FakeDetector

    engine = FaceEngine(
        detector=FakeDetector([(FaceBox(40, 40, 160, 160), 1.0)]),
        landmarks=FakeLandmarks(),
        embedder=OnnxArcFaceEmbedder(spec(path, digest)),
    )
    image = image_of(200, 200)
    image.pixels[60:140, 60:140] = 180
    faces = engine.detect_faces(image)  # type: ignore[arg-type]
    template = engine.face_template(image, faces[0])  # type: ignore[arg-type]
    assert template.model.name == "tiny"
    assert template.vector.shape == (128,)
    assert engine.aligned_chip(image, faces[0]).shape == (112, 112, 3)  # type: ignore[arg-type]


def test_engine_settings_name_the_onnx_models(tmp_path: Path) -> None:
    arc, det = tmp_path / "arc.onnx", tmp_path / "det.onnx"
    arc_digest, _ = arcface_file(arc)
    det_digest = scrfd_file(det)
    settings = EngineSettings(
        embedder_model=spec(arc, arc_digest), detector_model=spec(det, det_digest)
    )
    engine = FaceEngine(settings)
    assert isinstance(engine.embedder, OnnxArcFaceEmbedder)
    assert isinstance(engine.detector, OnnxScrfdDetector)
    assert engine.model.key == f"tiny/1/{arc_digest[:16]}"
    assert settings.key == f"onnx/tiny/1/{det_digest[:16]}"
    assert EngineSettings(detector="hog").key == "hog/upsample=1/retry=-0.5"  # unchanged


# --- Any size, any layout, recognised from the file (issue 16) -----------------------------


def test_any_embedding_size_and_an_nhwc_input_run(tmp_path: Path) -> None:
    path = tmp_path / "nhwc.onnx"
    digest, weights = arcface_file(path, dimension=192, layout="NHWC")
    facts = inspect_model_file(path)
    assert (facts.dimension, facts.layout, facts.input_size) == (192, "NHWC", 112)
    assert facts.sources["layout"] == "file"
    assert facts.sha256 == digest
    embedder = OnnxArcFaceEmbedder(facts.spec("tiny", "1"))
    chip = np.zeros((112, 112, 3), dtype=np.uint8)
    chip[..., 0] = 255
    got = embedder.embed_batch([chip, chip])
    expected = (np.array([255.0, 0.0, 0.0]) - 127.5) / 127.5 @ weights.astype(np.float64)
    np.testing.assert_allclose(got, [expected, expected], rtol=1e-4, atol=3e-4)
    assert embedder.model.dimension == 192


def test_colour_order_and_a_fixed_batch_of_one(tmp_path: Path) -> None:
    path = tmp_path / "one.onnx"
    digest, weights = arcface_file(path, dimension=16, batch=1)
    red = np.zeros((112, 112, 3), dtype=np.uint8)
    red[..., 0] = 255
    rgb = OnnxArcFaceEmbedder(spec(path, digest))
    bgr = OnnxArcFaceEmbedder(spec(path, digest, colour="BGR"))
    # A file with a batch axis fixed at 1 (what tflite2onnx gives) runs chip by chip.
    np.testing.assert_allclose(rgb.embed_batch([red, red])[1], rgb.embed(red), rtol=1e-6)
    as_rgb = (np.array([255.0, 0.0, 0.0]) - 127.5) / 127.5 @ weights.astype(np.float64)
    as_bgr = (np.array([0.0, 0.0, 255.0]) - 127.5) / 127.5 @ weights.astype(np.float64)
    np.testing.assert_allclose(rgb.embed(red), as_rgb, rtol=1e-4, atol=3e-4)
    np.testing.assert_allclose(bgr.embed(red), as_bgr, rtol=1e-4, atol=3e-4)


def test_normalisation_is_read_from_the_graph_else_declared_else_the_default(
    tmp_path: Path,
) -> None:
    plain, own = tmp_path / "plain.onnx", tmp_path / "own.onnx"
    arcface_file(plain)
    arcface_file(own, layout="NHWC", normalises=True)
    facts = inspect_model_file(plain)
    assert (facts.input_mean, facts.input_std, facts.colour) == (127.5, 127.5, "RGB")
    assert facts.sources["input_mean"] == facts.sources["colour"] == "default"
    facts = inspect_model_file(own)
    assert (facts.input_mean, facts.input_std) == (0.0, 1.0)
    assert facts.sources["input_std"] == "file"
    facts = inspect_model_file(plain, input_std=128.0, colour="BGR")
    assert (facts.input_mean, facts.input_std, facts.colour) == (127.5, 128.0, "BGR")
    assert facts.sources["input_std"] == facts.sources["colour"] == "declared"
    assert facts.sources["input_mean"] == "default"
    with pytest.raises(OnnxModelError, match=r"declared layout NHWC but .* takes NCHW"):
        inspect_model_file(plain, layout="NHWC")
    with pytest.raises(OnnxModelError, match="input_std must not be 0"):
        inspect_model_file(plain, input_std=0.0)


def test_files_that_are_not_usable_face_models_each_get_a_one_line_refusal(
    tmp_path: Path,
) -> None:
    jpeg = tmp_path / "photo.onnx"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4)
    text = tmp_path / "notes.onnx"
    text.write_text("weights: see the vendor's portal\n")
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    small = tmp_path / "small.onnx"
    arcface_file(small, size=96)
    detector = tmp_path / "det.onnx"
    scrfd_file(detector)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07" + bytes(range(256)) * 8)
    expected = {
        jpeg: r"not an ONNX model: .* is a JPEG image",
        text: r"not an ONNX model: .* is a text file",
        tflite: r"is a TFLite model, which Candor does not run: convert it .*tflite2onnx",
        small: r"wrong input size: the model takes inputs \[\(\?, 3, 96, 96\)\]",
        detector: r"is a face detector \(SCRFD-class\), not a face-embedding model",
        garbage: r"not an ONNX model: ONNX Runtime cannot load",
        tmp_path / "absent.onnx": r"does not exist",
    }
    for path, message in expected.items():
        with pytest.raises(OnnxModelError, match=message) as caught:
            inspect_model_file(path)
        assert "\n" not in str(caught.value)
    # The same refusals stop an embedder whose spec names such a file.
    digest = hashlib.sha256(small.read_bytes()).hexdigest()
    with pytest.raises(OnnxModelError, match="wrong input size"):
        _ = OnnxArcFaceEmbedder(spec(small, digest)).model
    with pytest.raises(ValueError, match="wrong input size 96 for alignment arcface-112"):
        spec(small, digest, input_size=96)


def test_a_spec_whose_layout_the_file_contradicts_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    with pytest.raises(OnnxModelError, match=r"takes NCHW input .* not the NHWC"):
        _ = OnnxArcFaceEmbedder(spec(path, digest, layout="NHWC")).model


def test_the_template_itself_aligns_to_the_identity() -> None:
    template = arcface_module.ARCFACE_TEMPLATE
    nose_base = arcface_module.DLIB_NOSE_BASE
    # dlib landmarks whose eye centres and nose base sit on their template points.
    landmarks = np.array(
        [
            template[1] + [4.0, 0.0],
            template[1] - [4.0, 0.0],
            template[0] - [4.0, 0.0],
            template[0] + [4.0, 0.0],
            nose_base,
        ]
    )
    keypoints = np.vstack([template, template[3:5].mean(axis=0)])
    keypoints[3:5] = np.nan  # BlazeFace gives no mouth corners
    identity = np.hstack([np.eye(2), np.zeros((2, 1))])
    for points in ("eyes", "dlib", "keypoints", "combined"):
        matrix = arcface_transform(landmarks, keypoints, points)  # type: ignore[arg-type]
        np.testing.assert_allclose(matrix, identity, atol=1e-9)


def test_the_similarity_is_the_least_squares_one_and_never_a_mirror() -> None:
    rng = np.random.default_rng(3)
    target = arcface_module.ARCFACE_TEMPLATE
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -12.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    # Photo points such that scale * rotation @ photo + shift = template, plus noise.
    photo = (np.linalg.inv(rotation) @ (target - shift).T).T / scale
    matrix = similarity_transform(photo, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)
    noisy = photo + rng.normal(0.0, 0.5, photo.shape)
    fitted = similarity_transform(noisy, target)
    assert np.linalg.det(fitted[:, :2]) > 0.0
    residual = np.hstack([noisy, np.ones((5, 1))]) @ fitted.T - target
    # Least squares: nudging the fit only makes the residual larger.
    for nudge in (np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]), 0.01 * np.eye(2, 3)):
        worse = np.hstack([noisy, np.ones((5, 1))]) @ (fitted + nudge).T - target
        assert np.sum(worse**2) > np.sum(residual**2)
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((3, 2)), target[:3])


def test_the_embedder_aligns_on_keypoints_when_the_face_has_them(tmp_path: Path) -> None:
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    embedder = OnnxArcFaceEmbedder(spec(path, digest))
    # A bright dot at the keypoints' image-left eye: with keypoints (the template scaled
    # and shifted), it lands on the template's eye; the landmarks alone, placed elsewhere,
    # put it somewhere else.
    template = arcface_module.ARCFACE_TEMPLATE
    keypoints = 1.5 * np.vstack([template, template[3:5].mean(axis=0)]) + [20.0, 10.0]
    keypoints[3:5] = np.nan
    pixels = np.zeros((200, 200, 3), dtype=np.uint8)
    x, y = np.round(keypoints[0]).astype(int)
    pixels[y - 1 : y + 2, x - 1 : x + 2] = 255
    landmarks = frontal_landmarks(110.0, 70.0, 50.0)
    with_keypoints = OnnxArcFaceEmbedder(spec(path, digest), points="keypoints")
    chip = with_keypoints.aligned_chip(pixels, landmarks, keypoints)
    row, column = np.unravel_index(np.argmax(chip[..., 0]), chip.shape[:2])
    assert abs(column - 38.3) < 2.0 and abs(row - 51.7) < 2.0
    chip = embedder.aligned_chip(pixels, landmarks, None)
    row, column = np.unravel_index(np.argmax(chip[..., 0]), chip.shape[:2])
    assert abs(column - 38.3) > 4.0 or abs(row - 51.7) > 4.0


def test_the_chip_is_cut_from_the_photo_as_a_whole_photo_warp_would_cut_it() -> None:
    from PIL import Image

    pixels = np.random.default_rng(5).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    # Faces well inside, over the left edge, over the bottom-right corner, and rotated.
    for centre, eyes, tilt in (((200, 150), 60, 0), ((10, 150), 80, 5), ((390, 290), 50, -20)):
        landmarks = frontal_landmarks(centre[0], centre[1], eyes)
        angle = np.radians(tilt)
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        landmarks = (landmarks - centre) @ turn.T + centre
        matrix = arcface_transform(landmarks)
        inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
        whole = Image.fromarray(pixels).transform(
            (112, 112),
            Image.Transform.AFFINE,
            tuple(inverse.ravel()),
            resample=Image.Resampling.BILINEAR,
        )
        np.testing.assert_array_equal(arcface_module.warp_chip(pixels, matrix, 112), whole)
    far = np.array([[1.0, 0.0, -5000.0], [0.0, 1.0, 0.0]])
    assert not arcface_module.warp_chip(pixels, far, 112).any()


# --- The alignment is named and versioned (issue 16's note, item 2) ----------------------


def test_chips_cut_on_other_points_give_templates_another_model_key(tmp_path: Path) -> None:
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    own = OnnxArcFaceEmbedder(spec(path, digest)).model
    eyes = OnnxArcFaceEmbedder(spec(path, digest), points="eyes").model
    # The alignment's own points keep the key every stored template of such a model has.
    assert own.key == f"tiny/1/{digest[:16]}"
    assert OnnxArcFaceEmbedder(spec(path, digest), points="combined").model == own
    assert eyes.key == f"tiny/1+arcface-112-eyes/{digest[:16]}"
    assert eyes.key != own.key


def test_a_new_alignment_name_gives_templates_another_model_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "arc.onnx"
    digest, _ = arcface_file(path)
    later = arcface_module.Alignment(112, "dlib", (56.0, 78.0))
    monkeypatch.setitem(arcface_module.ALIGNMENTS, "arcface-112/v2", later)
    monkeypatch.setitem(arcface_module.ALIGNMENT_SIZES, "arcface-112/v2", 112)
    first = OnnxArcFaceEmbedder(spec(path, digest)).model
    second = OnnxArcFaceEmbedder(spec(path, digest, alignment="arcface-112/v2"))
    assert second.points == "dlib"
    assert second.model.key == f"tiny/1+arcface-112-v2/{digest[:16]}"
    assert second.model != first
    assert arcface_module.model_version("1", "arcface-112/v2") == "1+arcface-112-v2"


def test_the_points_of_arcface_112_never_change() -> None:
    # Every template of a registered model was cut on these points: new points need a new
    # alignment name (faces/onnx_models.ALIGNMENTS), not an edit of this one.
    template = arcface_module.ARCFACE_TEMPLATE
    keypoints = 1.5 * np.vstack([template, template[3:5].mean(axis=0)]) + [20.0, 10.0]
    keypoints[3:5] = np.nan
    landmarks = frontal_landmarks(110.0, 70.0, 50.0)
    alignment = arcface_module.ALIGNMENTS["arcface-112"]
    assert (alignment.size, alignment.points, alignment.nose_base) == (
        112,
        "combined",
        (55.963, 77.753),
    )
    matrix = arcface_transform(landmarks, keypoints)
    np.testing.assert_allclose(
        matrix,
        [[0.594564, 0.009875, -8.375287], [-0.009875, 0.594564, 5.974534]],
        atol=1e-4,
    )
