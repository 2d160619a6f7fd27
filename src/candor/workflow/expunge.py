"""Expungement: a subject's images, crops, templates and index entries, gone for good."""

from __future__ import annotations

from dataclasses import dataclass

from candor.evaluation.cache import default_cache_dir, drop_photos
from candor.store import ScrubError, delete_subject_cascade, find_subject
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.errors import SubjectNotFoundError
from candor.workflow.permissions import require_permission

# How long an expungement waits for other connections' reads to end before it leaves
# the scrub of the database to the next start (or `candor scrub`).
SCRUB_WAIT_MS = 5_000


@dataclass(frozen=True)
class ExpungeReport:
    """What was removed, by internal id and content hash only (no biometric data).

    remaining: what is not gone yet, one plain sentence each; empty when the
    expungement is complete. Whatever it names is recorded in the workspace and
    finished by the next start of any command, or by `candor scrub`.
    """

    subject_id: int
    image_ids: tuple[int, ...]
    image_sha256s: tuple[str, ...]
    template_ids: tuple[int, ...]
    remaining: tuple[str, ...] = ()


def expunge_subject(workflow: Workflow, actor: Actor, subject_ref: str) -> ExpungeReport:
    """Remove a subject and everything Candor holds of their face.

    The rows go first, in one transaction; then the image and crop files are
    overwritten and unlinked, the evaluation cache's entries of the photos erased, the
    index entries dropped, and the database scrubbed (freed pages are zeroed by
    secure_delete; the WAL is checkpointed and truncated), so no copy survives in any
    file of the workspace.

    What cannot be finished now (a reader holding the write-ahead log, a file that
    refuses erasure) was recorded before the deletion committed; the report says what
    remains, and the next start of any command finishes it.
    """
    require_permission(workflow, actor, "gallery.expunge")
    workspace = workflow.workspace
    vault = workspace.vault
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
        # Recorded before the commit: should this process die after it, the next start
        # erases the files and scrubs the database all the same.
        vault.note_pending("images", removed.image_sha256s)
        vault.note_scrub_needed(
            f"gallery.expunged subject {removed.subject_id} "
            f"({len(removed.image_ids)} image(s), {len(removed.template_ids)} template(s))"
        )
    remaining: list[str] = []
    for sha256 in removed.image_sha256s:
        try:
            vault.erase_image(sha256)
        except OSError as error:
            remaining.append(
                f"the files of image {sha256} could not be erased ({error.strerror or error}); "
                "they are recorded and erased at the next start of any candor command"
            )
    try:
        drop_photos(removed.image_sha256s)
    except OSError as error:
        remaining.append(
            f"evaluation cache entries of the photos under {default_cache_dir()} could not "
            f"be erased ({error.strerror or error}); erase that folder"
        )
    workflow.forget_templates(removed.template_ids)
    try:
        vault.scrub_database(workspace.engine, wait_ms=SCRUB_WAIT_MS)
    except ScrubError:
        name = workspace.database_path.name
        remaining.append(
            f"bytes of the deleted rows remain in {name} and {name}-wal: another "
            "connection held a read transaction open, so the write-ahead log could not "
            "be checkpointed and truncated; this is recorded and finishes at the next "
            "start of any candor command, or run `candor scrub` once that connection "
            "has closed"
        )
    return ExpungeReport(
        subject_id=removed.subject_id,
        image_ids=removed.image_ids,
        image_sha256s=removed.image_sha256s,
        template_ids=removed.template_ids,
        remaining=tuple(remaining),
    )
