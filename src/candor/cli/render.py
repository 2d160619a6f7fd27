"""Rich renderings of workflow results for people at a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from candor.cli.output import add_literal_row
from candor.workflow import (
    CandidateReview,
    CandidateView,
    EnrolmentStatus,
    EnrolmentSummary,
    PendingRequest,
    RequestOutcome,
    SubjectDetail,
    SubjectSummary,
)
from candor.workflow.paging import Page


def faces_table(faces: Sequence[dict[str, object]]) -> Table:
    """The faces of a photo with several, for the user to pick one with --face N."""
    table = Table(title="Faces found (largest first)")
    for column in ("face", "box (l, t, r, b)", "eyes px", "sharpness", "yaw°", "usable"):
        table.add_column(column)
    for face in faces:
        quality = face["quality"]
        assert isinstance(quality, dict)
        add_literal_row(
            table,
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
        # An imported photo by its record ("intake.csv row 7: 0007.jpg"), as its refusals say.
        where = str(outcome.path)
        if outcome.origin is not None:
            where = f"{outcome.origin}: {outcome.path.name}"
        add_literal_row(
            table,
            where,
            outcome.subject_ref,
            Text(str(outcome.status), style=colour),
            outcome.reason or "",
        )
    return table


def subjects_table(subjects: Sequence[SubjectSummary]) -> Table:
    """Enrolled subjects with their counts."""
    table = Table(title=f"{len(subjects)} subject(s)")
    for column in ("id", "subject", "images", "templates", "created", "by"):
        table.add_column(column)
    for subject in subjects:
        add_literal_row(
            table,
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
    table = Table(title=escape(f"Subject {summary.external_ref} (id {summary.id})"))
    for column in ("image", "source", "legal basis", "collected", "retain until", "face"):
        table.add_column(column)
    for image in detail.images:
        provenance = image.provenance
        add_literal_row(
            table,
            f"{image.sha256[:16]}… {image.format} {image.width}x{image.height}",
            f"{provenance.source_type}: {provenance.source_ref}",
            provenance.legal_basis,
            provenance.collected_on.isoformat(),
            provenance.retain_until.isoformat(),
            f"{image.face_choice}; eyes {image.quality.get('eye_distance_px', '?')} px; "
            f"{len(image.templates)} template(s)",
        )
    return table


def request_outcome_lines(outcome: RequestOutcome) -> list[str]:
    """Where a request stands, for its requester: no identities, only what happens next."""
    decision = outcome.decision
    lines = [f"Request {outcome.search_id} ({outcome.kind}): [bold]{outcome.status}[/]"]
    # The face Candor took by itself, and the faces it passed over (why), come first.
    lines.extend(escape(note) for note in outcome.probe_notes)
    for reason in decision.get("reasons", []):
        # Escaped: a reason code in brackets would otherwise be read as Rich markup.
        lines.append(escape(f"  - {reason['message']} [{reason['code']}]"))
    policy = decision.get("policy_name") or decision.get("policy_sha256", "")
    lines.append(f"Policy: {policy} (sha256 {str(decision.get('policy_sha256', ''))[:16]}…)")
    if outcome.status == "pending_approval":
        lines.append("It waits for a supervisor other than you: `candor approvals`.")
    if outcome.status == "approved":
        lines.append(f"Approved: run it once with `candor run {outcome.search_id}`.")
    if outcome.kind == "search" and outcome.status == "completed":
        lines.append(
            f"It ran: {outcome.candidates_found} candidate(s), {outcome.above_threshold} at or "
            "above the threshold, now wait for independent review by examiners."
        )
        if outcome.threshold_meaning:
            lines.append(f"Threshold: {outcome.threshold_meaning}.")
        lines.append(f"Released leads will be listed by `candor leads {outcome.search_id}`.")
    if outcome.verification:
        result = outcome.verification
        verdict = "passes" if result.get("passed") else "does not pass"
        lines.append(
            f"score (cosine) {result['score']:.4f}: {verdict} the threshold "
            f"{result['threshold']:.3f} ({result['meaning']})."
        )
        lines.append("A passing score is a lead for an examiner, not an identification.")
    return lines


def pending_table(pending: Page[PendingRequest]) -> Table:
    """Requests waiting for approval, oldest first, with the earlier search each repeats."""
    table = Table(title=f"Requests waiting for approval: {pending.describe()}, oldest first")
    columns = ("request", "kind", "requester", "case", "offence", "purpose", "agency", "why")
    for column in (*columns, "repeats"):
        table.add_column(column)
    for item in pending.items:
        earlier = item.earlier
        repeats = (
            ""
            if earlier is None
            else f"{earlier.search_id} ({earlier.created_at:%Y-%m-%d}, {earlier.requester}, "
            f"case {earlier.case_number}, {earlier.status})"
        )
        add_literal_row(
            table,
            str(item.search_id),
            item.kind,
            item.requester,
            item.case_number,
            item.offence_category,
            item.purpose,
            item.requesting_agency,
            "; ".join(reason["message"] for reason in item.reasons),
            repeats,
        )
    return table


def _release_cell(candidate: CandidateView) -> str:
    if candidate.released:
        outcome = f"; outcome: {candidate.outcome}" if candidate.outcome else ""
        return f"investigative lead only{outcome}"
    return "ready to release" if candidate.release_ready else ""


def candidate_review_table(review: CandidateReview) -> Table:
    """A candidate list (or released leads) with verdicts so far."""
    table = Table(
        title=escape(f"Request {review.search_id}, case {review.case_number}"),
        caption=escape((review.threshold_meaning or "") + "\n" + review.notice),
    )
    normalised = any(c.normalised_score is not None for c in review.candidates)
    columns = ["rank", "subject", "cosine"]
    if normalised:
        # The threshold applied to this column; the cosine stays the score shown first.
        columns.append("normalised (thresholded)")
    columns += ["≥ threshold", "verdicts", "released"]
    for column in columns:
        table.add_column(column)
    for candidate in review.candidates:
        verdicts = ", ".join(
            f"{v['examiner']}{' (resolving)' if v.get('kind') == 'resolving' else ''}: "
            f"{v['verdict']}"
            for v in candidate.verdicts
        )
        if candidate.verdicts_hidden:
            # Blind review: the others' verdicts wait for the reader's own.
            hidden = f"{candidate.verdicts_hidden} hidden until yours"
            verdicts = f"{verdicts}, {hidden}" if verdicts else hidden
        cells = [
            str(candidate.rank),
            candidate.subject_ref or f"(expunged subject {candidate.subject_id})",
            f"{candidate.score:.4f}",
        ]
        if normalised:
            value = candidate.normalised_score
            cells.append("-" if value is None else f"{value:+.4f}")
        cells += [
            "yes" if candidate.above_threshold else "no",
            verdicts or "-",
            _release_cell(candidate),
        ]
        add_literal_row(table, *cells)
    return table
