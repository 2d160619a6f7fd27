"""Row files sealed in chunks: how a gallery index keeps its rows on disk.

A row array (float32 vectors, ids, live bits, sign codes) is cut into chunks of
`CHUNK_ROWS` rows, and each chunk is sealed on its own with AES-256-GCM under the
index's data key, as one `candor.sealing` blob (b"CNS1" | nonce | ciphertext | tag)
whose context "index:<model key>:<file>:<chunk number>" binds it to its place: a chunk
moved to another position or file, or another index's chunk put in its place, does not
open. Every chunk of a file has the same size, so chunk n lies at n * slot and is
rewritten in place: appending a row rewrites the last chunk, removing one rewrites the
chunk that held it, and nothing else is touched.

The plaintext lives only in the holder's memory (anonymous pages, as a fresh NumPy
array): opening reads and opens every chunk into it, several chunks at a time (OpenSSL
releases the GIL while it decrypts). Chunks are opened and sealed straight into and out
of the arrays' own memory (`decrypt_into`, `encrypt_into`), so a 5 GB gallery is not
copied twice on its way in. An overwritten chunk's old ciphertext is gone from the file
(rewritten in place); what a file system or an SSD leaves in freed blocks is ciphertext
under the index key only.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from candor.sealing import SEAL_OVERHEAD, SealError
from candor.sealing.envelope import MAGIC, NONCE_BYTES, TAG_BYTES

__all__ = [
    "CHUNK_ROWS",
    "IndexFileError",
    "IndexFolderBusyError",
    "IndexFolderError",
    "SealedRows",
    "chunk_bytes_of",
    "chunk_context",
    "chunks_for",
]

# 8192 rows: 4 MB of 128-d float32 vectors per chunk. An expungement reseals one such
# chunk per file (milliseconds); a 10M gallery has about 1,200 chunks per file.
CHUNK_ROWS: Final = 8192
# Chunks opened from one mapping of a file: 64 MB of 128-d vectors.
_WINDOW_CHUNKS: Final = 16
_HEADER: Final = len(MAGIC) + NONCE_BYTES


class IndexFolderError(ValueError):
    """The index folder belongs to another model or is damaged; rebuild it from the store."""


class IndexFolderBusyError(IndexFolderError):
    """Another open GalleryIndex (in this process or another) holds the folder."""


class IndexFileError(IndexFolderError):
    """A file of the folder does not open under the index's key (damaged, altered, or sealed
    under another key); the message names the file and the chunk."""


def chunks_for(rows: int) -> int:
    """How many chunks hold `rows` rows."""
    return -(-rows // CHUNK_ROWS)


def chunk_context(model_key: str, name: str, chunk: int) -> str:
    """What a chunk is and whose, authenticated with it."""
    return f"index:{model_key}:{name}:{chunk}"


def chunk_bytes_of(array: npt.NDArray[np.generic]) -> int:
    """Bytes of one chunk of `array` (rows of its second and later dimensions)."""
    return CHUNK_ROWS * array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))


def _flat(array: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """The array's bytes, as one writable uint8 view (the array is C-contiguous)."""
    return array.reshape(-1).view(np.uint8)


class SealedRows:
    """One row array's file in a folder: fixed-size sealed chunks, chunk n at n * slot."""

    def __init__(self, path: Path, model_key: str, chunk_bytes: int) -> None:
        self.path = path
        self.model_key = model_key
        self.chunk_bytes = chunk_bytes
        self.slot = SEAL_OVERHEAD + chunk_bytes

    def _context(self, chunk: int) -> bytes:
        return chunk_context(self.model_key, self.path.name, chunk).encode("utf-8")

    def chunks_on_disk(self) -> int:
        """How many whole chunks the file holds (0 when it does not exist)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size % self.slot:
            raise IndexFileError(
                f"{self.path} is {size} bytes, not a whole number of {self.slot}-byte chunks"
            )
        return size // self.slot

    def read(
        self,
        key: bytes,
        array: npt.NDArray[np.generic],
        chunks: int,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        """Open chunks 0..chunks-1 of the file into `array` (which has room for them)."""
        target = _flat(array)
        if chunks * self.chunk_bytes > len(target):
            raise ValueError(f"{chunks} chunks of {self.path.name} do not fit the array")
        if chunks == 0:
            return
        if self.chunks_on_disk() < chunks:
            raise IndexFileError(f"{self.path} holds fewer than {chunks} chunks")
        aead = _aead(key)
        with self.path.open("rb") as stream:
            for first in range(0, chunks, _WINDOW_CHUNKS):
                last = min(chunks, first + _WINDOW_CHUNKS)
                self._read_window(aead, stream.fileno(), first, last, target, pool)

    def _read_window(
        self,
        aead: AESGCM,
        handle: int,
        first: int,
        last: int,
        target: npt.NDArray[np.uint8],
        pool: ThreadPoolExecutor | None,
    ) -> None:
        """Open chunks first..last-1 straight from the file's mapped pages (no copy of the
        ciphertext is made); a window at a time, so that the file's pages mapped into this
        process (and counted in its resident memory) stay a few hundred MB, not the file."""
        start = first * self.slot
        offset = start - start % mmap.ALLOCATIONGRANULARITY
        length = last * self.slot - offset
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        with mmap.mmap(handle, length, flags, mmap.PROT_READ, offset=offset) as mapped:
            window = memoryview(mapped)
            try:

                def one(chunk: int) -> None:
                    at = chunk * self.slot - offset
                    with window[at : at + self.slot] as blob:
                        self._decrypt(aead, chunk, blob, target, chunk * self.chunk_bytes)

                if pool is None:
                    for chunk in range(first, last):
                        one(chunk)
                else:
                    for _ in pool.map(one, range(first, last)):
                        pass
            finally:
                window.release()

    def read_chunk(self, key: bytes, array: npt.NDArray[np.generic], chunk: int) -> None:
        """Open one chunk into the first CHUNK_ROWS rows of `array`."""
        buffer = bytearray(self.slot)
        handle = os.open(self.path, os.O_RDONLY)
        try:
            got = os.preadv(handle, [buffer], chunk * self.slot)
        finally:
            os.close(handle)
        if got != self.slot:
            raise IndexFileError(f"{self.path} chunk {chunk} is missing")
        self._decrypt(_aead(key), chunk, memoryview(buffer), _flat(array), 0)

    def _decrypt(
        self,
        aead: AESGCM,
        chunk: int,
        blob: memoryview,
        target: npt.NDArray[np.uint8],
        start: int,
    ) -> None:
        if bytes(blob[: len(MAGIC)]) != MAGIC:
            raise IndexFileError(f"{self.path} chunk {chunk} is not sealed")
        try:
            aead.decrypt_into(
                blob[len(MAGIC) : _HEADER],
                blob[_HEADER:],
                self._context(chunk),
                memoryview(target[start : start + self.chunk_bytes]),  # type: ignore[arg-type]
            )
        except InvalidTag:
            raise IndexFileError(
                f"{self.path} chunk {chunk} does not open under the index's key: its bytes "
                "are damaged or altered, or it was sealed under another key"
            ) from None

    def write(
        self,
        key: bytes,
        array: npt.NDArray[np.generic],
        chunks: Iterable[int],
        *,
        first_row: int = 0,
    ) -> None:
        """Seal these chunks of `array` (chunk n is rows n*CHUNK_ROWS onwards, less
        `first_row` when the array holds only part of the file) and write each in place;
        the file is synced before this returns."""
        source = _flat(array)
        aead = _aead(key)
        blob = bytearray(self.slot)
        blob[: len(MAGIC)] = MAGIC
        view = memoryview(blob)
        flags = os.O_WRONLY | os.O_CREAT
        handle = os.open(self.path, flags, 0o600)
        try:
            for chunk in chunks:
                nonce = os.urandom(NONCE_BYTES)
                view[len(MAGIC) : _HEADER] = nonce
                start = (chunk * CHUNK_ROWS - first_row) * (self.chunk_bytes // CHUNK_ROWS)
                plain = source[start : start + self.chunk_bytes]
                aead.encrypt_into(
                    nonce,
                    memoryview(plain),  # type: ignore[arg-type]
                    self._context(chunk),
                    view[_HEADER:],
                )
                os.pwrite(handle, blob, chunk * self.slot)
            os.fsync(handle)
        finally:
            os.close(handle)

    def cut(self, chunks: int) -> None:
        """Keep only the first `chunks` chunks: the rest are zeroed, then cut off."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        keep = chunks * self.slot
        if size <= keep:
            return
        zeros = bytes(min(self.slot, 1 << 22))
        handle = os.open(self.path, os.O_WRONLY)
        try:
            at = keep
            while at < size:
                step = min(len(zeros), size - at)
                os.pwrite(handle, zeros[:step], at)
                at += step
            os.fsync(handle)
            os.ftruncate(handle, keep)
            os.fsync(handle)
        finally:
            os.close(handle)


def _aead(key: bytes) -> AESGCM:
    if len(key) != 32:
        raise SealError(f"an index key is 32 bytes, not {len(key)}")
    return AESGCM(key)


# TAG_BYTES is part of SEAL_OVERHEAD; named here so a change of the envelope shows up.
assert SEAL_OVERHEAD == _HEADER + TAG_BYTES
