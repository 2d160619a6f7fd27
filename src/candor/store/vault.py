"""The one module through which biometric data (image bytes, crops, template vectors) passes.

Every photo, crop and probe file is sealed here (candor.sealing, AES-256-GCM) under the data
key its caller names: a gallery image and its crop under their subject's key, a probe under
its own. Content addresses stay the sha256 of the plaintext, checked after opening. Nothing
in this module logs or formats the data it handles; error messages name content addresses
only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from candor.sealing import SEAL_OVERHEAD, UndecryptableError, is_sealed, open_sealed, seal
from candor.store.database import raw_autocommit
from candor.store.errors import (
    BiometricIntegrityError,
    BiometricNotFoundError,
    ScrubError,
    TemplateFormatError,
    VaultError,
)

_HEX = frozenset("0123456789abcdef")
_TEMPLATE_DTYPE = np.dtype("<f4")
_ZEROS = bytes(1 << 16)
# A write whose folder another process removed as empty (see _remove_empty_folders)
# makes the folder again; more than a few such losses in a row is not a race.
_WRITE_ATTEMPTS = 5

PENDING_FOLDER = "pending"
SCRUB_RECORD = "scrub-database"
UPLOADS_FOLDER = "uploads"
# Upgrade: a hard link to a plaintext file being sealed, erased once the sealed copy has
# taken the file's name (see seal_in_place).
_UNSEALED_PREFIX = "unsealed-"
# Files whose row may not have committed: images (with their crops) and probes.
PendingKind = Literal["images", "probes"]
StoredKind = Literal["images", "crops", "probes"]


def is_sha256(value: str) -> bool:
    """True for a lower-case 64-digit hex string."""
    return len(value) == 64 and set(value) <= _HEX


def sha256_hex(data: bytes) -> str:
    """The content address of `data`."""
    return hashlib.sha256(data).hexdigest()


def template_context(image_sha256: str, model_key: str) -> str:
    """What a gallery template is sealed for: its image and model (one row per pair), so a
    sealed vector moved to another row does not open."""
    return f"template:{image_sha256}:{model_key}"


def probe_template_context(probe_sha256: str, model_key: str) -> str:
    """What a search request's probe template is sealed for: its probe photo and model."""
    return f"probe-template:{probe_sha256}:{model_key}"


def _check_address(sha256: str) -> None:
    if not is_sha256(sha256):
        raise VaultError("a content address must be 64 lower-case hex digits")


def _fsync_one(target: int | Path) -> None:
    """fsync an open file by its descriptor, or a file or folder by its path."""
    if isinstance(target, int):
        os.fsync(target)
        return
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# fsync releases the GIL; issued together, the filesystem commits its journal and
# flushes the disk cache once for all of them rather than once each.
_FSYNCS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="candor-fsync")


def fsync_all(targets: list[int | Path]) -> None:
    """fsync open files (by descriptor) and paths at once; raises the first error."""
    if len(targets) == 1:
        _fsync_one(targets[0])
        return
    futures = [_FSYNCS.submit(_fsync_one, target) for target in targets]
    # All finish before any error is raised: the caller closes these descriptors next.
    wait(futures)
    for future in futures:
        future.result()


class BiometricVault:
    """Content-addressed image and crop files under a workspace, and template (de)coding;
    every file and template sealed under the data key its caller names.

    Images live at images/ab/cd/<sha256>, crops of the chosen face at crops/ab/cd/<sha256>
    (keyed by the image's sha256), search probes at probes/ab/cd/<sha256>. Files are 0600,
    written to tmp/ then renamed into place. Probes are kept apart from gallery images, so
    that expunging a gallery image never takes a probe with it (the same photo may be both)
    and purging a probe under retention never touches the gallery.

    Work that a crash or a busy reader can leave half done is recorded in pending/: a
    marker pending/images/<sha256> or pending/probes/<sha256> for each file written
    before the row that names it commits (and for each image an expungement is about to
    erase), and pending/scrub-database while deleted rows may still have bytes in the
    database file or its write-ahead log. candor.store.upkeep finishes that work.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self._images = home / "images"
        self._crops = home / "crops"
        self._probes = home / "probes"
        self._tmp = home / "tmp"
        self._pending = home / PENDING_FOLDER

    @classmethod
    def initialise(cls, home: Path) -> BiometricVault:
        """Make the vault's folders in a new workspace."""
        for folder in ("images", "crops", "probes", "tmp", PENDING_FOLDER):
            (home / folder).mkdir(mode=0o700)
        _fsync_one(home)
        return cls(home)

    @property
    def pending_folder(self) -> Path:
        """Where unfinished work is recorded (made on first use in older workspaces)."""
        return self._pending

    def image_path(self, sha256: str) -> Path:
        """Where the image with this content address is (or would be) stored."""
        _check_address(sha256)
        return self._images / sha256[:2] / sha256[2:4] / sha256

    def crop_path(self, sha256: str) -> Path:
        """Where the crop of the face chosen in this image is (or would be) stored."""
        _check_address(sha256)
        return self._crops / sha256[:2] / sha256[2:4] / sha256

    def probe_path(self, sha256: str) -> Path:
        """Where the probe with this content address is (or would be) stored."""
        _check_address(sha256)
        return self._probes / sha256[:2] / sha256[2:4] / sha256

    def put_image(self, sha256: str, data: bytes, key: bytes) -> None:
        """Store `data` sealed under its subject's `key`, named by the sha256 of `data`;
        idempotent, and a damaged stored copy (or one another key sealed) is replaced.

        A new file is marked pending until the next tidy finds its row (see the class
        docstring); an intact file already there is left as it is.
        """
        _check_address(sha256)
        if sha256_hex(data) != sha256:
            raise BiometricIntegrityError(f"the bytes offered for image {sha256} have another hash")
        path = self.image_path(sha256)
        if path.exists():
            with contextlib.suppress(BiometricIntegrityError):
                self.get_image(sha256, key)
                return
        self._write(path, self.sealed_image(sha256, data, key), pending=("images", sha256))

    def sealed_image(self, sha256: str, data: bytes, key: bytes) -> bytes:
        """An image's file contents: `data` sealed under its subject's `key` (for writers
        that put many files at once, candor.store.vault_batch)."""
        return seal(key, data, f"image:{sha256}")

    def get_image(self, sha256: str, key: bytes) -> bytes:
        """The stored bytes of an image, opened under its subject's `key` and checked
        against their content address."""
        return self._read_sealed("images", self.image_path(sha256), sha256, key)

    def has_image(self, sha256: str) -> bool:
        """Whether an image file exists for this content address (its bytes are not checked)."""
        return self.image_path(sha256).is_file()

    def put_probe(self, sha256: str, data: bytes, key: bytes) -> None:
        """Store a probe's bytes sealed under the probe's `key`, named by their sha256;
        idempotent, a damaged copy (or one another key sealed) is replaced.

        Returns once the file and every folder entry leading to it are durable, so a row
        naming the probe may commit next. That holds when the file was already there,
        too: another request may have written it an instant before and still be waiting
        on its fsyncs.
        """
        _check_address(sha256)
        if sha256_hex(data) != sha256:
            raise BiometricIntegrityError(f"the bytes offered for probe {sha256} have another hash")
        path = self.probe_path(sha256)
        if path.exists():
            with contextlib.suppress(BiometricIntegrityError):
                self.get_probe(sha256, key)
                fsync_all([path, path.parent, path.parent.parent, self._probes])
                return
        sealed = seal(key, data, f"probe:{sha256}")
        self._write_checked_name(path, sealed, pending=("probes", sha256))

    def get_probe(self, sha256: str, key: bytes) -> bytes:
        """The stored bytes of a probe, opened under its `key` and checked against their
        content address."""
        return self._read_sealed("probes", self.probe_path(sha256), sha256, key)

    def has_probe(self, sha256: str) -> bool:
        """Whether a probe file exists for this content address (its bytes are not checked)."""
        return self.probe_path(sha256).is_file()

    def erase_probe(self, sha256: str) -> None:
        """Overwrite the probe file with zeros, fsync, then unlink; an absent file passes.

        Folders left empty go too. The limits of erase_image apply here as well; the
        caller destroys the probe's key where nothing else uses it, which covers them.
        """
        path = self.probe_path(sha256)
        _erase_file(path)
        _remove_empty_folders(path.parent, self._probes)

    def put_crop(self, sha256: str, png: bytes, key: bytes) -> None:
        """Store the crop of the face chosen in image `sha256`, sealed under its subject's
        `key`, replacing an earlier one."""
        if not png:
            raise VaultError(f"the crop offered for image {sha256} is empty")
        self._write(
            self.crop_path(sha256), seal(key, png, f"crop:{sha256}"), pending=("images", sha256)
        )

    def get_crop(self, sha256: str, key: bytes) -> bytes:
        """The stored crop of the face chosen in image `sha256`, opened under its subject's
        `key`."""
        return self._read_sealed("crops", self.crop_path(sha256), sha256, key)

    def _read_sealed(self, kind: StoredKind, path: Path, sha256: str, key: bytes) -> bytes:
        """A stored file's plaintext; BiometricNotFoundError when absent, and
        BiometricIntegrityError when it is plaintext, does not open, or (an image or a
        probe) opens to bytes of another hash."""
        what = {"images": "image", "crops": "crop for image", "probes": "probe"}[kind]
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise BiometricNotFoundError(f"the vault holds no {what} {sha256}") from None
        if not is_sealed(blob):
            raise BiometricIntegrityError(
                f"stored {what} {sha256} is not sealed: run `candor upgrade` to seal older "
                "files, or `candor check` if it should have been"
            )
        try:
            data = open_sealed(key, blob, f"{kind[:-1]}:{sha256}")
        except UndecryptableError:
            raise BiometricIntegrityError(
                f"stored {what} {sha256} does not open under its key: the file is damaged or "
                "altered, or was sealed under another key"
            ) from None
        if kind != "crops" and sha256_hex(data) != sha256:
            raise BiometricIntegrityError(
                f"stored {what} {sha256} does not match its hash; the file is damaged or altered"
            )
        return data

    def seal_staged(self, name: str, data: bytes, key: bytes) -> bytes:
        """A staged probe photo (held in the database between a search form's steps) sealed
        under its probe's `key`, bound to the staged row's `name` (its key_sha256)."""
        return seal(key, data, f"staged:{name}")

    def open_staged(self, name: str, blob: bytes, key: bytes) -> bytes:
        """The photo `seal_staged` sealed for the staged row `name`; BiometricIntegrityError
        when it does not open under `key`."""
        try:
            return open_sealed(key, blob, f"staged:{name}")
        except UndecryptableError:
            raise BiometricIntegrityError(
                f"staged photo {name} does not open under its probe's key"
            ) from None

    def is_sealed_file(self, kind: StoredKind, sha256: str) -> bool | None:
        """Whether a stored file has the sealed header; None when there is no such file."""
        path = self._stored_path(kind, sha256)
        try:
            with path.open("rb") as handle:
                head = handle.read(64)
        except FileNotFoundError:
            return None
        return is_sealed(head)

    def seal_in_place(self, kind: StoredKind, sha256: str, key: bytes) -> bool:
        """Seal a plaintext file of an older workspace under `key`; returns whether it was
        plaintext (a sealed or absent file is left alone).

        Crash-safe: the name always holds either the plaintext or the sealed copy. A hard
        link in tmp/ keeps the plaintext's blocks reachable until the sealed copy has
        taken the name; then those blocks are overwritten with zeros and the link goes.
        A crash between leaves the link for erase_stray_temporaries, which only unlinks
        a link the stored file still shares and zeroes one it no longer does.
        """
        path = self._stored_path(kind, sha256)
        try:
            plain = path.read_bytes()
        except FileNotFoundError:
            return False
        if is_sealed(plain):
            return False
        if kind != "crops" and sha256_hex(plain) != sha256:
            raise BiometricIntegrityError(
                f"stored {kind[:-1]} {sha256} does not match its hash; it was left as it is"
            )
        make_owner_only_dirs(self.home, self._tmp)
        original = self._tmp / f"{_UNSEALED_PREFIX}{kind}-{sha256}"
        original.unlink(missing_ok=True)
        os.link(path, original)
        _fsync_one(self._tmp)
        pending: tuple[PendingKind, str] = ("probes" if kind == "probes" else "images", sha256)
        self._write(path, seal(key, plain, f"{kind[:-1]}:{sha256}"), pending=pending)
        # The row naming it exists (the caller found it): no tidy need check it again.
        self.settle(*pending)
        _erase_file(original)
        return True

    def _stored_path(self, kind: StoredKind, sha256: str) -> Path:
        if kind == "images":
            return self.image_path(sha256)
        if kind == "crops":
            return self.crop_path(sha256)
        return self.probe_path(sha256)

    def encode_template(self, vector: np.ndarray, key: bytes, context: str) -> bytes:
        """A template vector as float32 little-endian bytes sealed under `key` for `context`
        (`template_context` or `probe_template_context`); refuses non-finite values."""
        array = np.asarray(vector)
        if array.ndim != 1 or array.size == 0:
            raise TemplateFormatError(f"a template is a non-empty 1-D vector, not {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise TemplateFormatError(f"a template holds floats, not {array.dtype}")
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            encoded = array.astype(_TEMPLATE_DTYPE)
        if not np.isfinite(encoded).all():
            raise TemplateFormatError("a template must hold finite values only")
        return seal(key, encoded.tobytes(), context)

    def decode_template(self, blob: bytes, dimension: int, key: bytes, context: str) -> np.ndarray:
        """The (dimension,) float32 vector sealed in `blob` under `key` for `context`.

        A plaintext template (a workspace not yet through `candor upgrade`) is refused like
        a damaged one: accepting it would let a row's sealed vector be swapped for a chosen
        plain one."""
        if dimension <= 0:
            raise TemplateFormatError(f"a template dimension must be positive, not {dimension}")
        expected = dimension * _TEMPLATE_DTYPE.itemsize + SEAL_OVERHEAD
        if len(blob) != expected:
            plain = len(blob) == expected - SEAL_OVERHEAD
            raise TemplateFormatError(
                f"{context}: a sealed template of dimension {dimension} has {expected} bytes, "
                f"not {len(blob)}"
                + ("; it is not sealed yet: run `candor upgrade`" if plain else "")
            )
        try:
            plaintext = open_sealed(key, blob, context)
        except UndecryptableError as error:
            raise BiometricIntegrityError(str(error)) from None
        return np.frombuffer(plaintext, dtype=_TEMPLATE_DTYPE).astype(np.float32)

    def erase_image(self, sha256: str) -> None:
        """Overwrite the image and crop files with zeros, fsync, then unlink; absent files pass.

        Folders left empty go too, up to images/ and crops/: their names are the first
        digits of the content address.

        This defeats recovery of the bytes from the file's blocks on an ordinary
        overwrite-in-place filesystem (ext4 in its default ordered mode, XFS). It cannot
        reach copies the storage keeps elsewhere: copy-on-write filesystems (btrfs, ZFS,
        APFS) and their snapshots write the zeros to new blocks, data=journal ext4 keeps a
        copy in its journal, SSDs remap blocks, and backups are out of reach. Those copies
        are sealed: destroying the subject's key (the expungement does) covers them.
        """
        for path, root in (
            (self.image_path(sha256), self._images),
            (self.crop_path(sha256), self._crops),
        ):
            _erase_file(path)
            _remove_empty_folders(path.parent, root)

    # -- unfinished work ---------------------------------------------------------------

    def note_pending(self, kind: PendingKind, hashes: Sequence[str]) -> None:
        """Mark these files as awaiting a check against the rows, durably.

        An expungement calls this before its deletion commits: should it die before the
        files are erased, the next tidy erases them.
        """
        folders: set[Path] = set()
        for sha256 in hashes:
            folders.update(self._mark_pending(kind, sha256))
        if folders:
            fsync_all(sorted(folders))

    def pending(self, kind: PendingKind) -> list[str]:
        """The content addresses marked pending of this kind."""
        folder = self._pending / kind
        try:
            names = [entry.name for entry in folder.iterdir()]
        except FileNotFoundError:
            return []
        return sorted(name for name in names if is_sha256(name))

    def settle(self, kind: PendingKind, sha256: str) -> None:
        """Drop the pending marker of a file now named by a row, or erased."""
        _check_address(sha256)
        (self._pending / kind / sha256).unlink(missing_ok=True)

    def note_scrub_needed(self, reason: str) -> None:
        """Record, durably, that deleted rows may have bytes left in the database files.

        Each call appends a line saying why (ids and counts only, never biometric data).
        """
        created = make_owner_only_dirs(self.home, self._pending)
        record = self._pending / SCRUB_RECORD
        line = f"{datetime.now(UTC).isoformat(timespec='seconds')} {' '.join(reason.split())}\n"
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            fsync_all([fd, self._pending, *created])
        finally:
            os.close(fd)

    def scrub_reasons(self) -> list[str]:
        """Why a scrub of the database is still owed; empty when none is."""
        try:
            text = (self._pending / SCRUB_RECORD).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()] or ["(no reason given)"]

    def scrub_database(self, session: Session | Engine, *, wait_ms: int | None = None) -> None:
        """Checkpoint the write-ahead log into the database and truncate it to zero bytes.

        secure_delete (on for every connection) has already zeroed the freed pages and
        cells in the pages written by deletions; this moves those zeroed pages into the
        database file and drops the WAL's older copies of them. Call it after the
        deletion has committed; a session still inside a transaction is refused.

        Another connection holding a read transaction open pins the older pages: the
        checkpoint waits up to `wait_ms` (default: the connections' busy timeout) for it,
        then gives up, records the scrub as owed (pending/scrub-database) and raises
        ScrubError. A successful scrub clears any such record.
        """
        if isinstance(session, Session):
            if session.in_transaction():
                raise ScrubError("commit or close the session before scrubbing the database")
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
        else:
            engine = session
        record = self._pending / SCRUB_RECORD
        if engine.dialect.name != "sqlite":
            # PostgreSQL has no checkpoint that overwrites a deleted row's bytes: VACUUM
            # frees the space, it does not scrub it, and old WAL segments are recycled on
            # the server's schedule (docs/deploy.md says what an expungement leaves there).
            # Nothing here can do better, so nothing is owed.
            record.unlink(missing_ok=True)
            return
        # Read before the checkpoint: a reason noted while it runs may not be covered.
        owed = record.stat() if record.exists() else None
        with raw_autocommit(engine) as connection:
            if wait_ms is None:
                row = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            else:
                (usual,) = connection.execute("PRAGMA busy_timeout").fetchone()
                connection.execute(f"PRAGMA busy_timeout = {max(0, int(wait_ms))}")
                try:
                    row = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    connection.execute(f"PRAGMA busy_timeout = {int(usual)}")
        if row is None or row[0] != 0:
            if not record.exists():
                self.note_scrub_needed("a checkpoint of the write-ahead log was blocked")
            raise ScrubError(
                "the write-ahead log could not be truncated because another connection "
                "holds a transaction open, so bytes of deleted rows remain in the database "
                "file and its write-ahead log; the scrub is recorded and finishes at the "
                "next start of any candor command, or run `candor scrub` once that "
                "connection has closed"
            )
        if owed is not None:
            with contextlib.suppress(FileNotFoundError):
                now = record.stat()
                # Only a record this checkpoint covered goes; one appended to meanwhile stays.
                if (now.st_ino, now.st_size) == (owed.st_ino, owed.st_size):
                    record.unlink()

    # -- temporary files ---------------------------------------------------------------

    @contextlib.contextmanager
    def upload_folder(self) -> Iterator[Path]:
        """A private folder (0700) for uploaded files inside the workspace, erased on exit.

        Uploads are probe photos: they never go to a shared temporary folder such as
        /tmp, where a killed server would leave them for anyone to read. What a killed
        server leaves here goes at the next start (erase_stray_temporaries).
        """
        parent = self._tmp / UPLOADS_FOLDER
        make_owner_only_dirs(self.home, parent)
        folder = parent / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        try:
            yield folder
        finally:
            _erase_tree(folder)

    def erase_stray_temporaries(self) -> int:
        """Erase files left in tmp/ by interrupted writes and uploads; returns how many.

        Only for a workspace no other process has open: a live writer's temporaries
        look the same as a dead one's.
        """
        strays = 0
        for entry in list(self._tmp.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                strays += _erase_tree(entry) if entry.name == UPLOADS_FOLDER else 0
            elif entry.name.startswith(_UNSEALED_PREFIX) and _shares_blocks(entry):
                # An upgrade died before the sealed copy took the name: the stored file is
                # still this plaintext, sealed by the next upgrade. Zeros would wipe it.
                entry.unlink()
                strays += 1
            else:
                _erase_file(entry)
                strays += 1
        return strays

    # -- whole-vault scans (candor check) ----------------------------------------------

    def stored(self, kind: Literal["images", "crops", "probes"], prefix: str) -> list[str]:
        """Content addresses of the files stored under one two-digit prefix folder."""
        root = {"images": self._images, "crops": self._crops, "probes": self._probes}[kind]
        folder = root / prefix
        if not folder.is_dir():
            return []
        return sorted(
            path.name
            for path in folder.glob("*/*")
            if path.is_file()
            and is_sha256(path.name)
            and path.name[:4] == prefix + path.parent.name
        )

    def prefixes(self, kind: Literal["images", "crops", "probes"]) -> list[str]:
        """The two-digit prefix folders present under images/, crops/ or probes/."""
        root = {"images": self._images, "crops": self._crops, "probes": self._probes}[kind]
        try:
            return sorted(e.name for e in root.iterdir() if e.is_dir() and len(e.name) == 2)
        except FileNotFoundError:
            return []

    def erase_crop(self, sha256: str) -> None:
        """Erase a crop alone (one whose image row is gone but whose image file is not)."""
        path = self.crop_path(sha256)
        _erase_file(path)
        _remove_empty_folders(path.parent, self._crops)

    def remove_empty_folders(self) -> int:
        """Remove empty prefix folders under images/, crops/ and probes/; returns how many."""
        removed = 0
        for root in (self._images, self._crops, self._probes):
            if not root.is_dir():
                continue
            for first in sorted(root.iterdir()):
                if not first.is_dir() or first.is_symlink():
                    continue
                for second in sorted(first.iterdir()):
                    if second.is_dir() and not second.is_symlink():
                        with contextlib.suppress(OSError):
                            second.rmdir()
                            removed += 1
                with contextlib.suppress(OSError):
                    first.rmdir()
                    removed += 1
        return removed

    # -- writing -------------------------------------------------------------------------

    def _mark_pending(self, kind: PendingKind, sha256: str) -> list[Path]:
        """Create the marker; returns the folders whose entries must be synced for it."""
        _check_address(sha256)
        folder = self._pending / kind
        created = make_owner_only_dirs(self.home, folder)
        try:
            fd = os.open(folder / sha256, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return created
        os.close(fd)
        return [folder, *created]

    def _write(self, path: Path, data: bytes, *, pending: tuple[PendingKind, str]) -> None:
        for attempt in range(_WRITE_ATTEMPTS):
            marked = self._mark_pending(*pending)
            created = make_owner_only_dirs(self.home, path.parent)
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
            temporary = Path(name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    # The bytes are durable before they get their name, so a file found at
                    # its final path after a power cut is never torn; the new folders'
                    # entries need not wait for them, and concurrent fsyncs cost about one.
                    # The pending marker is durable before the name, too.
                    fsync_all([handle.fileno(), *created, *marked])
                temporary.replace(path)
            except FileNotFoundError:
                _erase_file(temporary)
                if path.parent.is_dir() or attempt == _WRITE_ATTEMPTS - 1:
                    raise
                continue  # another process removed the folder as empty: make it again
            except BaseException:
                _erase_file(temporary)
                raise
            _fsync_one(path.parent)
            return

    def _write_checked_name(
        self, path: Path, data: bytes, *, pending: tuple[PendingKind, str]
    ) -> None:
        """`_write` for a file whose name is the hash of its bytes, checked by every read.

        The temporary takes its name first and all the fsyncs are issued together, one
        wait on the disk instead of two. A power cut before they finish can leave a torn
        file under that name; no committed row names it (the caller commits only after
        this returns), reads refuse it as damaged and the next put of those bytes
        replaces it.
        """
        for attempt in range(_WRITE_ATTEMPTS):
            marked = self._mark_pending(*pending)
            created = make_owner_only_dirs(self.home, path.parent)
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
            temporary = Path(name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    temporary.replace(path)
                    try:
                        fsync_all([handle.fileno(), path.parent, *created, *marked])
                    except BaseException:
                        # Not durable: no later put may find it intact and skip its own
                        # write. The disk that failed the fsync may fail the erasure's
                        # too: the name goes whatever happens to the zeros.
                        with contextlib.suppress(OSError):
                            _erase_file(path)
                        path.unlink(missing_ok=True)
                        raise
                return
            except FileNotFoundError:
                _erase_file(temporary)
                if path.parent.is_dir() or attempt == _WRITE_ATTEMPTS - 1:
                    raise
                # the folder was removed as empty meanwhile: make it again
            except BaseException:
                _erase_file(temporary)
                raise


def make_owner_only_dirs(home: Path, folder: Path) -> list[Path]:
    """Create `folder` and missing parents (0700); returns the parents whose entries changed."""
    changed: list[Path] = []
    for _ in range(_WRITE_ATTEMPTS):
        missing: list[Path] = []
        current = folder
        while not current.exists() and current != home:
            missing.append(current)
            current = current.parent
        try:
            for directory in reversed(missing):
                try:
                    directory.mkdir(mode=0o700)
                except FileExistsError:
                    continue
                changed.append(directory.parent)
        except FileNotFoundError:
            continue  # another process removed a parent as empty meanwhile: again
        return changed
    raise VaultError(f"the vault folder {folder} kept disappearing while it was made")


def _remove_empty_folders(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents below `root` while they are empty.

    rmdir refuses a folder with anything in it, so a file another process has just put
    there is safe; a writer that finds its folder gone makes it again (see _write).
    """
    removed_from: Path | None = None
    current = folder
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except OSError:  # not empty, or already gone
            break
        removed_from = current.parent
        current = current.parent
    if removed_from is not None:
        with contextlib.suppress(FileNotFoundError):
            _fsync_one(removed_from)


def _erase_tree(folder: Path) -> int:
    """Erase every file under `folder`, then the folders; returns how many files."""
    erased = 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            _erase_file(path)
            erased += 1
    folder.rmdir()
    return erased


def _shares_blocks(path: Path) -> bool:
    """Whether another name links to this file (a plain file, not followed if a symlink)."""
    try:
        return path.lstat().st_nlink > 1 and not path.is_symlink()
    except FileNotFoundError:
        return False


def _erase_file(path: Path) -> None:
    try:
        # O_NONBLOCK: a FIFO someone left in tmp/ must not hang the start-up.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    except OSError:
        # A symlink (refused by O_NOFOLLOW) or another file that is not a plain one:
        # nothing of ours was written through it, so only its name goes.
        if path.is_symlink() or not path.is_file():
            path.unlink(missing_ok=True)
            return
        raise
    try:
        remaining = os.fstat(fd).st_size
        while remaining > 0:
            remaining -= os.write(fd, _ZEROS[: min(remaining, len(_ZEROS))])
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    _fsync_one(path.parent)
