"""Expungement: a subject's images, crops, templates and index entries, gone for good.

It cannot be undone, so it is an admin change like a new user or a policy: one admin
asks with a reason (`request_expunge`), a second admin confirms
(`candor.workflow.accounts.confirm_change`), and only then are the rows deleted, in the
confirmation's transaction, with one audit entry naming both admins and the reason.
Retention's deletions are the policy's and take another path (workflow.retention).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from candor.evaluation.cache import default_cache_dir, drop_photos
from candor.store import (
    RemovedSubject,
    ScrubError,
    add_admin_change,
    delete_subject_cascade,
    find_subject,
    pending_changes,
)
from candor.workflow import limits
from candor.workflow.accounts import (
    AccountWorkflowError,
    Actor,
    ChangeInfo,
    change_info,
    require_admin,
)
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


def request_expunge(workflow: Workflow, actor: Actor, subject_ref: str, reason: str) -> ChangeInfo:
    """Ask to expunge a subject, with a reason; a second admin's confirmation carries it out.

    The request names the subject by reference and id (so a subject enrolled later under
    the same reference is not the one removed) and is audited with its reason.
    """
    why = reason.strip()
    if not why:
        raise AccountWorkflowError("an expungement needs a reason (--reason)")
    limits.REASON.check(why)
    limits.SUBJECT_REF.check(subject_ref.strip())
    require_permission(workflow, actor, "gallery.expunge")
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        admin = require_admin(session, actor)
        subject = find_subject(session, subject_ref)
        if subject is None:
            raise SubjectNotFoundError(f"no subject {subject_ref.strip()!r} is enrolled")
        for waiting in pending_changes(session, "expunge_subject"):
            if waiting.payload.get("subject_id") == subject.id:
                raise AccountWorkflowError(
                    f"expunging {subject.external_ref} is already requested "
                    f"(change {waiting.id}); another admin confirms or rejects it"
                )
        change = add_admin_change(
            session,
            "expunge_subject",
            {"subject_ref": subject.external_ref, "subject_id": subject.id, "reason": why},
            admin.id,
            requested_at=workflow.now(),
        )
        record(
            session,
            workflow,
            actor.username,
            "gallery.expunge_requested",
            {"change": change.id, "subject": subject.id},
            {"reason": why},
        )
        return change_info(session, change)


def remove_subject_rows(
    session: Session, workflow: Workflow, subject_id: int, subject_ref: str
) -> RemovedSubject:
    """Delete a confirmed expungement's rows in the caller's transaction (confirm_change).

    Notes the files to erase and the scrub before the commit: should this process die
    after it, the next start finishes them. `erase_removed` does the rest once committed.
    """
    subject = find_subject(session, subject_ref)
    if subject is None or subject.id != subject_id:
        raise SubjectNotFoundError(
            f"subject {subject_ref!r} (id {subject_id}) is no longer enrolled; reject the change"
        )
    # The subject's data key goes in this transaction (the subject row's deletion would
    # take it by cascade; said here, so it never rests on the database's foreign keys):
    # every copy of the subject's sealed photos, crops and templates, in backups, free
    # pages or WAL segments included, no longer opens.
    workflow.workspace.keys.destroy_subject_key(session, subject.id)
    removed = delete_subject_cascade(session, subject)
    vault = workflow.workspace.vault
    vault.note_pending("images", removed.image_sha256s)
    vault.note_scrub_needed(
        f"gallery.expunged subject {removed.subject_id} "
        f"({len(removed.image_ids)} image(s), {len(removed.template_ids)} template(s))"
    )
    return removed


def removed_details(removed: RemovedSubject) -> dict[str, object]:
    """What an expungement's audit entry says was removed: ids and hashes, nothing of a face."""
    return {
        "images": list(removed.image_ids),
        "image_sha256": list(removed.image_sha256s),
        "templates": list(removed.template_ids),
    }


def expunge_subject(workflow: Workflow, actor: Actor, subject_ref: str) -> ExpungeReport:
    """Remove a subject and everything Candor holds of their face, at once, by one actor.

    The interfaces (CLI, web, API) never call this: they ask with request_expunge and a
    second admin confirms. It remains for code that holds a workspace directly (tests,
    the simulation) and is what a confirmed change does, in the same steps.

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
    with workspace.session() as session, session.begin():
        subject = find_subject(session, subject_ref)
        if subject is None:
            raise SubjectNotFoundError(f"no subject {subject_ref!r} is enrolled")
        removed = remove_subject_rows(session, workflow, subject.id, subject.external_ref)
        # What was removed, by internal id and hash: nothing readable of the person.
        record(
            session,
            workflow,
            actor.username,
            "gallery.expunged",
            {"subject": removed.subject_id},
            removed_details(removed),
        )
    return erase_removed(workflow, removed)


def erase_removed(workflow: Workflow, removed: RemovedSubject) -> ExpungeReport:
    """After the deletion committed: erase the files, cache entries and index entries, and
    scrub the database; the report says what could not be finished now."""
    workspace = workflow.workspace
    vault = workspace.vault
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
