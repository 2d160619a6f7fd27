"""Many new images into the vault at once: a synthetic gallery's pictures, by the thousand.

`BiometricVault.put_image` makes each file durable before it returns (a marker, the
bytes, the name: several waits on the disk per picture). Loading a benchmark gallery of
100k pictures that way spent most of its time waiting. Here a whole batch is marked
pending (durably, as `note_pending` does), written under the final names by a few
threads, and then made durable by one syncfs of the vault's filesystem (the vault's
fsync helper on each file and folder where there is no syncfs). Nothing names these
files until the caller's rows commit, after this returns: a crash before then leaves
pending files that the next tidy erases (candor.store.upkeep), and a file torn by a
power cut is refused as damaged by every read (it no longer opens under its key). Each
picture is sealed under its subject's key, as `put_image` seals it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from candor.store.errors import BiometricIntegrityError
from candor.store.vault import (
    BiometricVault,
    fsync_all,
    make_owner_only_dirs,
    sha256_hex,
)

# Creating a file or folder costs a wait in the kernel that releases the GIL; a few
# threads overlap those waits (measured: about 1.6x faster on 2 cores than one thread).
_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="candor-bulk-write")
_SLICES = 16
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="candor-bulk-put")


Picture = tuple[str, bytes, bytes]
"""(sha256, bytes, the subject's data key) of one picture."""


def put_new_images(vault: BiometricVault, pictures: Sequence[Picture]) -> list[str]:
    """Store each (sha256, bytes, key) picture sealed under its key; returns the addresses
    of the files written.

    An address already stored is left alone (as `put_image` leaves an intact copy): the
    caller's rows refer to it all the same. The returned files are the ones to erase
    should the rows not commit; on an error every file written here is erased.
    """
    for sha256, data, _ in pictures:
        if sha256_hex(data) != sha256:
            raise BiometricIntegrityError(f"the bytes offered for image {sha256} have another hash")
    new = [picture for picture in pictures if not vault.image_path(picture[0]).exists()]
    if not new:
        return []
    slices = [new[at::_SLICES] for at in range(min(_SLICES, len(new)))]
    # Marked before any byte is written, durably (note_pending syncs its folders).
    _run_all(
        [partial(vault.note_pending, "images", [sha for sha, _, _ in part]) for part in slices]
    )
    written: list[list[str]] = [[] for _ in slices]
    synced: list[set[Path]] = [set() for _ in slices]
    try:
        _run_all(
            [
                partial(_write_slice, vault, part, done, folders)
                for part, done, folders in zip(slices, written, synced, strict=True)
            ]
        )
        _sync_written(vault, written, synced)
    except BaseException:
        for done in written:
            for sha256 in done:
                vault.erase_image(sha256)
        raise
    return [sha256 for done in written for sha256 in done]


def _sync_written(vault: BiometricVault, written: list[list[str]], synced: list[set[Path]]) -> None:
    """Make the batch's files and folders durable: one syncfs where Linux has it.

    One syncfs of the vault's filesystem flushes every file and folder written (and
    whatever else is dirty there) in one wait, where an fsync each cost about 0.4 ms
    per file on this machine's disk even issued eight at a time; elsewhere, the vault's
    fsync helper on each of them.
    """
    syncfs = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if syncfs is not None:
        fd = os.open(vault.home, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"syncfs of the vault failed: {os.strerror(error)}")
        finally:
            os.close(fd)
        return
    files = [vault.image_path(sha256) for done in written for sha256 in done]
    fsync_all([*files, *sorted(set().union(*synced))])


def _run_all(calls: list[Callable[[], None]]) -> None:
    """Run the calls on the writer threads; all finish before the first error is raised."""
    futures = [_WRITERS.submit(call) for call in calls]
    wait(futures)
    for future in futures:
        future.result()


def _write_slice(
    vault: BiometricVault, part: list[Picture], done: list[str], folders: set[Path]
) -> None:
    """Write each picture under its final name (not synced: the caller syncs them all).

    Straight to the name, without a temporary in tmp/ renamed into place, as
    `_write_checked_name` does: no row names the file before the caller commits, after
    the sync, and a reader that meets it half written refuses it as damaged.
    """
    for sha256, data, key in part:
        sealed = vault.sealed_image(sha256, data, key)
        path = vault.image_path(sha256)
        folders.update(make_owner_only_dirs(vault.home, path.parent))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        done.append(sha256)
        with os.fdopen(fd, "wb") as handle:
            handle.write(sealed)
        folders.add(path.parent)


def start_put_new_images(vault: BiometricVault, pictures: Sequence[Picture]) -> Future[list[str]]:
    """`put_new_images` in the background: the caller can insert its rows meanwhile and
    must have the result (the files durable) before it commits them."""
    return _BACKGROUND.submit(put_new_images, vault, pictures)
