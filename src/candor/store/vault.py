"""The one module through which biometric data (image bytes, crops, template vectors) passes.

Encryption at rest, when it comes, goes here and nowhere else. Nothing in this module
logs or formats the data it handles; error messages name content addresses only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

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


def is_sha256(value: str) -> bool:
    """True for a lower-case 64-digit hex string."""
    return len(value) == 64 and set(value) <= _HEX


def sha256_hex(data: bytes) -> str:
    """The content address of `data`."""
    return hashlib.sha256(data).hexdigest()


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


def _fsync_all(targets: list[int | Path]) -> None:
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
    """Content-addressed image and crop files under a workspace, and template (de)coding.

    Images live at images/ab/cd/<sha256>, crops of the chosen face at crops/ab/cd/<sha256>
    (keyed by the image's sha256), search probes at probes/ab/cd/<sha256>. Files are 0600,
    written to tmp/ then renamed into place. Probes are kept apart from gallery images, so
    that expunging a gallery image never takes a probe with it (the same photo may be both)
    and purging a probe under retention never touches the gallery.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self._images = home / "images"
        self._crops = home / "crops"
        self._probes = home / "probes"
        self._tmp = home / "tmp"

    @classmethod
    def initialise(cls, home: Path) -> BiometricVault:
        """Make the vault's folders in a new workspace."""
        for folder in ("images", "crops", "probes", "tmp"):
            (home / folder).mkdir(mode=0o700)
        _fsync_one(home)
        return cls(home)

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

    def put_image(self, sha256: str, data: bytes) -> None:
        """Store `data` under its sha256; idempotent, and a damaged stored copy is replaced."""
        _check_address(sha256)
        if sha256_hex(data) != sha256:
            raise BiometricIntegrityError(f"the bytes offered for image {sha256} have another hash")
        path = self.image_path(sha256)
        if path.exists():
            with contextlib.suppress(BiometricIntegrityError):
                self.get_image(sha256)
                return
        self._write(path, data)

    def get_image(self, sha256: str) -> bytes:
        """The stored bytes of an image, checked against their content address."""
        path = self.image_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BiometricNotFoundError(f"the vault holds no image {sha256}") from None
        if sha256_hex(data) != sha256:
            raise BiometricIntegrityError(
                f"stored image {sha256} does not match its hash; the file is damaged or altered"
            )
        return data

    def has_image(self, sha256: str) -> bool:
        """Whether an image file exists for this content address (its bytes are not checked)."""
        return self.image_path(sha256).is_file()

    def put_probe(self, sha256: str, data: bytes) -> None:
        """Store a probe's bytes under their sha256; idempotent, a damaged copy is replaced.

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
                self.get_probe(sha256)
                _fsync_all([path, path.parent, path.parent.parent, self._probes])
                return
        self._write_checked_name(path, data)

    def get_probe(self, sha256: str) -> bytes:
        """The stored bytes of a probe, checked against their content address."""
        path = self.probe_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BiometricNotFoundError(f"the vault holds no probe {sha256}") from None
        if sha256_hex(data) != sha256:
            raise BiometricIntegrityError(
                f"stored probe {sha256} does not match its hash; the file is damaged or altered"
            )
        return data

    def has_probe(self, sha256: str) -> bool:
        """Whether a probe file exists for this content address (its bytes are not checked)."""
        return self.probe_path(sha256).is_file()

    def erase_probe(self, sha256: str) -> None:
        """Overwrite the probe file with zeros, fsync, then unlink; an absent file passes.

        The limits of erase_image apply here too.
        """
        _erase_file(self.probe_path(sha256))

    def put_crop(self, sha256: str, png: bytes) -> None:
        """Store the crop of the face chosen in image `sha256`, replacing an earlier one."""
        if not png:
            raise VaultError(f"the crop offered for image {sha256} is empty")
        self._write(self.crop_path(sha256), png)

    def get_crop(self, sha256: str) -> bytes:
        """The stored crop of the face chosen in image `sha256`."""
        try:
            return self.crop_path(sha256).read_bytes()
        except FileNotFoundError:
            raise BiometricNotFoundError(f"the vault holds no crop for image {sha256}") from None

    def encode_template(self, vector: np.ndarray) -> bytes:
        """A template vector as float32 little-endian bytes; refuses non-finite values."""
        array = np.asarray(vector)
        if array.ndim != 1 or array.size == 0:
            raise TemplateFormatError(f"a template is a non-empty 1-D vector, not {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise TemplateFormatError(f"a template holds floats, not {array.dtype}")
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            encoded = array.astype(_TEMPLATE_DTYPE)
        if not np.isfinite(encoded).all():
            raise TemplateFormatError("a template must hold finite values only")
        return encoded.tobytes()

    def decode_template(self, blob: bytes, dimension: int) -> np.ndarray:
        """The (dimension,) float32 vector stored in `blob`; its length must match exactly."""
        if dimension <= 0:
            raise TemplateFormatError(f"a template dimension must be positive, not {dimension}")
        expected = dimension * _TEMPLATE_DTYPE.itemsize
        if len(blob) != expected:
            raise TemplateFormatError(
                f"a stored template of dimension {dimension} has {expected} bytes, not {len(blob)}"
            )
        return np.frombuffer(blob, dtype=_TEMPLATE_DTYPE).astype(np.float32)

    def erase_image(self, sha256: str) -> None:
        """Overwrite the image and crop files with zeros, fsync, then unlink; absent files pass.

        This defeats recovery of the bytes from the file's blocks on an ordinary
        overwrite-in-place filesystem (ext4 in its default ordered mode, XFS). It cannot
        reach copies the storage keeps elsewhere: copy-on-write filesystems (btrfs, ZFS,
        APFS) and their snapshots write the zeros to new blocks, data=journal ext4 keeps a
        copy in its journal, SSDs remap blocks, and backups are out of reach. Only
        encryption at rest with the key destroyed covers those cases.
        """
        for path in (self.image_path(sha256), self.crop_path(sha256)):
            _erase_file(path)

    def erase_stray_temporaries(self) -> int:
        """Erase files left in tmp/ by an interrupted write; returns how many there were."""
        strays = [entry for entry in self._tmp.iterdir() if entry.is_file()]
        for entry in strays:
            _erase_file(entry)
        return len(strays)

    def scrub_database(self, session: Session | Engine) -> None:
        """Checkpoint the write-ahead log into the database and truncate it to zero bytes.

        secure_delete (on for every connection) has already zeroed the freed pages and
        cells in the pages written by deletions; this moves those zeroed pages into the
        database file and drops the WAL's older copies of them. Call it after the
        deletion has committed; a session still inside a transaction is refused, and any
        other connection holding a transaction open makes this raise ScrubError once the
        busy timeout has passed.
        """
        if isinstance(session, Session):
            if session.in_transaction():
                raise ScrubError("commit or close the session before scrubbing the database")
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
        else:
            engine = session
        with raw_autocommit(engine) as connection:
            row = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if row is None or row[0] != 0:
            raise ScrubError(
                "the write-ahead log could not be truncated because another connection "
                "holds a transaction open; close it and scrub again"
            )

    def _write(self, path: Path, data: bytes) -> None:
        created = _make_dirs(self.home, path.parent)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                # The bytes are durable before they get their name, so a file found at
                # its final path after a power cut is never torn; the new folders'
                # entries need not wait for them, and concurrent fsyncs cost about one.
                _fsync_all([handle.fileno(), *created])
            temporary.replace(path)
        except BaseException:
            _erase_file(temporary)
            raise
        _fsync_one(path.parent)

    def _write_checked_name(self, path: Path, data: bytes) -> None:
        """`_write` for a file whose name is the hash of its bytes, checked by every read.

        The temporary takes its name first and all the fsyncs are issued together, one
        wait on the disk instead of two. A power cut before they finish can leave a torn
        file under that name; no committed row names it (the caller commits only after
        this returns), reads refuse it as damaged and the next put of those bytes
        replaces it.
        """
        created = _make_dirs(self.home, path.parent)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                temporary.replace(path)
                try:
                    _fsync_all([handle.fileno(), path.parent, *created])
                except BaseException:
                    # Not durable: no later put may find it intact and skip its own write.
                    # The disk that failed the fsync may fail the erasure's too: the name
                    # goes whatever happens to the zeros.
                    with contextlib.suppress(OSError):
                        _erase_file(path)
                    path.unlink(missing_ok=True)
                    raise
        except BaseException:
            _erase_file(temporary)
            raise


def _make_dirs(home: Path, folder: Path) -> list[Path]:
    """Create `folder` and missing parents (0700); returns the parents whose entries changed."""
    changed: list[Path] = []
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != home:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        changed.append(directory.parent)
    return changed


def _erase_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    try:
        remaining = os.fstat(fd).st_size
        while remaining > 0:
            remaining -= os.write(fd, _ZEROS[: min(remaining, len(_ZEROS))])
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    _fsync_one(path.parent)
