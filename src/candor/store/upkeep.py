"""Finishing what a crash or a busy reader left undone: orphaned files, an owed scrub.

Three things can be left behind. A process killed between writing a photo to the vault
and committing the row that names it leaves an image, crop or probe file that nothing
names. An expungement killed after its deletion committed leaves files to erase. A
reader holding a transaction open while an expungement scrubs the database leaves the
deleted rows' bytes in the database file and its write-ahead log. The vault records
each of these in pending/ before it can happen (see BiometricVault), so finishing them
costs a look at a few small files, not a walk over the vault.

Who may erase a file that no committed row names? Another process may have written it
an instant ago and be about to commit its row. The database's write lock does not tell:
not every writer holds it from its first file to its commit (a search stores its probe
photos while it waits for the lock). So every process that has the workspace open
holds a shared lock (flock) on pending/open.lock for as long as it does, and files are
erased as orphans only by a process that holds that lock exclusively: no other process
has the workspace open, so no write is in flight anywhere (Upkeep explains the gate
that makes taking it safe). A grace period instead would guess at how long a write can
take, and would still race with a writer that finds an old orphan and reuses it. The
scrub is different: SQLite's checkpoint is safe beside any other connection, so every
start-up tries it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from candor.sealing import SealError, UndecryptableError, WrongKeyError, is_sealed, open_sealed
from candor.store.data_keys import DataKeys, KeyEncryptionKeyError
from candor.store.errors import ScrubError, StoreError, WorkspaceError
from candor.store.gallery import plaintext_template_count
from candor.store.governance import SearchRequest
from candor.store.models import FaceTemplate, GalleryImage
from candor.store.server_state import StagedProbe
from candor.store.vault import (
    BiometricVault,
    probe_template_context,
    sha256_hex,
    template_context,
)

LOCK_NAME = "open.lock"
GATE_NAME = "gate.lock"
# A start-up waits this long for a reader to let the owed scrub through; `candor scrub`
# waits longer. Either way the scrub stays owed until it has run.
START_SCRUB_WAIT_MS = 250
# How long an opening waits while another process tidies the workspace alone.
LOCK_WAIT_SECONDS = 30.0
_QUERY_CHUNK = 500
_TEMPLATE_BATCH = 5000
_PREFIXES = tuple(f"{number:02x}" for number in range(256))


@dataclass(frozen=True)
class Tidied:
    """What one tidy did.

    exclusive: whether it held the workspace alone (only then are files erased).
    temporaries: files erased from tmp/ (interrupted writes, a killed server's uploads).
    erased: pending images and probes whose row never committed (or was deleted), erased.
    settled: pending markers dropped because a committed row names the file.
    scrub_owed: why a scrub of the database is still owed; empty when none is.
    problems: what went wrong (the work stays recorded and is tried again).
    """

    exclusive: bool
    temporaries: int = 0
    erased: int = 0
    settled: int = 0
    scrub_owed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class VaultCheck:
    """Files and rows that disagree, by content address (no biometric data).

    orphan_images / orphan_crops / orphan_probes: files no committed row names.
    missing_images: gallery rows whose image file is absent (never fixed here).
    temporaries: files in tmp/. pending: markers of unfinished writes or erasures.
    scrub_owed: why a scrub of the database is still owed.
    plaintext: files a row names that are not sealed, as "images/<sha256>" (also crops/,
        probes/): `candor upgrade` seals them.
    undecryptable: files a row names that do not open under their subject's or probe's
        key (damaged, altered, or their key is gone), named as plaintext is.
    orphan_probe_keys: probe data keys that no probe file, request or staged photo uses.
    key_problems: data keys that do not unwrap under the workspace's KEK.
    plaintext_templates: gallery and probe templates stored in the clear (`candor upgrade`).
    undecryptable also names templates that do not open under their subject's or probe's
    key, as "templates/<template id>" and "probe-templates/<search id>".
    """

    orphan_images: tuple[str, ...]
    orphan_crops: tuple[str, ...]
    orphan_probes: tuple[str, ...]
    missing_images: tuple[str, ...]
    temporaries: int
    pending: int
    scrub_owed: tuple[str, ...]
    plaintext: tuple[str, ...] = ()
    undecryptable: tuple[str, ...] = ()
    orphan_probe_keys: tuple[str, ...] = ()
    key_problems: tuple[str, ...] = ()
    plaintext_templates: int = 0

    @property
    def leftovers(self) -> int:
        """Orphans, temporaries and markers: what a fix removes."""
        return (
            len(self.orphan_images)
            + len(self.orphan_crops)
            + len(self.orphan_probes)
            + len(self.orphan_probe_keys)
            + self.temporaries
            + self.pending
        )

    @property
    def unreadable(self) -> int:
        """Files and keys a fix cannot repair: missing, plaintext, undecryptable, bad keys."""
        return (
            len(self.missing_images)
            + len(self.plaintext)
            + len(self.undecryptable)
            + len(self.key_problems)
            + self.plaintext_templates
        )


class Upkeep:
    """One open workspace's share of the lock, and the tidying it does at start and close.

    Two flocks in pending/: every process with the workspace open holds open.lock
    shared; a process that wants to know whether it is alone takes gate.lock first,
    which every process joining also takes for a moment. flock turns a shared lock into
    an exclusive one by letting go first; behind the gate, nobody can join or tidy in
    that instant.
    """

    def __init__(self, engine: Engine, vault: BiometricVault) -> None:
        self._engine = engine
        self._vault = vault
        self._fds: tuple[int, int] | None = None  # (gate, open) once started
        self._threads = threading.Lock()
        self.at_start: Tidied | None = None

    def start(self) -> Tidied:
        """Take the workspace's lock and finish what earlier processes left undone."""
        folder = self._vault.pending_folder
        folder.mkdir(mode=0o700, exist_ok=True)
        gate = _open_lock_file(folder / GATE_NAME)
        try:
            held = _open_lock_file(folder / LOCK_NAME)
        except BaseException:
            os.close(gate)
            raise
        try:
            _wait_for_gate(gate)
            try:
                # Behind the gate no other process is tidying, so the shared lock is
                # granted at once when the exclusive one is not.
                alone = _try_lock(held, fcntl.LOCK_EX)
                if not alone:
                    fcntl.flock(held, fcntl.LOCK_SH)
                tidied = tidy(self._engine, self._vault, exclusive=alone)
                if alone:
                    fcntl.flock(held, fcntl.LOCK_SH)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
        except BaseException:
            os.close(held)
            os.close(gate)
            raise
        self._fds = (gate, held)
        self.at_start = tidied
        return tidied

    @contextlib.contextmanager
    def exclusively(self) -> Iterator[bool]:
        """Yield whether this is the only process with the workspace open.

        While the block runs with True, no other process can open the workspace (an
        opening waits up to LOCK_WAIT_SECONDS, then says why it cannot).
        """
        if self._fds is None:
            raise WorkspaceError("the workspace is closed")
        gate, held = self._fds
        with self._threads:
            _wait_for_gate(gate)
            try:
                fcntl.flock(held, fcntl.LOCK_UN)
                alone = _try_lock(held, fcntl.LOCK_EX)
                try:
                    yield alone
                finally:
                    fcntl.flock(held, fcntl.LOCK_SH)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)

    def close(self) -> None:
        """Tidy once more if this is the last process with the workspace open; let go.

        Markers of this process's own committed writes are dropped here, so pending/
        stays small. Nothing here may fail a close or make it wait: what is not done
        stays recorded for the next start.
        """
        fds, self._fds = self._fds, None
        if fds is None:
            return
        gate, held = fds
        try:
            with contextlib.suppress(OSError, StoreError, SQLAlchemyError):
                if _try_lock(gate, fcntl.LOCK_EX):
                    fcntl.flock(held, fcntl.LOCK_UN)
                    if _try_lock(held, fcntl.LOCK_EX):
                        tidy(self._engine, self._vault, exclusive=True, scrub_wait_ms=0)
        finally:
            os.close(held)
            os.close(gate)


def tidy(
    engine: Engine,
    vault: BiometricVault,
    *,
    exclusive: bool,
    scrub_wait_ms: int = START_SCRUB_WAIT_MS,
) -> Tidied:
    """Finish recorded work: erase leftovers when `exclusive`, and run an owed scrub.

    Cheap when nothing is owed: a look at tmp/ and pending/.
    """
    problems: list[str] = []
    temporaries = erased = settled = 0
    if exclusive:
        try:
            temporaries = vault.erase_stray_temporaries()
            erased, settled = _settle_pending(engine, vault)
        except (OSError, StoreError, SQLAlchemyError) as error:
            problems.append(" ".join(str(error).split()) or type(error).__name__)
    owed = tuple(vault.scrub_reasons())
    if owed:
        try:
            vault.scrub_database(engine, wait_ms=scrub_wait_ms)
        except ScrubError:
            pass  # still owed, and still recorded
        except (OSError, StoreError, SQLAlchemyError) as error:
            problems.append(" ".join(str(error).split()) or type(error).__name__)
        owed = tuple(vault.scrub_reasons())
    return Tidied(exclusive, temporaries, erased, settled, owed, tuple(problems))


def _settle_pending(engine: Engine, vault: BiometricVault) -> tuple[int, int]:
    erased = settled = 0
    with Session(engine) as session:
        images = vault.pending("images")
        held = held_images(session, images)
        probes = vault.pending("probes")
        held_p = held_probes(session, probes)
    for sha256 in images:
        if sha256 in held:
            settled += 1
        else:
            vault.erase_image(sha256)
            erased += 1
        vault.settle("images", sha256)
    for sha256 in probes:
        if sha256 in held_p:
            settled += 1
        else:
            vault.erase_probe(sha256)
            erased += 1
        vault.settle("probes", sha256)
    return erased, settled


def held_images(session: Session, hashes: Iterable[str]) -> set[str]:
    """Which of these content addresses a gallery row names."""
    wanted = list(hashes)
    held: set[str] = set()
    for start in range(0, len(wanted), _QUERY_CHUNK):
        chunk = wanted[start : start + _QUERY_CHUNK]
        held.update(
            session.scalars(select(GalleryImage.sha256).where(GalleryImage.sha256.in_(chunk)))
        )
    return held


def held_probes(session: Session, hashes: Iterable[str] | None = None) -> set[str]:
    """Which of these content addresses (or, with None, which at all) a search still holds.

    A request holds its probe photos until retention purges them (probe_purged_at).
    """
    columns = (
        SearchRequest.probe_sha256,
        SearchRequest.original_probe_sha256,
        SearchRequest.second_probe_sha256,
    )
    unpurged = SearchRequest.probe_purged_at.is_(None)
    held: set[str] = set()
    if hashes is None:
        for row in session.execute(select(*columns).where(unpurged)):
            held.update(value for value in row if value is not None)
        return held
    wanted = list(hashes)
    for start in range(0, len(wanted), _QUERY_CHUNK):
        chunk = wanted[start : start + _QUERY_CHUNK]
        query = select(*columns).where(unpurged, or_(*(column.in_(chunk) for column in columns)))
        for row in session.execute(query):
            held.update(value for value in row if value in chunk)
    return held


def check_vault(engine: Engine, vault: BiometricVault, keys: DataKeys | None = None) -> VaultCheck:
    """Compare every file in the vault with the rows, one prefix folder at a time.

    With `keys`, every file a row names is also opened under its subject's or probe's
    key (a plaintext file and one that does not open are both reported), every data key
    is unwrapped, and probe keys nothing uses are listed. Memory stays bounded by one
    prefix's share of the gallery (1/256 of it).
    """
    orphan_images: list[str] = []
    orphan_crops: list[str] = []
    missing: list[str] = []
    sealing = _SealScan(vault, keys)
    with Session(engine) as session:
        for prefix in _PREFIXES:
            query = select(GalleryImage.sha256, GalleryImage.subject_id).where(
                GalleryImage.sha256 >= prefix, GalleryImage.sha256 < prefix + "g"
            )
            owners: dict[str, int] = {sha: subject for sha, subject in session.execute(query)}
            rows = set(owners)
            images = set(vault.stored("images", prefix))
            crops = set(vault.stored("crops", prefix))
            orphan_images.extend(sorted(images - rows))
            missing.extend(sorted(rows - images))
            orphan_crops.extend(sorted(crops - rows - images))
            sealing.gallery(session, owners, images & rows, crops & rows)
        probes = {
            sha for prefix in vault.prefixes("probes") for sha in vault.stored("probes", prefix)
        }
        held = held_probes(session)
        orphan_probes = sorted(probes - held)
        sealing.probes(session, sorted(probes & held))
        orphan_keys = sealing.orphan_probe_keys(session, probes | held)
        sealing.templates(session)
        key_problems = keys.check_all(session) if keys is not None else []
    temporaries = sum(1 for path in (vault.home / "tmp").rglob("*") if not path.is_dir())
    return VaultCheck(
        orphan_images=tuple(orphan_images),
        orphan_crops=tuple(orphan_crops),
        orphan_probes=tuple(orphan_probes),
        missing_images=tuple(missing),
        temporaries=temporaries,
        pending=len(vault.pending("images")) + len(vault.pending("probes")),
        scrub_owed=tuple(vault.scrub_reasons()),
        plaintext=tuple(sealing.plaintext),
        undecryptable=tuple(sealing.undecryptable),
        orphan_probe_keys=tuple(orphan_keys),
        key_problems=tuple(key_problems),
        plaintext_templates=sealing.plaintext_templates,
    )


class _SealScan:
    """Opens each stored file under its key for `check_vault`: found plaintext, found broken.

    The files are read and opened here, not through the vault's get_*, because a check
    must tell "not sealed" from "does not open" from "opens to other bytes" (get_* refuses
    all three alike). Contexts are the vault's: "image:", "crop:", "probe:<sha256>".
    Nothing opened is kept or shown.
    """

    def __init__(self, vault: BiometricVault, keys: DataKeys | None) -> None:
        self._vault = vault
        self._keys = keys
        self.plaintext: list[str] = []
        self.undecryptable: list[str] = []
        self.plaintext_templates = 0

    def gallery(
        self, session: Session, owners: dict[str, int], images: set[str], crops: set[str]
    ) -> None:
        if self._keys is None or not (images or crops):
            return
        subject_keys = self._subject_keys(session, {owners[sha] for sha in images | crops})
        for sha256 in sorted(images):
            self._open("images", self._vault.image_path(sha256), subject_keys.get(owners[sha256]))
        for sha256 in sorted(crops):
            self._open("crops", self._vault.crop_path(sha256), subject_keys.get(owners[sha256]))

    def probes(self, session: Session, hashes: list[str]) -> None:
        if self._keys is None:
            return
        for sha256 in hashes:
            key: bytes | None
            try:
                key = self._keys.probe_key(session, sha256)
            except (KeyEncryptionKeyError, WrongKeyError):
                key = None
            self._open("probes", self._vault.probe_path(sha256), key)

    def templates(self, session: Session) -> None:
        """Open every sealed gallery and probe template under its key (a batch of rows and
        their subjects' keys at a time); count those still in the clear."""
        if self._keys is None:
            return
        self.plaintext_templates = plaintext_template_count(session)
        query = (
            select(
                FaceTemplate.id,
                FaceTemplate.subject_id,
                FaceTemplate.dimension,
                FaceTemplate.model_key,
                FaceTemplate.vector,
                GalleryImage.sha256,
            )
            .join(GalleryImage, GalleryImage.id == FaceTemplate.image_id)
            .order_by(FaceTemplate.id)
            .execution_options(yield_per=_TEMPLATE_BATCH)
        )
        for batch in session.execute(query).partitions():
            keys = self._subject_keys(session, {row.subject_id for row in batch})
            for template_id, subject, dimension, model_key, blob, sha256 in batch:
                if not is_sealed(blob):
                    continue  # counted above
                context = template_context(sha256, model_key)
                if not self._opens(keys.get(subject), blob, context, 4 * dimension):
                    self.undecryptable.append(f"templates/{template_id}")
        probes = select(
            SearchRequest.id,
            SearchRequest.probe_sha256,
            SearchRequest.probe_model_key,
            SearchRequest.probe_template,
        ).where(SearchRequest.probe_template.is_not(None))
        for search_id, probe_sha, probe_model, sealed in session.execute(probes):
            if sealed is None or not is_sealed(sealed):
                continue
            key: bytes | None
            try:
                key = self._keys.probe_key(session, probe_sha)
            except (KeyEncryptionKeyError, WrongKeyError):
                key = None
            context = probe_template_context(probe_sha, probe_model or "")
            if not self._opens(key, sealed, context, None):
                self.undecryptable.append(f"probe-templates/{search_id}")

    @staticmethod
    def _opens(key: bytes | None, blob: bytes, context: str, length: int | None) -> bool:
        if key is None:
            return False
        try:
            plain = open_sealed(key, blob, context)
        except SealError:
            return False
        return length is None or len(plain) == length

    def orphan_probe_keys(self, session: Session, used: set[str]) -> list[str]:
        """Probe keys whose probe has no file, no unpurged request and no staged photo."""
        if self._keys is None:
            return []
        unused = [sha for sha in self._keys.probe_owners(session) if sha not in used]
        if not unused:
            return []
        query = select(StagedProbe.key_sha256, StagedProbe.data)
        staged = [(name, data) for name, data in session.execute(query)]
        return [sha for sha in unused if not self._staged_under(session, sha, staged)]

    def _staged_under(self, session: Session, sha256: str, staged: list[tuple[str, bytes]]) -> bool:
        """Whether a staged photo is this probe (sealed under its key, or its plaintext)."""
        if not staged or self._keys is None:
            return False
        try:
            key = self._keys.probe_key(session, sha256)
        except (KeyEncryptionKeyError, WrongKeyError):
            return False
        for name, data in staged:
            if not is_sealed(data):
                if sha256_hex(data) == sha256:
                    return True
                continue
            try:
                open_sealed(key, data, f"staged:{name}")
            except SealError:
                continue
            return True
        return False

    def _subject_keys(self, session: Session, subject_ids: set[int]) -> dict[int, bytes]:
        assert self._keys is not None
        try:
            return self._keys.subject_keys(session, subject_ids)
        except WrongKeyError:
            # One key that does not unwrap (reported by check_all): read the rest one by one.
            found: dict[int, bytes] = {}
            for subject_id in subject_ids:
                with contextlib.suppress(WrongKeyError, KeyEncryptionKeyError):
                    found[subject_id] = self._keys.subject_key(session, subject_id)
            return found

    def _open(self, kind: str, path: Path, key: bytes | None) -> None:
        name = f"{kind}/{path.name}"
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return  # erased meanwhile: nothing stored to judge
        if not is_sealed(blob):
            self.plaintext.append(name)
            return
        context = f"{kind[:-1]}:{path.name}"
        try:
            if key is None:
                raise UndecryptableError(f"{context} has no data key")
            plain = open_sealed(key, blob, context)
        except SealError:
            self.undecryptable.append(name)
            return
        if kind != "crops" and sha256_hex(plain) != path.name:
            self.undecryptable.append(name)


def remove_leftovers(
    engine: Engine, vault: BiometricVault, found: VaultCheck, keys: DataKeys | None = None
) -> Tidied:
    """Erase what `check_vault` found, and finish recorded work; hold the workspace alone.

    An orphan image takes its crop with it. A crop is an orphan only when its image has
    neither a row nor a file: a crop beside an orphan image goes with that image. Orphan
    probe keys are destroyed (with `keys`): nothing they sealed is stored any more.
    """
    if keys is not None and found.orphan_probe_keys:
        with Session(engine) as session, session.begin():
            for sha256 in found.orphan_probe_keys:
                keys.destroy_probe_key(session, sha256)
    for sha256 in found.orphan_images:
        vault.erase_image(sha256)
    for sha256 in found.orphan_crops:
        vault.erase_crop(sha256)
    for sha256 in found.orphan_probes:
        vault.erase_probe(sha256)
    vault.remove_empty_folders()
    return tidy(engine, vault, exclusive=True)


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for_gate(fd: int) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not _try_lock(fd, fcntl.LOCK_EX):
        if time.monotonic() > deadline:
            raise WorkspaceError(
                "another Candor process has held this workspace alone for "
                f"{LOCK_WAIT_SECONDS:.0f} s (`candor check --fix`?); try again when it is done"
            )
        time.sleep(0.05)
