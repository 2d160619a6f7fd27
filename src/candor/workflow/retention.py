"""Retention: purge what the policy's periods say is due, as audited actions.

Three purges, each its own transaction with its own audit entry: probe photos and
templates past `retention.probe_days`; whole search records (with their candidates,
approvals, verdicts and releases) past `retention.search_record_days`; gallery photos
past their own retain-until date or the policy's gallery maximum. Files are erased and
the database scrubbed afterwards, as in expungement, so nothing survives in any file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from candor.policy import retention_due
from candor.store import FaceTemplate, GalleryImage, SearchRequest, Subject
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import record
from candor.workflow.context import Workflow
from candor.workflow.permissions import require_permission


@dataclass(frozen=True)
class RetentionReport:
    """What one run purged, by internal id."""

    probes_purged: tuple[int, ...]
    search_records_purged: tuple[int, ...]
    gallery_images_purged: tuple[int, ...]
    subjects_removed: tuple[int, ...]


def run_retention(
    workflow: Workflow, actor: Actor, *, now: datetime | None = None
) -> RetentionReport:
    """Purge everything due at `now` (default: the workflow's clock) under the active policy."""
    policy = require_permission(workflow, actor, "retention.run")
    moment = (now or workflow.now()).astimezone(workflow.workspace.zone)
    cutoffs = retention_due(policy, moment)
    probes = _purge_probes(workflow, actor, cutoffs.probes_before)
    records = _purge_search_records(workflow, actor, cutoffs.search_records_before)
    images, subjects = _purge_gallery(
        workflow, actor, moment.date(), cutoffs.gallery_collected_before
    )
    workspace = workflow.workspace
    # Always recorded, even when nothing was due: an auditor sees that retention ran.
    with workspace.session() as session, session.begin():
        record(
            session,
            workflow,
            actor.username,
            "retention.run",
            {},
            {
                "policy": policy.sha256,
                "probes_purged": len(probes),
                "search_records_purged": len(records),
                "gallery_images_purged": len(images),
                "subjects_removed": len(subjects),
            },
        )
    workspace.vault.scrub_database(workspace.engine)
    return RetentionReport(probes, records, images, subjects)


def _purge_probes(workflow: Workflow, actor: Actor, before: datetime) -> tuple[int, ...]:
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        due = session.scalars(
            select(SearchRequest).where(
                SearchRequest.created_at < before, SearchRequest.probe_purged_at.is_(None)
            )
        ).all()
        if not due:
            return ()
        hashes = {h for row in due for h in _probe_hashes(row)}
        now = workflow.now()
        for row in due:
            row.probe_template = None
            row.probe_purged_at = now
        session.flush()
        # A probe file shared with a request still inside its period stays until that one goes.
        kept = _hashes_still_held(session)
        erased = sorted(hashes - kept)
        ids = tuple(row.id for row in due)
        record(
            session,
            workflow,
            actor.username,
            "retention.probes_purged",
            {},
            {"searches": list(ids), "probe_sha256": erased, "before": before.isoformat()},
        )
    for sha256 in erased:
        workspace.vault.erase_probe(sha256)
    return ids


def _probe_hashes(row: SearchRequest) -> list[str]:
    hashes = [row.probe_sha256, row.original_probe_sha256, row.second_probe_sha256]
    return [h for h in hashes if h is not None and h != "0" * 64]


def _hashes_still_held(session: Session) -> set[str]:
    rows = session.scalars(select(SearchRequest).where(SearchRequest.probe_purged_at.is_(None)))
    return {h for row in rows for h in _probe_hashes(row)}


def _purge_search_records(workflow: Workflow, actor: Actor, before: datetime) -> tuple[int, ...]:
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        due = session.scalars(select(SearchRequest).where(SearchRequest.created_at < before)).all()
        if not due:
            return ()
        ids = tuple(row.id for row in due)
        hashes = {h for row in due for h in _probe_hashes(row) if row.probe_purged_at is None}
        # Later requests may name a purged one as their earlier search: keep them, unlinked.
        session.execute(
            update(SearchRequest)
            .where(SearchRequest.earlier_search_id.in_(ids))
            .values(earlier_search_id=None)
        )
        for row in due:
            session.delete(row)
        session.flush()
        erased = sorted(hashes - _hashes_still_held(session))
        record(
            session,
            workflow,
            actor.username,
            "retention.search_records_purged",
            {},
            {"searches": list(ids), "before": before.isoformat()},
        )
    for sha256 in erased:
        workspace.vault.erase_probe(sha256)
    return ids


def _purge_gallery(
    workflow: Workflow, actor: Actor, today: date, collected_before: date | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    workspace = workflow.workspace
    with workspace.session() as session, session.begin():
        condition = GalleryImage.retain_until < today
        if collected_before is not None:
            condition = or_(condition, GalleryImage.collected_on < collected_before)
        due = session.execute(
            select(GalleryImage.id, GalleryImage.sha256, GalleryImage.subject_id).where(condition)
        ).all()
        if not due:
            return (), ()
        image_ids = [image_id for image_id, _, _ in due]
        template_ids = list(
            session.scalars(select(FaceTemplate.id).where(FaceTemplate.image_id.in_(image_ids)))
        )
        session.execute(delete(FaceTemplate).where(FaceTemplate.image_id.in_(image_ids)))
        session.execute(delete(GalleryImage).where(GalleryImage.id.in_(image_ids)))
        touched = {subject_id for _, _, subject_id in due}
        still_held = set(
            session.scalars(
                select(GalleryImage.subject_id).where(GalleryImage.subject_id.in_(touched))
            )
        )
        emptied = sorted(touched - still_held)
        session.execute(delete(Subject).where(Subject.id.in_(emptied)))
        record(
            session,
            workflow,
            actor.username,
            "retention.gallery_purged",
            {},
            {
                "images": image_ids,
                "image_sha256": [sha256 for _, sha256, _ in due],
                "templates": template_ids,
                "subjects_removed": emptied,
            },
        )
    for _, sha256, _ in due:
        workspace.vault.erase_image(sha256)
    workflow.forget_templates(template_ids)
    return tuple(image_ids), tuple(emptied)
