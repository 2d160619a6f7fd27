"""Rich renderings of workflow results for people at a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from candor.workflow import (
    CandidateList,
    EnrolmentStatus,
    EnrolmentSummary,
    SubjectDetail,
    SubjectSummary,
    Verification,
)


def faces_table(faces: Sequence[dict[str, object]]) -> Table:
    """The faces of a photo with several, for the user to pick one with --face N."""
    table = Table(title="Faces found (largest first)")
    for column in ("face", "box (l, t, r, b)", "eyes px", "sharpness", "yaw°", "usable"):
        table.add_column(column)
    for face in faces:
        quality = face["quality"]
        assert isinstance(quality, dict)
        table.add_row(
            str(face["face"]),
            str(tuple(face["box"])) if isinstance(face["box"], list) else str(face["box"]),
            f"{quality['eye_distance_px']:.0f}",
            f"{quality['sharpness']:.0f}",
            f"{quality['yaw_degrees']:.0f}",
            "yes" if face["usable"] else "no: " + "; ".join(quality["reasons"]),
        )
    return table


def enrolment_table(summary: EnrolmentSummary, *, show_enrolled: bool) -> Table:
    """Per-file outcomes: refusals and duplicates always, enrolled files when asked."""
    table = Table(title="Enrolment by file")
    table.add_column("file")
    table.add_column("subject")
    table.add_column("outcome")
    table.add_column("reason")
    for outcome in summary.outcomes:
        if outcome.status is EnrolmentStatus.ENROLLED and not show_enrolled:
            continue
        colour = {"enrolled": "green", "duplicate": "yellow", "refused": "red"}[outcome.status]
        table.add_row(
            str(outcome.path),
            outcome.subject_ref,
            f"[{colour}]{outcome.status}[/]",
            outcome.reason or "",
        )
    return table


def candidates_table(result: CandidateList) -> Table:
    """The candidate list: rank, subject, score, gallery image."""
    table = Table(
        title=f"Candidate list: top {len(result.candidates)} of {result.gallery_size} "
        f"gallery templates (model {result.model_key})",
        caption=result.notice,
    )
    table.add_column("rank", justify="right")
    table.add_column("subject")
    table.add_column("score (cosine)", justify="right")
    table.add_column("gallery image (sha256)")
    for candidate in result.candidates:
        table.add_row(
            str(candidate.rank),
            candidate.subject_ref,
            f"{candidate.score:.4f}",
            candidate.image_sha256[:16] + "…",
        )
    return table


def verification_lines(result: Verification) -> list[str]:
    """A 1:1 verdict in plain sentences."""
    verdict = "[green]passes[/]" if result.passed else "[red]does not pass[/]"
    return [
        f"score (cosine): {result.score:.4f}   (dlib Euclidean distance "
        f"{result.euclidean_distance:.4f})",
        f"threshold: {result.threshold.cosine:.3f}: the comparison {verdict}",
        f"meaning: {result.threshold.meaning}",
        "A passing score is a lead for an examiner, not an identification.",
    ]


def subjects_table(subjects: Sequence[SubjectSummary]) -> Table:
    """Enrolled subjects with their counts."""
    table = Table(title=f"{len(subjects)} subject(s)")
    for column in ("id", "subject", "images", "templates", "created", "by"):
        table.add_column(column)
    for subject in subjects:
        table.add_row(
            str(subject.id),
            subject.external_ref,
            str(subject.image_count),
            str(subject.template_count),
            subject.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            subject.created_by,
        )
    return table


def subject_table(detail: SubjectDetail) -> Table:
    """One subject's images with provenance, face choice and quality."""
    summary = detail.summary
    table = Table(title=f"Subject {summary.external_ref} (id {summary.id})")
    for column in ("image", "source", "legal basis", "collected", "retain until", "face"):
        table.add_column(column)
    for image in detail.images:
        provenance = image.provenance
        table.add_row(
            f"{image.sha256[:16]}… {image.format} {image.width}x{image.height}",
            f"{provenance.source_type}: {provenance.source_ref}",
            provenance.legal_basis,
            provenance.collected_on.isoformat(),
            provenance.retain_until.isoformat(),
            f"{image.face_choice}; eyes {image.quality.get('eye_distance_px', '?')} px; "
            f"{len(image.templates)} template(s)",
        )
    return table
