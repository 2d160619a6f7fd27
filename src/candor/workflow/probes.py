"""Probe photos: the face to search with, chosen and checked as the analyst asked.

The probe part of a request: decode the photo, find its faces, take the one the analyst
named (or the only one, or the only one that passes the quality gate), check its quality
and make its template. No gallery is touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from candor.faces import DetectedFace, FaceEngine, Template
from candor.faces.recipe import Views
from candor.images import PROBE_LIMITS, DecodedImage, decode_image, load_image, read_image_file
from candor.store import face_choice_label, image_by_sha256
from candor.store.data_keys import KeyEncryptionKeyError
from candor.store.errors import BiometricNotFoundError
from candor.workflow.context import Workflow
from candor.workflow.enrolment import quality_summary
from candor.workflow.errors import FaceIndexError, MultipleFacesError, ProbeRefusedError


@dataclass(frozen=True)
class ProbeFace:
    """The face a probe was searched with, and how it was chosen.

    face_choice: as for a gallery photo, "index N of M" (`face_choice_label`).
    note: set when Candor chose the face itself among several, for the analyst and the
        search's audit entry, e.g. "1 usable face of 2 found; the other fails the gate:
        ..." (no file name: a probe's name may be a person's); None when the analyst
        named the face or the photo shows only one.
    """

    image_sha256: str
    face_index: int
    faces_found: int
    box: tuple[int, int, int, int]
    quality: dict[str, float | list[str]]
    face_choice: str = ""
    note: str | None = None


@dataclass(frozen=True)
class Probe:
    """A decoded probe photo with its chosen face's template."""

    image: DecodedImage
    face: ProbeFace
    template: Template


def describe_face(index: int, face: DetectedFace) -> dict[str, object]:
    """A face as listed for the user to pick from: number, box, quality, verdict."""
    return {
        "face": index,
        "box": [face.box.left, face.box.top, face.box.right, face.box.bottom],
        "quality": quality_summary(face),
        "usable": face.quality.passed,
    }


def read_probe(
    engine: FaceEngine, path: Path, face_index: int | None, views: Views = "plain"
) -> Probe:
    """Decode `path`, pick its face and make the template; refuses with the reason why.

    The photo must be within `PROBE_LIMITS` (an ImageTooLargeError says so otherwise).

    face_index: which face (0 = largest) when the photo shows several; without it a
        photo with several faces raises MultipleFacesError listing them.
    views: the recipe's search views (see `candor.faces.recipe`).
    """
    image = load_image(path, limits=PROBE_LIMITS)
    return _probe_from_image(engine, image, path, face_index, views)


def probe_for(workflow: Workflow, path: Path, face_index: int | None) -> Probe:
    """`read_probe` with the workflow's engine, without reading the same photo twice.

    The file is read (with `load_image`'s checks) and hashed each time: its bytes may have
    changed. When these exact bytes were read before with the same face choice, the
    probe comes from the workflow's probe cache: bytes with that digest were decoded and
    checked then, so they are not decoded again. Otherwise these bytes are decoded.
    Refusals are not cached.
    """
    data = read_image_file(path, limits=PROBE_LIMITS)
    cached = workflow.probe_cache.get(hashlib.sha256(data).hexdigest(), face_index)
    if cached is not None:
        return cached
    image = decode_image(data, name=str(path), limits=PROBE_LIMITS)
    probe = _probe_from_image(
        workflow.engine, image, path, face_index, workflow.recipe.search_views
    )
    workflow.probe_cache.put(image.sha256, face_index, probe)
    return probe


def _probe_from_image(
    engine: FaceEngine, image: DecodedImage, path: Path, face_index: int | None, views: Views
) -> Probe:
    faces = engine.detect_faces(image)
    if not faces:
        raise ProbeRefusedError(path.name, "no face found")
    note = None
    if face_index is None:
        face_index, note = _only_usable_face(path, faces)
    if not 0 <= face_index < len(faces):
        raise FaceIndexError(
            f"{path.name}: face {face_index} asked for, but the photo has {len(faces)} "
            f"face(s), numbered from 0"
        )
    face = faces[face_index]
    if not face.quality.passed:
        raise ProbeRefusedError(
            path.name,
            "the face was refused by the quality gate: " + "; ".join(face.quality.reasons),
        )
    probe_face = ProbeFace(
        image_sha256=image.sha256,
        face_index=face_index,
        faces_found=len(faces),
        box=(face.box.left, face.box.top, face.box.right, face.box.bottom),
        quality=quality_summary(face),
        face_choice=face_choice_label(face_index, len(faces)),
        note=note,
    )
    return Probe(image=image, face=probe_face, template=engine.face_template(image, face, views))


def _only_usable_face(path: Path, faces: list[DetectedFace]) -> tuple[int, str | None]:
    """The face to take when the analyst named none, and the note saying why it was taken.

    Exactly one face passing the quality gate is the face: the others (bystanders cut off
    at the edge, faces in the background) could not be searched anyway, and the note tells
    the analyst which were passed over and why. Two or more usable faces are the analyst's
    to choose (MultipleFacesError); so are several faces none of which passes, whose list
    shows each one's reasons.
    """
    if len(faces) == 1:
        return 0, None
    usable = [index for index, face in enumerate(faces) if face.quality.passed]
    if len(usable) != 1:
        raise MultipleFacesError(path.name, [describe_face(i, f) for i, f in enumerate(faces)])
    others = [(index, face) for index, face in enumerate(faces) if index != usable[0]]
    if len(others) == 1:
        passed_over = "the other fails the gate: " + "; ".join(others[0][1].quality.reasons)
    else:
        passed_over = "the others fail the gate: " + "; ".join(
            f"face {index}: " + ", ".join(face.quality.reasons) for index, face in others
        )
    return usable[0], f"1 usable face of {len(faces)} found; {passed_over}"


# -- sealed photos, read back --------------------------------------------------------------
# The vault opens a file under the key its caller names; these name it. A key that is
# gone (the subject expunged, the probe purged) reads as a photo no longer held.


def stored_probe(workflow: Workflow, sha256: str) -> bytes:
    """A probe photo from the vault, opened under the probe's key."""
    workspace = workflow.workspace
    with workspace.session() as session:
        try:
            key = workspace.keys.probe_key(session, sha256)
        except KeyEncryptionKeyError:
            raise BiometricNotFoundError(f"the vault holds no probe {sha256}") from None
    return workspace.vault.get_probe(sha256, key)


def stored_image(workflow: Workflow, sha256: str, subject_id: int | None = None) -> bytes:
    """A gallery photo from the vault, opened under its subject's key (the subject the
    gallery row names when `subject_id` is not given)."""
    return workflow.workspace.vault.get_image(sha256, _subject_key(workflow, sha256, subject_id))


def stored_crop(workflow: Workflow, sha256: str, subject_id: int | None = None) -> bytes:
    """The enrolled face's crop of gallery photo `sha256`, opened under its subject's key."""
    return workflow.workspace.vault.get_crop(sha256, _subject_key(workflow, sha256, subject_id))


def _subject_key(workflow: Workflow, sha256: str, subject_id: int | None) -> bytes:
    workspace = workflow.workspace
    with workspace.session() as session:
        if subject_id is None:
            image = image_by_sha256(session, sha256)
            if image is None:
                raise BiometricNotFoundError(f"the gallery holds no image {sha256}")
            subject_id = image.subject_id
        try:
            return workspace.keys.subject_key(session, subject_id)
        except KeyEncryptionKeyError:
            raise BiometricNotFoundError(f"the vault holds no image {sha256}") from None
