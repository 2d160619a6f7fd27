"""Workspace upkeep for the interfaces: finish an owed scrub, find and remove leftovers.

Every start of a command or server already does the cheap part of this (see
candor.store.upkeep); `candor scrub` waits longer for a reader to let the scrub
through, and `candor check` compares the whole vault with the rows, for leftovers no
record names (a workspace older than the records, or files put there by hand). Neither
shows or compares faces, and neither needs a login: what they remove is what no record
holds, and they say so by content address and count only.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from candor.sealing import SealError
from candor.store import ScrubError, StoreError, Workspace
from candor.store.changes import stored_template_ids
from candor.store.gallery import seal_plaintext_templates
from candor.store.upkeep import VaultCheck, check_vault, held_probes, remove_leftovers, tidy
from candor.store.vault_upgrade import SealedFiles, count_stored_files, seal_plaintext_files
from candor.workflow.audit_ops import verify_stored_log
from candor.workflow.context import Workflow

SCRUB_WAIT_SECONDS = 10.0
_NOT_ALONE = (
    "another process has this workspace open (a running `candor serve`?) and may be "
    "writing files whose rows are not committed yet, so nothing was removed; run this "
    "again when it has stopped"
)


@dataclass(frozen=True)
class ScrubOutcome:
    """What `candor scrub` finished, and what is still owed (empty when nothing is).

    erased: leftover files erased (only when no other process had the workspace open).
    """

    scrubbed: bool
    erased: int
    still_owed: tuple[str, ...]
    not_alone: str | None


@dataclass(frozen=True)
class IndexCheck:
    """Whether the gallery index, opened from its files and caught up as a search would,
    holds exactly the database's templates of its model (ids only, never vectors).

    extra: templates the index holds that the database does not (an expunged one kept).
    missing: templates of the database the index lacks (a search would never find them).
    problem: why the index could not be checked (the face model cannot be read), or None.
    """

    model: str | None
    held: int
    stored: int
    extra: int
    missing: int
    problem: str | None = None

    @property
    def agrees(self) -> bool:
        """Whether nothing is extra or missing (an index that could not be checked agrees)."""
        return self.extra == 0 and self.missing == 0


@dataclass(frozen=True)
class AuditCheck:
    """`candor audit verify`'s verdict on the log and the tables it vouches for."""

    ok: bool
    entries: int
    problem: str | None


@dataclass(frozen=True)
class CheckOutcome:
    """What `candor check` found (before any fix), and what is left after it.

    index_found / index: the index before and after the fix (None: no index to check).
    """

    found: VaultCheck
    fixed: bool
    left: VaultCheck
    not_alone: str | None
    index_found: IndexCheck | None = None
    index: IndexCheck | None = None
    audit: AuditCheck | None = None

    @property
    def needs_attention(self) -> bool:
        """Whether anything disagrees: leftovers, unreadable data, the index, the log."""
        left = self.left
        return bool(
            left.leftovers
            or left.unreadable
            or left.scrub_owed
            or (self.index is not None and not self.index.agrees)
            or (self.audit is not None and not self.audit.ok)
        )


def scrub_workspace(
    workflow: Workflow, *, wait_seconds: float = SCRUB_WAIT_SECONDS
) -> ScrubOutcome:
    """Checkpoint and truncate the write-ahead log, waiting up to `wait_seconds` for readers.

    Runs whether or not a scrub is owed. Also erases the leftovers on record (files of
    an interrupted enrolment or expungement) when no other process has the workspace
    open.
    """
    workspace = workflow.workspace
    vault = workspace.vault
    with workspace.upkeep.exclusively() as alone:
        done = tidy(workspace.engine, vault, exclusive=alone, scrub_wait_ms=0)
    try:
        vault.scrub_database(workspace.engine, wait_ms=round(wait_seconds * 1000))
        scrubbed = True
    except ScrubError:
        scrubbed = False
    return ScrubOutcome(
        scrubbed=scrubbed,
        erased=done.erased + done.temporaries,
        still_owed=tuple(vault.scrub_reasons()),
        not_alone=None if alone or not _markers(workflow) else _NOT_ALONE,
    )


def _markers(workflow: Workflow) -> int:
    vault = workflow.workspace.vault
    return len(vault.pending("images")) + len(vault.pending("probes"))


def check_workspace(workflow: Workflow, *, fix: bool) -> CheckOutcome:
    """Compare the vault, the data keys, the index and the audit log with the rows; with
    `fix`, remove what no row names and rebuild an index that disagrees.

    Files and keys are removed only while no other process has the workspace open (see
    candor.store.upkeep for why). What a fix cannot repair (a missing, plaintext or
    undecryptable file, a key that does not unwrap, a log that does not verify) is
    reported, never changed: that needs a person.
    """
    workspace = workflow.workspace
    audit = _check_audit(workflow)
    index_found = check_index(workflow)
    if not fix:
        found = check_vault(workspace.engine, workspace.vault, workspace.keys)
        return CheckOutcome(found, False, found, None, index_found, index_found, audit)
    with workspace.upkeep.exclusively() as alone:
        found = check_vault(workspace.engine, workspace.vault, workspace.keys)
        if not alone:
            return CheckOutcome(found, False, found, _NOT_ALONE, index_found, index_found, audit)
        remove_leftovers(workspace.engine, workspace.vault, found, workspace.keys)
        left = check_vault(workspace.engine, workspace.vault, workspace.keys)
    index = index_found
    if index_found is not None and not index_found.agrees:
        with workspace.session() as session, contextlib.suppress(SealError, StoreError):
            # A template that does not open stays reported (by the vault's check above).
            workflow.reconcile_index(session)
        index = check_index(workflow)
    return CheckOutcome(found, True, left, None, index_found, index, audit)


def check_index(workflow: Workflow) -> IndexCheck | None:
    """Open the index as a search does (its files, caught up with the change log) and
    compare its template ids with the database's; None when the gallery has no templates
    and no index was ever written."""
    workspace = workflow.workspace
    had_files = (workspace.home / "index").is_dir()
    try:
        with workspace.session() as session:
            index = workflow.index_in_step(session)
            stored = stored_template_ids(session, index.model.key)
            held = index.live_ids
    except (OSError, ValueError, RuntimeError, SealError, StoreError) as error:
        # The face model's files cannot be read here, or a template does not open (the
        # vault's check names it): the index cannot be brought in step either.
        reason = " ".join(str(error).split()) or type(error).__name__
        return IndexCheck(None, 0, 0, 0, 0, f"the index was not checked: {reason}")
    if not stored and not held and not had_files:
        return None
    return IndexCheck(
        model=index.model.key,
        held=len(held),
        stored=len(stored),
        extra=len(held - stored),
        missing=len(stored - held),
    )


def _check_audit(workflow: Workflow) -> AuditCheck:
    report = verify_stored_log(workflow)
    return AuditCheck(report.ok, report.entries, report.problem)


def bring_index_in_step(workflow: Workflow) -> int:
    """Open the gallery index and catch it up with every change committed so far; returns
    how many templates it holds.

    A server does this as it starts, so that a node that was down searches a current
    index from its first request (rather than catching up inside that request). Cheap
    when nothing changed: one indexed query once the index's files are open.
    """
    with workflow.workspace.session() as session:
        return len(workflow.index_in_step(session))


@dataclass(frozen=True, eq=False)
class ProbesInFlight:
    """Probe photos one request of this process stores and has not committed yet."""

    home: str
    hashes: frozenset[str]


# Every request's probes in flight in this process, by workspace and sha256. A thread
# erasing a failed request's photos skips those another thread is about to commit: the
# uncommitted row that will name them is invisible to it, and another *process* is
# already ruled out by `exclusively`.
_IN_FLIGHT: Counter[tuple[str, str]] = Counter()
_IN_FLIGHT_LOCK = threading.Lock()


@contextmanager
def probes_in_flight(workflow: Workflow, hashes: Iterable[str]) -> Iterator[ProbesInFlight]:
    """Mark these probe photos as being stored for a request until it commits or fails.

    Entered before the photos are written and left after the commit (or after a failed
    request's erase_unheld_probes, which is given the mark so as not to skip its own).
    """
    mark = ProbesInFlight(str(workflow.workspace.home), frozenset(hashes))
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.update((mark.home, sha256) for sha256 in mark.hashes)
    try:
        yield mark
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.subtract((mark.home, sha256) for sha256 in mark.hashes)
            for sha256 in mark.hashes:
                if _IN_FLIGHT[mark.home, sha256] <= 0:
                    del _IN_FLIGHT[mark.home, sha256]


def _in_flight_elsewhere(home: str, sha256: str, mine: ProbesInFlight | None) -> bool:
    """Whether a request other than `mine` is storing this photo (call under the lock)."""
    own = 1 if mine is not None and mine.home == home and sha256 in mine.hashes else 0
    return _IN_FLIGHT[home, sha256] > own


def erase_unheld_probes(
    workflow: Workflow, hashes: Sequence[str], *, mine: ProbesInFlight | None = None
) -> None:
    """Erase probe photos a failed request stored, unless a committed request holds them
    or another request of this process is storing them (see probes_in_flight).

    mine: the failed request's own mark, when it made one.
    Only while no other process has the workspace open: another may be about to commit
    a request on the same photo. Otherwise, and should erasing fail, the photos' pending
    markers leave them to the next tidy. Never raises: it runs while a failure unwinds.
    """
    workspace = workflow.workspace
    home = str(workspace.home)
    with (
        contextlib.suppress(OSError, StoreError, SQLAlchemyError),
        workspace.upkeep.exclusively() as alone,
    ):
        if not alone:
            return
        with workspace.session() as session:
            held = held_probes(session, hashes)
        # Checked and erased under the lock: a request marking a photo after this erased
        # it finds no file and writes it again before its commit.
        with _IN_FLIGHT_LOCK:
            for sha256 in hashes:
                if sha256 not in held and not _in_flight_elsewhere(home, sha256, mine):
                    workspace.vault.erase_probe(sha256)
                    workspace.vault.settle("probes", sha256)


@contextmanager
def upload_folder(workflow: Workflow) -> Iterator[Path]:
    """A private folder for uploaded photos inside the workspace, erased afterwards."""
    with workflow.workspace.vault.upload_folder() as folder:
        yield folder


# -- sealing an older workspace (`candor upgrade`) ------------------------------------------


@dataclass(frozen=True)
class SealedWorkspace:
    """What `seal_workspace` sealed: files (images, crops, probes) and templates, and the
    plaintext files it left because no row names them (`candor check --fix` erases them)."""

    files: SealedFiles
    templates: int

    @property
    def total(self) -> int:
        """Files and templates sealed in all."""
        return self.files.total + self.templates


def seal_workspace(
    workspace: Workspace, on_progress: Callable[[int, int], None] | None = None
) -> SealedWorkspace:
    """Seal everything an older workspace stored in the clear, after its migration: every
    photo, crop and probe file (the plaintext overwritten with zeros), then every template
    in the database (in batches, each its own transaction), then the database scrubbed so
    the plaintext templates' old pages leave its file and write-ahead log.

    Resumable: a crash leaves each file and template either plain or sealed, and this
    seals what is left. A workspace already sealed costs a read of each file's header.

    on_progress: called with (files looked at, files in all) as the files go by.
    """
    on_file: Callable[[], None] | None = None
    if on_progress is not None:
        total, seen = count_stored_files(workspace.vault), 0
        report = on_progress
        report(0, total)

        def on_file() -> None:
            nonlocal seen
            seen += 1
            report(seen, total)

    files = seal_plaintext_files(workspace.engine, workspace.vault, workspace.keys, on_file)
    templates = 0
    while True:
        with workspace.session() as session, session.begin():
            done = seal_plaintext_templates(session, workspace.keys, workspace.vault)
        if not done:
            break
        templates += done
    if templates:
        workspace.vault.note_scrub_needed(f"candor upgrade sealed {templates} template(s)")
        with contextlib.suppress(ScrubError):
            # Owed and recorded if a reader blocks it: the next start finishes it.
            workspace.vault.scrub_database(workspace.engine)
    return SealedWorkspace(files, templates)
