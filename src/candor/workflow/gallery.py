"""Read-only views of the gallery for people: subjects and one subject's record."""

from __future__ import annotations

from candor.store import SubjectDetail, SubjectSummary, find_subject, list_subjects, subject_detail
from candor.workflow.accounts import Actor
from candor.workflow.context import Workflow
from candor.workflow.errors import SubjectNotFoundError
from candor.workflow.permissions import require_permission


def gallery_subjects(
    workflow: Workflow, actor: Actor, *, limit: int | None = None, offset: int = 0
) -> list[SubjectSummary]:
    """Enrolled subjects by id, with their numbers of images and templates (gallery admins)."""
    require_permission(workflow, actor, "gallery.enrol")
    with workflow.workspace.session() as session:
        return list_subjects(session, limit=limit, offset=offset)


def gallery_subject(workflow: Workflow, actor: Actor, subject_ref: str) -> SubjectDetail:
    """One subject with every image's provenance, face choice, quality and templates."""
    require_permission(workflow, actor, "gallery.enrol")
    with workflow.workspace.session() as session:
        subject = find_subject(session, subject_ref)
        detail = None if subject is None else subject_detail(session, subject.id)
    if detail is None:
        raise SubjectNotFoundError(f"no subject {subject_ref!r} is enrolled")
    return detail
