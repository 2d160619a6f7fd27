"""`candor upgrade`'s sealing of an older workspace's vault: every photo, crop and probe
file stored in the clear is sealed under its subject's or probe's data key, and the
plaintext is overwritten with zeros.

One prefix folder at a time: the keys it needs are made and committed first (a file is
never sealed under a key that a crash could lose), then each file is sealed in place
(`BiometricVault.seal_in_place`: the name holds the plaintext or the sealed copy, never
neither). A crash leaves files sealed and files still plain; the next upgrade seals the
rest. Files no row names are left to the tidy and `candor check`, which erase them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from candor.store.data_keys import DataKeys
from candor.store.models import GalleryImage
from candor.store.upkeep import held_probes
from candor.store.vault import BiometricVault, StoredKind

_QUERY_CHUNK = 500


@dataclass(frozen=True)
class SealedFiles:
    """What one pass sealed, and the plaintext files it left (no row names them)."""

    images: int
    crops: int
    probes: int
    unowned: int

    @property
    def total(self) -> int:
        """Files sealed in all."""
        return self.images + self.crops + self.probes


def image_subjects(session: Session, hashes: Iterable[str]) -> dict[str, int]:
    """The subject of each of these gallery images that a row names (by sha256)."""
    wanted = sorted(set(hashes))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), _QUERY_CHUNK):
        chunk = wanted[start : start + _QUERY_CHUNK]
        query = select(GalleryImage.sha256, GalleryImage.subject_id).where(
            GalleryImage.sha256.in_(chunk)
        )
        found.update({sha256: subject_id for sha256, subject_id in session.execute(query)})
    return found


def count_stored_files(vault: BiometricVault) -> int:
    """Every image, crop and probe file of the vault (a progress bar's total)."""
    return sum(
        len(vault.stored(kind, prefix))
        for kind in ("images", "crops", "probes")
        for prefix in vault.prefixes(kind)
    )


def seal_plaintext_files(
    engine: Engine,
    vault: BiometricVault,
    keys: DataKeys,
    on_file: Callable[[], None] | None = None,
) -> SealedFiles:
    """Seal every plaintext image, crop and probe file a row names; returns the counts.

    on_file: called after each file looked at (sealed or not), for a progress bar.
    Idempotent: a sealed file is only read (its header), never rewritten.
    """
    sealed: dict[StoredKind, int] = {"images": 0, "crops": 0, "probes": 0}
    unowned = 0
    for kind in ("images", "crops"):
        for prefix in vault.prefixes(kind):
            stored = vault.stored(kind, prefix)
            plain = [sha for sha in stored if vault.is_sealed_file(kind, sha) is False]
            if plain:
                with Session(engine) as session, session.begin():
                    owners = image_subjects(session, plain)
                    subject_keys = {
                        subject_id: keys.subject_key(session, subject_id, create=True)
                        for subject_id in sorted(set(owners.values()))
                    }
                for sha256 in plain:
                    if sha256 not in owners:
                        unowned += 1
                    elif vault.seal_in_place(kind, sha256, subject_keys[owners[sha256]]):
                        sealed[kind] += 1
            for _ in stored:
                if on_file is not None:
                    on_file()
    for prefix in vault.prefixes("probes"):
        stored = vault.stored("probes", prefix)
        plain = [sha for sha in stored if vault.is_sealed_file("probes", sha) is False]
        if plain:
            with Session(engine) as session, session.begin():
                held = held_probes(session, plain)
                probe_keys = {
                    sha256: keys.probe_key(session, sha256, create=True) for sha256 in sorted(held)
                }
            for sha256 in plain:
                if sha256 not in probe_keys:
                    unowned += 1
                elif vault.seal_in_place("probes", sha256, probe_keys[sha256]):
                    sealed["probes"] += 1
        for _ in stored:
            if on_file is not None:
                on_file()
    return SealedFiles(sealed["images"], sealed["crops"], sealed["probes"], unowned)
