"""ArcFace-class embedders and SCRFD-class detectors from ONNX files the operator provides.

Candor ships no such weights: an agency that holds a licensed model gives its file and
the sha256 it expects (`OnnxModelSpec`). The file is hashed before it is opened, and a
file whose bytes differ is refused, so a template's `ModelId` always names the bytes that
made it. ONNX Runtime runs the model on the CPU, or on CUDA where the operator asks for it
and the installed onnxruntime has that provider.

What a file is, is read from its own signature, as insightface's model_zoo does: an
embedder takes one image batch, (N, 3, S, S) (NCHW) or (N, S, S, 3) (NHWC), S being its
alignment template's size (112 for ArcFace's), and gives one (N, D) output, D any size; a
detector takes one (N, 3, H, W) image and gives 6, 9, 10 or 15 outputs (scores, boxes and,
for 9 and 15, five keypoints, at 3 or 5 strides). Anything else is refused with the shapes
it has, rather than being run on a guess. `inspect_model_file` says what a file is before
it is registered: each value recognised from the file, declared by the operator, or the
ArcFace default, and which.

Alignment ("arcface-112"): a similarity transform, fitted by least squares (Umeyama), takes
the face's named points onto ArcFace's 112 x 112 template, then the photo is resampled
bilinearly. The points are the detector's own keypoints where it gives them (BlazeFace:
eye centres, nose tip, mouth centre) and the points of dlib's 5 landmarks (eye centres
from their corners, the base of the nose at a template point measured on lfw-dev); see
`arcface_transform` and bench/results/alignment_arcface.json for why.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from PIL import Image

from candor.faces.records import KEYPOINT_NAMES, FaceBox, FloatArray, UInt8Array
from candor.faces.registry import ModelId

Provider = Literal["cpu", "cuda"]
ModelKind = Literal["arcface", "scrfd"]
Layout = Literal["NCHW", "NHWC"]
Colour = Literal["RGB", "BGR"]
# Where a value of `ModelFileFacts` came from: the file itself (its signature or graph),
# the operator's declaration, or the ArcFace default.
ValueSource = Literal["file", "declared", "default"]
# Which named points the alignment fits (see `arcface_transform`); the bench compares them.
AlignmentPoints = Literal["eyes", "dlib", "keypoints", "combined"]

ARCFACE_SIZE: Final = 112
# insightface's arcface_dst: eye centres (image left, image right), nose tip, mouth corners.
ARCFACE_TEMPLATE: Final = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
# The template point of each keypoint row (`KEYPOINT_NAMES` order); the mouth centre has
# none of its own in ArcFace's template, so it is the mean of the two corners.
_KEYPOINT_TEMPLATE: Final = np.vstack([ARCFACE_TEMPLATE, ARCFACE_TEMPLATE[3:5].mean(axis=0)])


@dataclass(frozen=True)
class Alignment:
    """What a named alignment cuts: the chip's side, the points it fits (`alignment_points`)
    and the template point of dlib's base of the nose.

    A name's points never change. A template's key and an evaluation cache entry carry the
    name (`model_version`, `alignment_key`), so new points under an old name would put chips
    cut two ways under one key: a new point set is a new name ("arcface-112/v2") added
    beside the old one, which stays for the models registered with it.
    """

    size: int
    points: AlignmentPoints
    nose_base: tuple[float, float]


# Alignments a model may name. "arcface-112" is the point set of every model registered
# since issue 16 (tests/faces/test_onnx_models.py pins its transform). Its nose base is
# where dlib's 5th landmark lands in ArcFace chips aligned on BlazeFace's keypoints: the
# mean over the 3,789 lfw-dev photos of lfw-dev-pairs.txt, with dlib's landmarks from HOG's
# boxes and from BlazeFace's alike (55.95, 77.75 and 55.97, 77.75; per-photo spread about
# 2 px), bench/results/alignment_arcface.json.
ALIGNMENTS: Final[dict[str, Alignment]] = {
    "arcface-112": Alignment(ARCFACE_SIZE, "combined", (55.963, 77.753)),
}
DEFAULT_ALIGNMENT: Final = "arcface-112"
# The chip size each alignment makes.
ALIGNMENT_SIZES: Final[dict[str, int]] = {name: a.size for name, a in ALIGNMENTS.items()}
DLIB_NOSE_BASE: Final = np.array(ALIGNMENTS[DEFAULT_ALIGNMENT].nose_base)
# Templates of models registered with this alignment (all so far) carry the model's version
# alone in their key; any other alignment or point set adds itself (`model_version`).
_FIRST_ALIGNMENT: Final = "arcface-112"
# insightface's ArcFace exports: (pixel - 127.5) / 127.5 outside the graph.
DEFAULT_INPUT_MEAN: Final = 127.5
DEFAULT_INPUT_STD: Final = 127.5
# Number of outputs -> (strides, keypoints present), after insightface's SCRFD class.
_SCRFD_LAYOUTS: Final[dict[int, tuple[tuple[int, ...], bool]]] = {
    6: ((8, 16, 32), False),
    9: ((8, 16, 32), True),
    10: ((8, 16, 32, 64, 128), False),
    15: ((8, 16, 32, 64, 128), True),
}
_PROVIDERS: Final[dict[str, str]] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
}


class OnnxModelError(ValueError):
    """An ONNX model file is missing, differs from its declared hash, or is not recognised."""


@dataclass(frozen=True)
class OnnxModelSpec:
    """An operator-provided ONNX model: where it is, which bytes it must be, how to run it.

    name, version: how templates will name the model (an embedder's `ModelId`).
    sha256: the hex digest the operator declares; the file is refused when it differs.
    provider: "cpu", or "cuda" where onnxruntime-gpu and a GPU are present.
    input_mean, input_std: pixel normalisation, (value - mean) / std; 127.5 and 127.5
        for insightface's ArcFace exports, 127.5 and 128.0 for its SCRFD exports, 0 and 1
        for a graph that normalises its input itself.
    threads: ONNX Runtime intra-op threads (0: its default, one per core).
    layout: an embedder's input, "NCHW" (N, 3, S, S) or "NHWC" (N, S, S, 3).
    input_size: S, the side of the chip; it must be the alignment's (112 for arcface-112).
    colour: channel order the embedder expects, "RGB" or "BGR".
    alignment: how the face is cut out for it; "arcface-112" (see `arcface_transform`).
    """

    name: str
    version: str
    path: Path
    sha256: str
    provider: Provider = "cpu"
    input_mean: float = DEFAULT_INPUT_MEAN
    input_std: float = DEFAULT_INPUT_STD
    threads: int = 0
    layout: Layout = "NCHW"
    input_size: int = ARCFACE_SIZE
    colour: Colour = "RGB"
    alignment: str = DEFAULT_ALIGNMENT

    def __post_init__(self) -> None:
        digest = self.sha256.lower()
        if len(digest) != 64 or any(char not in "0123456789abcdef" for char in digest):
            raise ValueError(f"sha256 of {self.name} must be 64 hex digits")
        if self.provider not in _PROVIDERS:
            raise ValueError(f"unknown provider {self.provider!r}; use 'cpu' or 'cuda'")
        _check_declared(self.layout, self.input_mean, self.input_std, self.colour)
        if self.alignment not in ALIGNMENT_SIZES:
            raise ValueError(
                f"unknown alignment {self.alignment!r}; use one of {sorted(ALIGNMENT_SIZES)}"
            )
        if self.input_size != ALIGNMENT_SIZES[self.alignment]:
            raise ValueError(
                f"wrong input size {self.input_size} for alignment {self.alignment}: "
                f"its chips are {ALIGNMENT_SIZES[self.alignment]} x "
                f"{ALIGNMENT_SIZES[self.alignment]}"
            )


def _check_declared(
    layout: str | None, input_mean: float | None, input_std: float | None, colour: str | None
) -> None:
    """One-line errors for declared values that cannot be right."""
    if layout is not None and layout not in get_args(Layout):
        raise OnnxModelError(f"unknown input layout {layout!r}; use 'NCHW' or 'NHWC'")
    if colour is not None and colour not in get_args(Colour):
        raise OnnxModelError(f"unknown colour order {colour!r}; use 'RGB' or 'BGR'")
    for label, value in (("input_mean", input_mean), ("input_std", input_std)):
        if value is not None and not math.isfinite(value):
            raise OnnxModelError(f"{label} must be a finite number, not {value}")
    if input_std == 0.0:
        raise OnnxModelError("input_std must not be 0")


@dataclass(frozen=True)
class OnnxSignature:
    """The input and output shapes an ONNX file declares (None for a symbolic axis)."""

    inputs: tuple[tuple[int | None, ...], ...]
    outputs: tuple[tuple[int | None, ...], ...]

    def __str__(self) -> str:
        def show(shapes: tuple[tuple[int | None, ...], ...]) -> str:
            return ", ".join(
                "(" + ", ".join("?" if axis is None else str(axis) for axis in shape) + ")"
                for shape in shapes
            )

        return f"inputs [{show(self.inputs)}], outputs [{show(self.outputs)}]"


def _axis(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def signature_of(session: Any) -> OnnxSignature:
    """The declared shapes of an onnxruntime InferenceSession."""
    return OnnxSignature(
        inputs=tuple(tuple(_axis(a) for a in item.shape) for item in session.get_inputs()),
        outputs=tuple(tuple(_axis(a) for a in item.shape) for item in session.get_outputs()),
    )


def image_input(
    shape: tuple[int | None, ...],
) -> tuple[Layout | None, int | None, int | None] | None:
    """(layout, height, width) of a 4-D image input; None when the shape is not one.

    (N, 3, H, W) is NCHW and (N, H, W, 3) is NHWC; a layout the shape leaves open (its
    channel axes symbolic) is None, and so is a symbolic height or width.
    """
    if len(shape) != 4:
        return None
    _, first, middle, last = shape
    if first == 3 and last != 3:
        return "NCHW", middle, last
    if last == 3 and first != 3:
        return "NHWC", first, middle
    if first == 3 and last == 3:
        # Only a 3-pixel-wide input looks like both; NCHW is what most exports give.
        return "NCHW", middle, last
    if first is None and last is None:
        return None, middle, None
    if first is None:
        return "NCHW", middle, last
    if last is None:
        return "NHWC", first, middle
    return None


def _is_embedding(signature: OnnxSignature) -> bool:
    return (
        len(signature.outputs) == 1
        and len(signature.outputs[0]) == 2
        and (signature.outputs[0][1] is None or signature.outputs[0][1] >= 2)
    )


def recognise(signature: OnnxSignature, input_size: int = ARCFACE_SIZE) -> ModelKind:
    """Which kind of model the shapes say ("arcface" or "scrfd"); OnnxModelError otherwise.

    An embedder whose input is not `input_size` square (the alignment's chip) is refused
    as having the wrong input size, naming the shape it has.
    """
    if len(signature.inputs) == 1 and (image := image_input(signature.inputs[0])) is not None:
        layout, height, width = image
        if _is_embedding(signature):
            sides = {side for side in (height, width) if side is not None}
            if sides - {input_size}:
                raise OnnxModelError(
                    f"wrong input size: the model takes {signature}; an ArcFace-class "
                    f"embedder takes {input_size} x {input_size} chips, (N, 3, {input_size}, "
                    f"{input_size}) or (N, {input_size}, {input_size}, 3)"
                )
            return "arcface"
        if (
            layout in ("NCHW", None)
            and len(signature.outputs) in _SCRFD_LAYOUTS
            and all(len(shape) in (2, 3) for shape in signature.outputs)
        ):
            return "scrfd"
    raise OnnxModelError(
        f"not a recognised face model: {signature}; expected an ArcFace-class embedder "
        f"(one (N, 3, {input_size}, {input_size}) or (N, {input_size}, {input_size}, 3) "
        f"input, one (N, D) output) or an SCRFD-class detector (one (N, 3, H, W) input, "
        f"{sorted(_SCRFD_LAYOUTS)} outputs)"
    )


_KIND_WORDS: Final[dict[str, str]] = {
    "arcface": "a face-embedding model (ArcFace-class)",
    "scrfd": "a face detector (SCRFD-class)",
}


def _what_it_is(data: bytes) -> str | None:
    """What a file that is certainly not ONNX is, in words; None when it may be ONNX."""
    if not data:
        return "an empty file"
    if data.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "a PNG image"
    if data.startswith((b"GIF87a", b"GIF89a")) or data[8:12] == b"WEBP":
        return "an image"
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the head is still text.
        text = head[:-4].decode("utf-8", errors="replace") if len(head) > 4 else ""
        if "\ufffd" in text:
            return None
    # An ONNX file begins with its IR version's tag, byte 0x08: never text.
    if text and all(char.isprintable() or char in "\t\n\r" for char in text):
        return "a text file"
    return None


def _read_model(path: Path) -> bytes:
    """The file's bytes; one-line errors for a file that is missing, TFLite or not ONNX."""
    if not path.is_file():
        raise OnnxModelError(f"model file {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise OnnxModelError(f"model file {path} cannot be read: {error.strerror}") from None
    # A TFLite flatbuffer carries its file identifier at bytes 4 to 8.
    if data[4:8] == b"TFL3":
        raise OnnxModelError(
            f"{path} is a TFLite model, which Candor does not run: convert it to ONNX first "
            f"(pip install tflite2onnx; tflite2onnx {path.name} {path.stem}.onnx) and add "
            "the .onnx file"
        )
    what = _what_it_is(data)
    if what is not None:
        raise OnnxModelError(f"not an ONNX model: {path} is {what}")
    return data


def _session(path: Path, data: bytes, provider: Provider, threads: int) -> Any:
    """An ONNX Runtime session over these bytes (the ones hashed, whatever the file is now)."""
    # Imported here so that dlib-only engines never load it; it ships no type information.
    onnxruntime: Any = importlib.import_module("onnxruntime")

    name = _PROVIDERS[provider]
    available = onnxruntime.get_available_providers()
    if name not in available:
        raise OnnxModelError(
            f"ONNX Runtime provider {name} is not available here (have {available})"
        )
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(data, options, providers=[name])
    except Exception as error:  # onnxruntime raises its own untyped errors
        reason = " ".join(str(error).split())[:200]
        raise OnnxModelError(
            f"not an ONNX model: ONNX Runtime cannot load {path} ({reason})"
        ) from None


def open_session(spec: OnnxModelSpec, expected: ModelKind) -> tuple[Any, OnnxSignature]:
    """Check the file's hash, open it with ONNX Runtime and check what kind of model it is."""
    data = _read_model(spec.path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256.lower():
        raise OnnxModelError(
            f"model file {spec.path} has sha256 {actual}, not the declared {spec.sha256}; "
            "refusing a model whose bytes are not the ones declared"
        )
    session = _session(spec.path, data, spec.provider, spec.threads)
    signature = signature_of(session)
    kind = recognise(signature, spec.input_size)
    if kind != expected:
        raise OnnxModelError(f"{spec.path} is {_KIND_WORDS[kind]}, not {_KIND_WORDS[expected]}")
    if kind == "arcface":
        layout = image_input(signature.inputs[0])
        if layout is not None and layout[0] not in (None, spec.layout):
            raise OnnxModelError(
                f"{spec.path} takes {layout[0]} input ({signature}), not the {spec.layout} "
                "its record names"
            )
    return session, signature


# --- What a file is, before it is registered ----------------------------------------------


@dataclass(frozen=True)
class ModelFileFacts:
    """What `inspect_model_file` found: how to run an embedder file, and where each value
    came from (`sources`: "file" for its signature or graph, "declared" for the operator's
    word, "default" for ArcFace's usual value)."""

    path: Path
    sha256: str
    dimension: int
    layout: Layout
    input_size: int
    input_mean: float
    input_std: float
    colour: Colour
    alignment: str
    sources: Mapping[str, ValueSource]

    def spec(
        self, name: str, version: str, *, provider: Provider = "cpu", threads: int = 0
    ) -> OnnxModelSpec:
        """The spec that runs this file as these facts say."""
        return OnnxModelSpec(
            name=name,
            version=version,
            path=self.path,
            sha256=self.sha256,
            provider=provider,
            input_mean=self.input_mean,
            input_std=self.input_std,
            threads=threads,
            layout=self.layout,
            input_size=self.input_size,
            colour=self.colour,
            alignment=self.alignment,
        )


def inspect_model_file(
    path: Path,
    *,
    layout: Layout | None = None,
    input_mean: float | None = None,
    input_std: float | None = None,
    colour: Colour | None = None,
) -> ModelFileFacts:
    """Hash an embedder file, open it with ONNX Runtime and say how to run it.

    Each value is recognised from the file where it says it: the layout and size from its
    input's shape, the embedding size from one run of the network on a blank chip, and the
    normalisation from its graph (a graph whose input goes first into Sub, Mul, Div or Add
    normalises itself, as insightface's model_zoo reads it: mean 0, std 1). Otherwise the
    declared value is used, else ArcFace's default (NCHW, (x - 127.5) / 127.5, RGB). A
    declaration the file contradicts (a layout) is refused. Raises OnnxModelError, one
    line, for a file that is not ONNX, TFLite, a detector, or the wrong input size.
    """
    _check_declared(layout, input_mean, input_std, colour)
    data = _read_model(path)
    digest = hashlib.sha256(data).hexdigest()
    session = _session(path, data, "cpu", 1)
    signature = signature_of(session)
    alignment = DEFAULT_ALIGNMENT
    size = ALIGNMENT_SIZES[alignment]
    kind = recognise(signature, size)
    if kind != "arcface":
        raise OnnxModelError(
            f"{path} is {_KIND_WORDS[kind]}, not a face-embedding model: {signature}"
        )
    sources: dict[str, ValueSource] = {"alignment": "default", "dimension": "file"}
    image = image_input(signature.inputs[0])
    assert image is not None  # recognise found an image input
    file_layout, height, width = image
    if file_layout is not None:
        if layout is not None and layout != file_layout:
            raise OnnxModelError(
                f"declared layout {layout} but {path} takes {file_layout} input ({signature})"
            )
        chosen_layout: Layout = file_layout
        sources["layout"] = "file"
    else:
        chosen_layout = layout or "NCHW"
        sources["layout"] = "declared" if layout else "default"
    sources["input_size"] = "file" if height is not None or width is not None else "default"
    if input_mean is not None or input_std is not None:
        mean = DEFAULT_INPUT_MEAN if input_mean is None else input_mean
        std = DEFAULT_INPUT_STD if input_std is None else input_std
        sources["input_mean"] = "declared" if input_mean is not None else "default"
        sources["input_std"] = "declared" if input_std is not None else "default"
    elif normalises_input(data, session.get_inputs()[0].name):
        mean, std = 0.0, 1.0
        sources["input_mean"] = sources["input_std"] = "file"
    else:
        mean, std = DEFAULT_INPUT_MEAN, DEFAULT_INPUT_STD
        sources["input_mean"] = sources["input_std"] = "default"
    sources["colour"] = "declared" if colour else "default"
    blank = np.zeros((1, 3, size, size), dtype=np.float32)
    if chosen_layout == "NHWC":
        blank = np.ascontiguousarray(blank.transpose(0, 2, 3, 1))
    try:
        (output,) = session.run(None, {session.get_inputs()[0].name: blank})
    except Exception as error:  # onnxruntime raises its own untyped errors
        reason = " ".join(str(error).split())[:200]
        raise OnnxModelError(f"{path} does not run on a {chosen_layout} chip: {reason}") from None
    output = np.asarray(output)
    if output.ndim != 2 or output.shape[0] != 1 or output.shape[1] < 2:
        raise OnnxModelError(
            f"{path} gives an output of shape {output.shape} for one chip, not (1, D)"
        )
    return ModelFileFacts(
        path=path,
        sha256=digest,
        dimension=int(output.shape[1]),
        layout=chosen_layout,
        input_size=size,
        input_mean=float(mean),
        input_std=float(std),
        colour=colour or "RGB",
        alignment=alignment,
        sources=sources,
    )


# A minimal reader of ONNX's protobuf (the onnx package is a development dependency only):
# enough to find the operators that consume the graph's input.
_PASS_THROUGH: Final = frozenset({"Transpose", "Cast", "Identity", "Reshape"})
_ARITHMETIC: Final = frozenset({"Sub", "Mul", "Div", "Add"})


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise OnnxModelError("malformed protobuf in the model file")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited field or None) of one protobuf message."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        wire = key & 7
        value: memoryview | None = None
        if wire == 0:
            _, at = _varint(data, at)
        elif wire == 1:
            at += 8
        elif wire == 2:
            length, at = _varint(data, at)
            value = data[at : at + length]
            at += length
        elif wire == 5:
            at += 4
        else:
            raise OnnxModelError("malformed protobuf in the model file")
        if at > len(data):
            raise OnnxModelError("malformed protobuf in the model file")
        yield key >> 3, value


def graph_nodes(data: bytes) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(op_type, inputs, outputs) of each node of an ONNX model's main graph, in order."""
    graph: memoryview | None = None
    for field, value in _fields(memoryview(data)):
        if field == 7 and value is not None:  # ModelProto.graph
            graph = value
    nodes: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    if graph is None:
        return nodes
    for field, value in _fields(graph):
        if field != 1 or value is None:  # GraphProto.node
            continue
        inputs: list[str] = []
        outputs: list[str] = []
        op_type = ""
        for part, text in _fields(value):
            if text is None:
                continue
            if part == 1:
                inputs.append(bytes(text).decode("utf-8", "replace"))
            elif part == 2:
                outputs.append(bytes(text).decode("utf-8", "replace"))
            elif part == 4:
                op_type = bytes(text).decode("utf-8", "replace")
        nodes.append((op_type, tuple(inputs), tuple(outputs)))
    return nodes


def normalises_input(data: bytes, input_name: str) -> bool:
    """True when the graph's input goes first (past layout-only operators) into arithmetic.

    insightface's model_zoo reads Sub and Mul among a graph's first nodes the same way:
    such a graph takes raw pixels (mean 0, std 1) and normalises them itself.
    """
    nodes = graph_nodes(data)
    names = {input_name}
    for _ in range(4):
        consumers = [node for node in nodes if names.intersection(node[1])]
        if any(op in _ARITHMETIC for op, _, _ in consumers):
            return True
        names = {out for op, _, outs in consumers if op in _PASS_THROUGH for out in outs}
        if not names:
            return False
    return False


# --- Alignment ------------------------------------------------------------------------------

# lfw-dev-pairs.txt, 10 folds, shared MobileFaceNet (bench/results/alignment_arcface.json):
# eyes 0.9877 (HOG) / 0.9890 (BlazeFace), dlib's 3 points 0.9917 / 0.9913, BlazeFace's 4
# keypoints 0.9903, combined 0.9923. The differences are within a fold's spread (about
# 0.004), but adding the nose base beats the eyes alone with either detector, and
# "combined" is best with BlazeFace and is "dlib" for a face without keypoints.
DEFAULT_POINTS: Final[AlignmentPoints] = ALIGNMENTS[DEFAULT_ALIGNMENT].points


def alignment_key(alignment: str, points: AlignmentPoints | None = None) -> str:
    """The alignment and what it fits, as evaluation cache entries record it, e.g.
    "arcface-112/points=combined/nose=55.963,77.753" (`points` overrides its own)."""
    chosen = ALIGNMENTS[alignment]
    nose = ",".join(f"{value:g}" for value in chosen.nose_base)
    return f"{alignment}/points={points or chosen.points}/nose={nose}"


def model_version(version: str, alignment: str, points: AlignmentPoints | None = None) -> str:
    """The version a template's `ModelId` carries for a model of `version` cut by
    `alignment` (with `points` instead of its own, for a measurement).

    Every key stored so far was made with arcface-112's own points and says `version`
    alone; it stays so. Any other alignment or point set adds its name ("1+arcface-112-v2",
    "1+arcface-112-eyes"), so templates cut two ways never share a key and never meet.
    """
    own = ALIGNMENTS[alignment].points
    tag = alignment if points in (None, own) else f"{alignment}-{points}"
    if tag == _FIRST_ALIGNMENT:
        return version
    # A key is "name/version/sha": the version holds no "/".
    return f"{version}+{tag.replace('/', '-')}"


def similarity_transform(
    source: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """2 x 3 matrix of the similarity (rotation, one scale, shift) taking `source` points
    nearest to `target` points in least squares (Umeyama, 1991, never a reflection).

    In the plane it has a closed form: with the points as complex numbers centred on
    their means, the rotation and scale are c = sum(conj(s) t) / sum(|s|^2).
    """
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2:
        raise ValueError(f"expected two (K, 2) point sets, got {source.shape} and {target.shape}")
    if len(source) < 2:
        raise ValueError("a similarity transform needs at least 2 points")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    x, y = (source - source_mean).T
    u, v = (target - target_mean).T
    spread = float(np.dot(x, x) + np.dot(y, y))
    if not spread > 0.0:
        raise ValueError("the face's points coincide; no alignment is possible")
    a = float(np.dot(x, u) + np.dot(y, v)) / spread
    b = float(np.dot(x, v) - np.dot(y, u)) / spread
    linear = np.array([[a, -b], [b, a]])
    shift = target_mean - linear @ source_mean
    return np.hstack([linear, shift[:, np.newaxis]])


def alignment_points(
    landmarks: FloatArray,
    keypoints: FloatArray | None,
    points: AlignmentPoints = DEFAULT_POINTS,
    *,
    nose_base: npt.NDArray[np.float64] = DLIB_NOSE_BASE,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(face points in image pixels, their ArcFace template points), for `points`:

    "eyes": the eye centres of dlib's landmarks (Candor's alignment before issue 16);
    "dlib": those and dlib's base of the nose (`DLIB_NOSE_BASE` in the template);
    "keypoints": the detector's keypoints present (finite rows; the mouth centre only
        where a mouth corner is missing), or "dlib" for a face without at least two;
    "combined": the keypoints present and dlib's three points, fitted together.
    nose_base: the template point of dlib's base of the nose (the measured one unless a
        measurement is being made).
    """
    marks = np.asarray(landmarks, dtype=np.float64)
    if marks.shape != (5, 2) or not np.all(np.isfinite(marks)):
        raise ValueError(f"expected (5, 2) finite landmarks, got {marks.shape}")
    # dlib's order: 0-1 corners of the eye on the image's right, 2-3 the image's left.
    dlib_source = np.array([(marks[2] + marks[3]) / 2.0, (marks[0] + marks[1]) / 2.0, marks[4]])
    dlib_target = np.vstack([ARCFACE_TEMPLATE[:2], nose_base])
    if points == "eyes":
        return dlib_source[:2], dlib_target[:2]
    if points == "dlib" or keypoints is None:
        return dlib_source, dlib_target
    found = np.asarray(keypoints, dtype=np.float64)
    if found.shape != (len(KEYPOINT_NAMES), 2):
        raise ValueError(f"expected ({len(KEYPOINT_NAMES)}, 2) keypoints, got {found.shape}")
    present = np.all(np.isfinite(found), axis=1)
    if present[3] and present[4]:
        # Both corners given: the centre between them adds nothing.
        present[5] = False
    if points == "keypoints":
        if present.sum() < 2:
            return dlib_source, dlib_target
        return found[present], _KEYPOINT_TEMPLATE[present]
    return (
        np.vstack([found[present], dlib_source]),
        np.vstack([_KEYPOINT_TEMPLATE[present], dlib_target]),
    )


def arcface_transform(
    landmarks: FloatArray,
    keypoints: FloatArray | None = None,
    points: AlignmentPoints = DEFAULT_POINTS,
    *,
    nose_base: npt.NDArray[np.float64] = DLIB_NOSE_BASE,
) -> npt.NDArray[np.float64]:
    """2 x 3 affine matrix taking image pixels to ArcFace chip pixels (see `alignment_points`)."""
    return similarity_transform(
        *alignment_points(landmarks, keypoints, points, nose_base=nose_base)
    )


def warp_chip(pixels: UInt8Array, matrix: npt.NDArray[np.float64], size: int) -> UInt8Array:
    """The `size` x `size` chip that `matrix` (image to chip pixels) cuts out, bilinearly."""
    # PIL wants the map from output pixels back to input pixels.
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    # Only the part of the photo under the chip (and a pixel around it for the bilinear
    # filter) is handed to PIL: a 12-megapixel photo is not copied for each face.
    corners = inverse @ np.array([[0.0, size, 0.0, size], [0.0, 0.0, size, size], [1, 1, 1, 1]])
    height, width = pixels.shape[:2]
    left = min(max(math.floor(corners[0].min()) - 1, 0), width)
    top = min(max(math.floor(corners[1].min()) - 1, 0), height)
    right = max(min(math.ceil(corners[0].max()) + 2, width), left)
    bottom = max(min(math.ceil(corners[1].max()) + 2, height), top)
    if right == left or bottom == top:
        return np.zeros((size, size, 3), dtype=np.uint8)
    region = np.ascontiguousarray(pixels[top:bottom, left:right], dtype=np.uint8)
    inverse[:, 2] -= [left, top]
    warped = Image.fromarray(region, "RGB").transform(
        (size, size),
        Image.Transform.AFFINE,
        tuple(float(value) for value in inverse.ravel()),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(warped, dtype=np.uint8)


def _to_batch(
    images: Sequence[UInt8Array],
    mean: float,
    std: float,
    layout: Layout = "NCHW",
    colour: Colour = "RGB",
) -> npt.NDArray[np.float32]:
    stacked = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    if colour == "BGR":
        stacked = stacked[..., ::-1]
    normalised = (stacked - mean) / std
    if layout == "NCHW":
        normalised = normalised.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(normalised, dtype=np.float32)


class OnnxArcFaceEmbedder:
    """An ArcFace-class embedder (aligned S x S chip in, D-dimensional vector out).

    points: which named points the alignment fits (`alignment_points`); by default the
        spec's alignment's own. Other points (a measurement) give another model key.
    The session opens on first use (hash check included); `model` hashes the file only.
    """

    def __init__(self, spec: OnnxModelSpec, *, points: AlignmentPoints | None = None) -> None:
        if points is not None and points not in get_args(AlignmentPoints):
            raise ValueError(f"unknown alignment points {points!r}")
        self.spec = spec
        alignment = ALIGNMENTS[spec.alignment]
        self.points: AlignmentPoints = points or alignment.points
        self._nose_base = np.array(alignment.nose_base)
        self._session: Any = None
        self._input_name = ""
        self._dimension: int | None = None
        self._one_at_a_time = False

    def _open(self) -> Any:
        if self._session is None:
            session, signature = open_session(self.spec, "arcface")
            self._input_name = session.get_inputs()[0].name
            # A file converted with a fixed batch of 1 (tflite2onnx gives that) runs per chip.
            self._one_at_a_time = signature.inputs[0][0] == 1
            dimension = signature.outputs[0][1]
            if dimension is None:
                blank = np.zeros((1, self.spec.input_size, self.spec.input_size, 3), np.uint8)
                dimension = self._run(session, [blank[0]]).shape[1]
            self._dimension = dimension
            self._session = session
        return self._session

    @property
    def model(self) -> ModelId:
        self._open()
        if self._dimension is None:
            raise OnnxModelError(f"{self.spec.path} declares no output dimension")
        return ModelId(
            name=self.spec.name,
            version=model_version(self.spec.version, self.spec.alignment, self.points),
            weights_sha256=self.spec.sha256.lower(),
            dimension=self._dimension,
        )

    def aligned_chip(
        self, pixels: UInt8Array, landmarks: FloatArray, keypoints: FloatArray | None = None
    ) -> UInt8Array:
        matrix = arcface_transform(landmarks, keypoints, self.points, nose_base=self._nose_base)
        return warp_chip(pixels, matrix, self.spec.input_size)

    def embed(self, chip: UInt8Array) -> npt.NDArray[np.float32]:
        vector: npt.NDArray[np.float32] = self.embed_batch([chip])[0]
        return vector

    def embed_batch(self, chips: Sequence[UInt8Array]) -> npt.NDArray[np.float32]:
        """(len(chips), D) vectors in one run of the network (one run per chip for a file
        whose batch axis is fixed at 1)."""
        size = self.spec.input_size
        for chip in chips:
            if chip.shape != (size, size, 3) or chip.dtype != np.uint8:
                raise ValueError(f"expected ({size}, {size}, 3) uint8 chips")
        if not chips:
            return np.zeros((0, self.model.dimension), dtype=np.float32)
        return self._run(self._open(), chips)

    def _run(self, session: Any, chips: Sequence[UInt8Array]) -> npt.NDArray[np.float32]:
        spec = self.spec
        groups = [[chip] for chip in chips] if self._one_at_a_time else [list(chips)]
        outputs = []
        for group in groups:
            batch = _to_batch(group, spec.input_mean, spec.input_std, spec.layout, spec.colour)
            (output,) = session.run(None, {self._input_name: batch})
            outputs.append(np.asarray(output, dtype=np.float32).reshape(len(group), -1))
        return np.concatenate(outputs)


class OnnxScrfdDetector:
    """An SCRFD-class detector: anchor-free boxes at 3 or 5 strides, scored and merged by NMS.

    input_size: (width, height) the photo is letterboxed into when the file's own input
        size is symbolic; a file with a fixed size uses that.
    threshold: lowest face score kept; nms_threshold: overlap above which the weaker of
        two boxes is dropped.
    """

    def __init__(
        self,
        spec: OnnxModelSpec,
        *,
        input_size: tuple[int, int] = (640, 640),
        threshold: float = 0.5,
        nms_threshold: float = 0.4,
    ) -> None:
        self.spec = spec
        self.input_size = input_size
        self.threshold = threshold
        self.nms_threshold = nms_threshold
        self._session: Any = None
        self._input_name = ""
        self._strides: tuple[int, ...] = ()
        self.keypoints_present = False

    @property
    def key(self) -> str:
        return (
            f"{self.spec.name}-{self.spec.version}-{self.spec.sha256.lower()[:16]}/"
            f"size={self.input_size[0]}x{self.input_size[1]}/threshold={self.threshold:g}"
        )

    def _open(self) -> Any:
        if self._session is None:
            session, signature = open_session(self.spec, "scrfd")
            height, width = signature.inputs[0][2:]
            if height is not None and width is not None:
                self.input_size = (width, height)
            self._strides, self.keypoints_present = _SCRFD_LAYOUTS[len(signature.outputs)]
            self._input_name = session.get_inputs()[0].name
            self._session = session
        return self._session

    def detect(self, pixels: UInt8Array) -> list[tuple[FaceBox, float]]:
        session = self._open()
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB pixels, got {pixels.shape}")
        width, height = self.input_size
        scale = min(width / pixels.shape[1], height / pixels.shape[0])
        resized = Image.fromarray(np.ascontiguousarray(pixels), "RGB").resize(
            (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
            Image.Resampling.BILINEAR,
        )
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[: resized.height, : resized.width] = np.asarray(resized)
        batch = _to_batch([canvas], self.spec.input_mean, self.spec.input_std)
        outputs = [np.asarray(item) for item in session.run(None, {self._input_name: batch})]
        boxes, scores = self._decode(outputs, width, height)
        keep = _nms(boxes, scores, self.nms_threshold)
        return [
            (
                FaceBox(
                    left=math.floor(boxes[row, 0] / scale),
                    top=math.floor(boxes[row, 1] / scale),
                    right=math.ceil(boxes[row, 2] / scale),
                    bottom=math.ceil(boxes[row, 3] / scale),
                ),
                float(scores[row]),
            )
            for row in keep
        ]

    def _decode(
        self, outputs: list[np.ndarray], width: int, height: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        count = len(self._strides)
        all_boxes: list[np.ndarray] = []
        all_scores: list[np.ndarray] = []
        for level, stride in enumerate(self._strides):
            # Batched exports add a leading axis of 1; the layout is otherwise the same.
            scores = outputs[level].reshape(-1).astype(np.float64)
            distances = outputs[level + count].reshape(-1, 4).astype(np.float64) * stride
            cells = (height // stride) * (width // stride)
            if cells == 0 or len(scores) % cells:
                raise OnnxModelError(
                    f"{self.spec.path}: {len(scores)} scores at stride {stride} do not fit a "
                    f"{width}x{height} input"
                )
            anchors = len(scores) // cells
            ys, xs = np.mgrid[: height // stride, : width // stride]
            centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float64) * stride
            centres = np.repeat(centres, anchors, axis=0)
            chosen = np.flatnonzero(scores >= self.threshold)
            centre, distance = centres[chosen], distances[chosen]
            all_boxes.append(np.hstack([centre - distance[:, :2], centre + distance[:, 2:]]))
            all_scores.append(scores[chosen])
        return np.vstack(all_boxes), np.concatenate(all_scores)


def _nms(
    boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], threshold: float
) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order:
        best = int(order.pop(0))
        keep.append(best)
        if not order:
            break
        rest = np.asarray(order)
        left = np.maximum(boxes[best, 0], boxes[rest, 0])
        top = np.maximum(boxes[best, 1], boxes[rest, 1])
        right = np.minimum(boxes[best, 2], boxes[rest, 2])
        bottom = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.maximum(right - left, 0) * np.maximum(bottom - top, 0)
        union = areas[best] + areas[rest] - overlap
        ratio = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = [int(row) for row, value in zip(rest, ratio, strict=True) if value <= threshold]
    return keep
