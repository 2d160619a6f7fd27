"""Read-only views of the gallery for people: subjects and one subject's record."""

from __future__ import annotations

from candor.store import SubjectDetail, SubjectSummary, find_subject, list_subjects, subject_detail
from candor.workflow.context import Workflow
from candor.workflow.errors import SubjectNotFoundError


def gallery_subjects(
    workflow: Workflow, *, limit: int | None = None, offset: int = 0
) -> list[SubjectSummary]:
    """Enrolled subjects by id, with their numbers of images and templates."""
    with workflow.workspace.session() as session:
        return list_subjects(session, limit=limit, offset=offset)


def gallery_subject(workflow: Workflow, subject_ref: str) -> SubjectDetail:
    """One subject with every image's provenance, face choice, quality and templates."""
    with workflow.workspace.session() as session:
        subject = find_subject(session, subject_ref)
        detail = None if subject is None else subject_detail(session, subject.id)
    if detail is None:
        raise SubjectNotFoundError(f"no subject {subject_ref!r} is enrolled")
    return detail
