"""Retention: purge what the policy's periods say is due, as audited actions.

Three purges, each its own transaction with its own audit entry: probe photos and
templates past `retention.probe_days`; whole search records (with their candidates,
approvals, verdicts and releases) past `retention.search_record_days`; gallery photos
past their own retain-until date or the policy's gallery maximum. Files are erased and
the database scrubbed afterwards, as in expungement, so nothing survives in any file. A
purged probe's data key is destroyed in the purge's own transaction (a gallery photo's
goes with its subject's row), so copies beyond the scrub's reach (backups, PostgreSQL's
free pages and WAL) no longer open either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from candor.policy import retention_due
from candor.store import SearchRequest
from candor.store import requests as repository
from candor.store.retention import purge_gallery_images
from candor.store.server_state import staged_probe_hashes
from candor.store.vault import PendingKind
from candor.workflow.accounts import Actor
from candor.workflow.actions import Action, act
from candor.workflow.context import Workflow

PERMISSION = "retention.run"


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
    moment = (now or workflow.now()).astimezone(workflow.workspace.zone)
    # The periods are the policy's in force when the run starts, for all three purges.
    with act(workflow, actor, PERMISSION) as action:
        policy = action.policy
        cutoffs = retention_due(policy, moment)
        probes, erased = _purge_probes(action, cutoffs.probes_before)
    _erase_probes(workflow, erased)
    with act(workflow, actor, PERMISSION) as action:
        records, erased = _purge_search_records(action, cutoffs.search_records_before)
    _erase_probes(workflow, erased)
    images, subjects = _purge_gallery(
        workflow, actor, moment.date(), cutoffs.gallery_collected_before
    )
    workspace = workflow.workspace
    # Always recorded, even when nothing was due: an auditor sees that retention ran.
    with act(workflow, actor, PERMISSION) as action:
        action.record(
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


def _erase_probes(workflow: Workflow, hashes: list[str]) -> None:
    # After the commit: a rolled-back purge leaves every file its rows still name.
    for sha256 in hashes:
        workflow.workspace.vault.erase_probe(sha256)


def _purge_probes(action: Action, before: datetime) -> tuple[tuple[int, ...], list[str]]:
    """Purge the probes of requests made before `before`: their ids, and the probe files
    no request holds any more (to erase once this commits)."""
    due = repository.requests_made_before(action.session, before, probe_held=True)
    if not due:
        return (), []
    hashes = {h for row in due for h in _probe_hashes(row)}
    repository.purge_request_probes(action.session, due, action.now)
    # A probe file shared with a request still inside its period stays until that one goes.
    erased = sorted(hashes - _hashes_still_held(action))
    _note_erasures(action, "probes", erased, f"retention.probes_purged {len(due)} search(es)")
    _destroy_probe_keys(action, erased)
    ids = tuple(row.id for row in due)
    action.record(
        "retention.probes_purged",
        {},
        {"searches": list(ids), "probe_sha256": erased, "before": before.isoformat()},
    )
    return ids, erased


def _note_erasures(action: Action, kind: PendingKind, hashes: list[str], reason: str) -> None:
    """Record, before the purge commits, the files to erase and the scrub it owes: should
    this process die after the commit, the next start finishes both (as for expungement;
    found by bench/kill_harness.py, which left the files behind)."""
    vault = action.workflow.workspace.vault
    vault.note_pending(kind, hashes)
    vault.note_scrub_needed(reason)


def _probe_hashes(row: SearchRequest) -> list[str]:
    hashes = [row.probe_sha256, row.original_probe_sha256, row.second_probe_sha256]
    return [h for h in hashes if h is not None and h != "0" * 64]


def _destroy_probe_keys(action: Action, hashes: list[str]) -> None:
    """Shred the probes no request holds any more: their keys go in this transaction,
    except one a staged photo still uses (it goes when that row does, or becomes a search)."""
    staged = staged_probe_hashes(action.session, among=hashes) if hashes else set()
    keys = action.workflow.workspace.keys
    for sha256 in hashes:
        if sha256 not in staged:
            keys.destroy_probe_key(action.session, sha256)


def _hashes_still_held(action: Action) -> set[str]:
    rows = repository.requests_holding_probes(action.session)
    return {h for row in rows for h in _probe_hashes(row)}


def _purge_search_records(action: Action, before: datetime) -> tuple[tuple[int, ...], list[str]]:
    """Delete the requests made before `before`: their ids, and the probe files no
    request holds any more (to erase once this commits)."""
    due = repository.requests_made_before(action.session, before)
    if not due:
        return (), []
    ids = tuple(row.id for row in due)
    hashes = {h for row in due for h in _probe_hashes(row) if row.probe_purged_at is None}
    repository.delete_requests(action.session, due)
    erased = sorted(hashes - _hashes_still_held(action))
    _note_erasures(
        action, "probes", erased, f"retention.search_records_purged {len(ids)} search(es)"
    )
    _destroy_probe_keys(action, erased)
    action.record(
        "retention.search_records_purged",
        {},
        {"searches": list(ids), "before": before.isoformat()},
    )
    return ids, erased


def _purge_gallery(
    workflow: Workflow, actor: Actor, today: date, collected_before: date | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    with act(workflow, actor, PERMISSION) as action:
        purged = purge_gallery_images(action.session, today, collected_before)
        if purged is None:
            return (), ()
        _note_erasures(
            action,
            "images",
            list(purged.image_sha256),
            f"retention.gallery_purged {len(purged.images)} image(s)",
        )
        action.record(
            "retention.gallery_purged",
            {},
            {
                "images": purged.images,
                "image_sha256": purged.image_sha256,
                "templates": purged.templates,
                "subjects_removed": purged.subjects_removed,
            },
        )
    for sha256 in purged.image_sha256:
        workflow.workspace.vault.erase_image(sha256)
    workflow.forget_templates(purged.templates)
    return tuple(purged.images), tuple(purged.subjects_removed)
