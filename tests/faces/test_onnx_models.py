"""ONNX embedder and detector, on tiny graphs built here with the `onnx` package."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from candor.faces import EngineSettings, FaceBox, FaceEmbedder, FaceEngine
from candor.faces.onnx_models import (
    OnnxArcFaceEmbedder,
    OnnxModelError,
    OnnxModelSpec,
    OnnxScrfdDetector,
    OnnxSignature,
    arcface_transform,
    recognise,
)
from tests.faces.helpers import FakeLandmarks, frontal_landmarks, image_of

OPSET = [helper.make_opsetid("", 17)]


def _save(model: onnx.ModelProto, path: Path) -> str:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def arcface_file(path: Path, dimension: int = 128) -> tuple[str, np.ndarray]:
    """(N,3,112,112) -> channel means (N,3) -> MatMul (3,D): a linear 'ArcFace'."""
    weights = np.random.default_rng(7).standard_normal((3, dimension)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["683"]),
        ],
        "tiny-arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", dimension])],
        [numpy_helper.from_array(weights, "w")],
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
    with pytest.raises(OnnxModelError, match="is an scrfd model, not an arcface"):
        _ = OnnxArcFaceEmbedder(spec(det, det_digest)).model
    with pytest.raises(OnnxModelError, match="is an arcface model, not an scrfd"):
        OnnxScrfdDetector(spec(arc, arc_digest)).detect(np.zeros((8, 8, 3), dtype=np.uint8))
    odd = OnnxSignature(inputs=((1, 3, 224, 224),), outputs=((1, 1000),))
    with pytest.raises(OnnxModelError, match=r"not a recognised face model: .*\(1, 1000\)"):
        recognise(odd)
    assert recognise(OnnxSignature(((None, 3, 112, 112),), ((None, 256),))) == "arcface"
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
    matrix = arcface_transform(landmarks)
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
    assert EngineSettings().key == "hog/upsample=1/retry=-0.5"  # dlib's key is unchanged
