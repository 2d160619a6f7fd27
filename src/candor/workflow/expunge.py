"""Expungement: a subject's images, crops, templates and index entries, gone for good."""

from __future__ import annotations

from dataclasses import dataclass

from candor.store import delete_subject_cascade, find_subject
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import SubjectNotFoundError
from candor.workflow.permissions import require_permission


@dataclass(frozen=True)
class ExpungeReport:
    """What was removed, by internal id and content hash only (no biometric data)."""

    subject_id: int
    image_ids: tuple[int, ...]
    image_sha256s: tuple[str, ...]
    template_ids: tuple[int, ...]


def expunge_subject(workflow: Workflow, actor: Actor, subject_ref: str) -> ExpungeReport:
    """Remove a subject and everything Candor holds of their face.

    The rows go first, in one transaction; then the image and crop files are
    overwritten and unlinked, the index entries dropped, and the database scrubbed
    (freed pages are zeroed by secure_delete; the WAL is checkpointed and truncated),
    so no copy survives in any file of the workspace.
    """
    require_permission(workflow, actor, "gallery.expunge")
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        subject = find_subject(session, subject_ref)
        if subject is None:
            raise SubjectNotFoundError(f"no subject {subject_ref!r} is enrolled")
        removed = delete_subject_cascade(session, subject)
        # What was removed, by internal id and hash: nothing readable of the person.
        record(
            session,
            workflow,
            actor.username,
            "gallery.expunged",
            {"subject": removed.subject_id},
            {
                "images": list(removed.image_ids),
                "image_sha256": list(removed.image_sha256s),
                "templates": list(removed.template_ids),
            },
        )
    for sha256 in removed.image_sha256s:
        workspace.vault.erase_image(sha256)
    workflow.forget_templates(removed.template_ids)
    workspace.vault.scrub_database(workspace.engine)
    return ExpungeReport(
        subject_id=removed.subject_id,
        image_ids=removed.image_ids,
        image_sha256s=removed.image_sha256s,
        template_ids=removed.template_ids,
    )
