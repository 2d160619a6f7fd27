"""1:N search and 1:1 verification of probe photos against the gallery.

Not yet governed: the accountable-search issue puts both behind users, policy and the
audit log, and leaves no other way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from candor.faces import DetectedFace, Template, cosine_score, euclidean_distance
from candor.images import DecodedImage, load_image
from candor.store import FaceTemplate, GalleryImage, Subject
from candor.workflow.context import Workflow
from candor.workflow.enrolment import quality_summary
from candor.workflow.errors import FaceIndexError, MultipleFacesError, ProbeRefusedError
from candor.workflow.thresholds import VERIFY_THRESHOLD, VerifyThreshold

CANDIDATE_NOTICE = (
    "Candidates are investigative leads, not identifications: each needs independent "
    "review by trained examiners before anyone acts on it."
)


@dataclass(frozen=True)
class ProbeFace:
    """The face a probe was searched with, and how it was chosen."""

    image_sha256: str
    face_index: int
    faces_found: int
    box: tuple[int, int, int, int]
    quality: dict[str, float | list[str]]


@dataclass(frozen=True)
class Candidate:
    """One gallery image on a candidate list; `score` is the cosine (higher = more alike)."""

    rank: int
    score: float
    subject_id: int
    subject_ref: str
    image_id: int
    image_sha256: str
    template_id: int


@dataclass(frozen=True)
class CandidateList:
    """Ranked gallery matches for one probe: leads, never identifications."""

    probe: ProbeFace
    model_key: str
    gallery_size: int
    candidates: tuple[Candidate, ...]
    notice: str = CANDIDATE_NOTICE


@dataclass(frozen=True)
class Verification:
    """A 1:1 comparison of two photos' faces."""

    first: ProbeFace
    second: ProbeFace
    model_key: str
    score: float
    euclidean_distance: float
    threshold: VerifyThreshold

    @property
    def passed(self) -> bool:
        """Whether the score reaches the verification threshold."""
        return self.score >= self.threshold.cosine


def search_probe(
    workflow: Workflow, probe: Path, *, top: int = 10, face_index: int | None = None
) -> CandidateList:
    """Search the gallery with the face in `probe`; the `top` most alike gallery images.

    face_index: which face (0 = largest) when the photo shows several; without it a
        photo with several faces raises MultipleFacesError listing them.
    Raises ProbeRefusedError when the photo cannot be decoded or its face fails the
    quality gate.
    """
    if top < 1:
        raise ValueError("top must be 1 or more")
    image, face, probe_face = _probe_face(workflow, probe, face_index)
    template = workflow.engine.face_template(image, face)
    index = workflow.index
    hits = index.search(template.vector, top)
    candidates = _candidates(workflow, hits)
    return CandidateList(
        probe=probe_face,
        model_key=template.model.key,
        gallery_size=len(index),
        candidates=candidates,
    )


def verify_photos(
    workflow: Workflow,
    first: Path,
    second: Path,
    *,
    first_face: int | None = None,
    second_face: int | None = None,
) -> Verification:
    """Compare the faces of two photos (1:1): cosine score and the threshold's verdict."""
    first_template, first_probe = _template_of(workflow, first, first_face)
    second_template, second_probe = _template_of(workflow, second, second_face)
    return Verification(
        first=first_probe,
        second=second_probe,
        model_key=first_template.model.key,
        score=cosine_score(first_template, second_template),
        euclidean_distance=euclidean_distance(first_template, second_template),
        threshold=VERIFY_THRESHOLD,
    )


def _template_of(
    workflow: Workflow, path: Path, face_index: int | None
) -> tuple[Template, ProbeFace]:
    image, face, probe_face = _probe_face(workflow, path, face_index)
    return workflow.engine.face_template(image, face), probe_face


def _probe_face(
    workflow: Workflow, path: Path, face_index: int | None
) -> tuple[DecodedImage, DetectedFace, ProbeFace]:
    image = load_image(path)
    faces = workflow.engine.detect_faces(image)
    if not faces:
        raise ProbeRefusedError(f"{path.name}: no face found")
    if face_index is None:
        if len(faces) > 1:
            raise MultipleFacesError(path.name, [describe_face(i, f) for i, f in enumerate(faces)])
        face_index = 0
    if not 0 <= face_index < len(faces):
        raise FaceIndexError(
            f"{path.name}: face {face_index} asked for, but the photo has {len(faces)} "
            f"face(s), numbered from 0"
        )
    face = faces[face_index]
    if not face.quality.passed:
        raise ProbeRefusedError(
            f"{path.name}: the face was refused by the quality gate: "
            + "; ".join(face.quality.reasons)
        )
    probe_face = ProbeFace(
        image_sha256=image.sha256,
        face_index=face_index,
        faces_found=len(faces),
        box=(face.box.left, face.box.top, face.box.right, face.box.bottom),
        quality=quality_summary(face),
    )
    return image, face, probe_face


def describe_face(index: int, face: DetectedFace) -> dict[str, object]:
    """A face as listed for the user to pick from: number, box, quality, verdict."""
    return {
        "face": index,
        "box": [face.box.left, face.box.top, face.box.right, face.box.bottom],
        "quality": quality_summary(face),
        "usable": face.quality.passed,
    }


def _candidates(workflow: Workflow, hits: list[tuple[int, float]]) -> tuple[Candidate, ...]:
    if not hits:
        return ()
    template_ids = [template_id for template_id, _ in hits]
    with workflow.workspace.session() as session:
        rows = session.execute(
            select(
                FaceTemplate.id,
                Subject.id,
                Subject.external_ref,
                GalleryImage.id,
                GalleryImage.sha256,
            )
            .join(GalleryImage, FaceTemplate.image_id == GalleryImage.id)
            .join(Subject, FaceTemplate.subject_id == Subject.id)
            .where(FaceTemplate.id.in_(template_ids))
        ).all()
    by_template = {row[0]: row for row in rows}
    candidates: list[Candidate] = []
    for template_id, score in hits:
        row = by_template.get(template_id)
        if row is None:
            # Expunged by another process since this index was built: never show it.
            continue
        _, subject_id, subject_ref, image_id, image_sha256 = row
        candidates.append(
            Candidate(
                rank=len(candidates) + 1,
                score=score,
                subject_id=subject_id,
                subject_ref=subject_ref,
                image_id=image_id,
                image_sha256=image_sha256,
                template_id=template_id,
            )
        )
    return tuple(candidates)
