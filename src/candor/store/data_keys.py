"""Data keys: one per gallery subject, one per probe photo, one per gallery index; and the
workspace's key-encryption key (KEK) record.

Every photo, crop, probe and template is sealed (candor.sealing) under the data key of the
subject or probe it belongs to; an index's files under the index's key. A data key is
stored only wrapped under the KEK, which lives outside the workspace (a file, by default
~/.config/candor/<workspace id>.kek). Destroying a data key shreds everything it sealed,
wherever a copy of the ciphertext is: a subject's key row goes with the subject row
(ON DELETE CASCADE, in the expungement's transaction), a probe's with the probe.

The KEK itself is never stored: the workspace keeps its absolute path (where this
machine finds it; $CANDOR_KEK_FILE overrides it on nodes that keep it elsewhere) and
its fingerprint, so that a wrong key file is refused before anything is sealed under it.
A database copied without the KEK file reads as ciphertext only.

Every SQL statement about keys lives here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

import platformdirs
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.sealing import (
    KeyFileError,
    WrongKeyError,
    create_key_file,
    key_fingerprint,
    new_data_key,
    read_key_file,
    unwrap_key,
    wrap_key,
)
from candor.store.errors import WorkspaceError
from candor.store.models import NEVER_REUSED_IDS, Base, UTCDateTime, utc_now

__all__ = [
    "KEK_FILE_VARIABLE",
    "DataKey",
    "DataKeys",
    "KekRecord",
    "KeyCount",
    "KeyEncryptionKey",
    "KeyEncryptionKeyError",
    "KeyKind",
    "count_data_keys",
    "default_kek_path",
    "kek_file_in_use",
    "kek_record",
]

# Names the KEK file's path (never holds the key): for nodes that keep it elsewhere than
# the path the workspace recorded, and for `candor init`.
KEK_FILE_VARIABLE: Final = "CANDOR_KEK_FILE"
KeyKind = Literal["subject", "probe", "index"]
KEY_KINDS: Final = ("subject", "probe", "index")


class KeyEncryptionKeyError(WorkspaceError):
    """The KEK is missing, unreadable, or not this workspace's: nothing sealed can be read."""


class DataKey(Base):
    """One data key, wrapped under the KEK, and what it seals: a subject, a probe or an index."""

    __tablename__ = "data_keys"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KEY_KINDS)})", name="kind_known"),
        CheckConstraint(
            "(kind = 'subject' AND subject_id IS NOT NULL AND owner IS NULL) OR "
            "(kind <> 'subject' AND subject_id IS NULL AND owner IS NOT NULL)",
            name="one_owner",
        ),
        CheckConstraint("length(wrapped) = 40", name="wrapped_length"),
        UniqueConstraint("kind", "owner"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The subject whose photos, crops and templates this key seals; the row goes with it.
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), unique=True, nullable=True
    )
    # A probe's sha256, or an index's model key.
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyEncryptionKey(Base):
    """The workspace's KEK: where it is and its fingerprint (one row; never the key)."""

    __tablename__ = "key_encryption_key"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(16))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


def default_kek_path(workspace_id: str) -> Path:
    """~/.config/candor/<workspace id>.kek (the user's config folder; XDG_CONFIG_HOME counts)."""
    return platformdirs.user_config_path("candor") / f"{workspace_id}.kek"


def kek_path_from_env() -> Path | None:
    """The KEK path $CANDOR_KEK_FILE names, absolute; None when unset."""
    value = os.environ.get(KEK_FILE_VARIABLE, "").strip()
    return Path(value).expanduser().absolute() if value else None


def make_kek(path: Path | None, workspace_id: str) -> tuple[Path, bytes, bool]:
    """The KEK for a workspace that has none recorded, its absolute path, and whether it was
    made now: the file at `path`, else at $CANDOR_KEK_FILE, else at the default path for
    this workspace id; read if it exists there, made if not."""
    chosen = path if path is not None else kek_path_from_env()
    target = Path(chosen if chosen is not None else default_kek_path(workspace_id))
    target = target.expanduser().absolute()
    if target.exists():
        return target, _read(target), False
    return target, _create(target), True


def _create(path: Path) -> bytes:
    try:
        return create_key_file(path)
    except KeyFileError as error:
        raise KeyEncryptionKeyError(f"key-encryption key: {error}") from None


def _read(path: Path) -> bytes:
    try:
        return read_key_file(path, "key-encryption key")
    except KeyFileError as error:
        raise KeyEncryptionKeyError(
            f"{error}; without it no photo or template can be read"
        ) from None


# -- the KEK record ---------------------------------------------------------------------


def record_kek(session: Session, path: Path, kek: bytes) -> None:
    """Record (or replace) the workspace's KEK path and fingerprint."""
    row = session.get(KeyEncryptionKey, 1)
    if row is None:
        session.add(
            KeyEncryptionKey(
                id=1, path=str(path), fingerprint=key_fingerprint(kek), set_at=utc_now()
            )
        )
        return
    row.path, row.fingerprint, row.set_at = str(path), key_fingerprint(kek), utc_now()


def recorded_kek(session: Session) -> KeyEncryptionKey | None:
    """The KEK record; None in a workspace from before encryption at rest (not upgraded)."""
    return session.get(KeyEncryptionKey, 1)


@dataclass(frozen=True)
class KekRecord:
    """What the workspace records of its KEK: where it is and its fingerprint (never the key)."""

    path: Path
    fingerprint: str
    set_at: datetime


def kek_record(session: Session) -> KekRecord | None:
    """The KEK record as plain values, read without the KEK (for `candor keys show`, which
    must say what is wrong when the KEK is missing or wrong); None before encryption at rest."""
    row = recorded_kek(session)
    return None if row is None else KekRecord(Path(row.path), row.fingerprint, row.set_at)


def kek_file_in_use(record: KekRecord) -> tuple[Path, str]:
    """The KEK file this process reads, and what chose it: $CANDOR_KEK_FILE or the workspace's
    record (the same choice as `load_kek`)."""
    from_env = kek_path_from_env()
    return (from_env, KEK_FILE_VARIABLE) if from_env is not None else (record.path, "workspace")


def _lock_kek_record(session: Session, *, exclusive: bool) -> KeyEncryptionKey | None:
    """The KEK record, locked against a rotation until the caller's transaction ends.

    A rotation takes it FOR UPDATE before it reads the keys it re-wraps; a process adding a
    key takes it FOR SHARE before it wraps the key. On PostgreSQL (READ COMMITTED) this
    orders the two, so no key is ever added under a KEK a committed rotation has retired
    and no key is missed by a rotation. SQLite has one writer at a time already (and
    ignores FOR UPDATE)."""
    statement = select(KeyEncryptionKey).where(KeyEncryptionKey.id == 1)
    statement = statement.with_for_update(read=not exclusive)
    return session.scalar(statement.execution_options(populate_existing=True))


def load_kek(session: Session, where: Path) -> tuple[Path, bytes]:
    """The workspace's KEK, from $CANDOR_KEK_FILE or the recorded path, checked against the
    recorded fingerprint. Refuses (KeyEncryptionKeyError) a missing record, file or match."""
    record = recorded_kek(session)
    if record is None:
        raise KeyEncryptionKeyError(
            f"the workspace {where} has no key-encryption key yet (it predates encryption at "
            "rest): run `candor upgrade`"
        )
    from_env = kek_path_from_env()
    path = from_env or Path(record.path)
    try:
        kek = read_key_file(path, "key-encryption key")
    except KeyFileError as error:
        chosen = (
            f"the path {KEK_FILE_VARIABLE} names"
            if from_env is not None
            else f"the path the workspace recorded; if it is kept elsewhere on this machine, "
            f"point {KEK_FILE_VARIABLE} at it"
        )
        raise KeyEncryptionKeyError(
            f"{error} ({chosen}); without it no photo or template can be read"
        ) from None
    if key_fingerprint(kek) != record.fingerprint:
        raise KeyEncryptionKeyError(
            f"the key-encryption key {path} (fingerprint {key_fingerprint(kek)}) is not the "
            f"workspace's (fingerprint {record.fingerprint}); point {KEK_FILE_VARIABLE} at "
            "the workspace's KEK file"
        )
    return path, kek


# -- data keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCount:
    """How many data keys of each kind the workspace holds."""

    subject: int
    probe: int
    index: int

    @property
    def total(self) -> int:
        """Every data key, of every kind."""
        return self.subject + self.probe + self.index


def count_data_keys(session: Session) -> KeyCount:
    """How many data keys of each kind there are (reads no key: works without the KEK)."""
    counts = dict.fromkeys(KEY_KINDS, 0)
    rows = session.execute(select(DataKey.kind, func.count()).group_by(DataKey.kind))
    for kind, number in rows:
        counts[kind] = number
    return KeyCount(counts["subject"], counts["probe"], counts["index"])


class DataKeys:
    """The workspace's data keys, wrapped and unwrapped under its KEK.

    Nothing is cached between calls: a key destroyed by another process (an expungement on
    another node) is gone for this one at its next read.

    The KEK is held in memory from the workspace's open. Another process may rotate it
    meanwhile (`candor keys rotate --kek`, on another node of the service): before a new key
    is wrapped, and when a key does not unwrap, the recorded fingerprint is compared with
    the KEK held, and on a difference the KEK is read again from $CANDOR_KEK_FILE or the
    newly recorded path, or refused (KeyEncryptionKeyError) if that file is not the new
    KEK. So no key is ever wrapped under a retired KEK.
    """

    def __init__(self, kek: bytes, kek_path: Path) -> None:
        # One tuple, replaced whole: threads of a server share this object.
        self._held = (kek, kek_path)

    @property
    def _kek(self) -> bytes:
        return self._held[0]

    @property
    def kek_path(self) -> Path:
        """Where the KEK in use was read from."""
        return self._held[1]

    @property
    def kek_fingerprint(self) -> str:
        """The public name of the KEK in use."""
        return key_fingerprint(self._kek)

    def follow_rotation(self, session: Session, *, lock: bool = False) -> bool:
        """Read the KEK again if the workspace records another one than the one held (a
        rotation by another process); whether it changed. Refuses (KeyEncryptionKeyError)
        when the file found is not the recorded KEK. lock: hold the record against a
        rotation until the transaction ends (before wrapping a key under the KEK)."""
        record = _lock_kek_record(session, exclusive=False) if lock else recorded_kek(session)
        if record is None or record.fingerprint == self.kek_fingerprint:
            return False
        try:
            path, kek = load_kek(session, self.kek_path)
        except KeyEncryptionKeyError as error:
            raise KeyEncryptionKeyError(
                f"the workspace's key-encryption key was rotated (now fingerprint "
                f"{record.fingerprint}) and this process cannot read the new one: {error}"
            ) from None
        self._held = (kek, path)
        return True

    def subject_key(self, session: Session, subject_id: int, *, create: bool = False) -> bytes:
        """The key sealing this subject's photos, crops and templates (made if `create`)."""
        row = session.scalar(select(DataKey).where(DataKey.subject_id == subject_id))
        if row is not None:
            return self._unwrap(row, session)
        if not create:
            raise KeyEncryptionKeyError(
                f"subject {subject_id} has no data key: it was expunged, or never sealed"
            )
        return self._add(session, DataKey(kind="subject", subject_id=subject_id))

    def subject_keys(self, session: Session, subject_ids: Iterable[int]) -> dict[int, bytes]:
        """The keys of many subjects at once (for bulk reads); subjects without one are absent."""
        wanted = sorted(set(subject_ids))
        found: dict[int, bytes] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in session.scalars(select(DataKey).where(DataKey.subject_id.in_(chunk))):
                assert row.subject_id is not None
                found[row.subject_id] = self._unwrap(row, session)
        return found

    def add_subject_keys(self, session: Session, keys: Mapping[int, bytes]) -> None:
        """Store keys made beforehand (`new_data_key`) for new subjects, in one INSERT: a bulk
        load seals its pictures and templates before the subjects' rows exist."""
        if not keys:
            return
        self.follow_rotation(session, lock=True)
        now = utc_now()
        session.execute(
            insert(DataKey),
            [
                {
                    "kind": "subject",
                    "subject_id": subject_id,
                    "wrapped": wrap_key(self._kek, key),
                    "created_at": now,
                }
                for subject_id, key in keys.items()
            ],
        )

    def probe_keys(self, session: Session, sha256s: Iterable[str]) -> dict[str, bytes]:
        """The keys of many probes at once (for bulk reads); probes without one are absent."""
        wanted = sorted(set(sha256s))
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = session.scalars(
                select(DataKey).where(DataKey.kind == "probe", DataKey.owner.in_(chunk))
            )
            for row in rows:
                assert row.owner is not None
                found[row.owner] = self._unwrap(row, session)
        return found

    def probe_key(self, session: Session, sha256: str, *, create: bool = False) -> bytes:
        """The key sealing one probe photo and what is derived from it (made if `create`)."""
        return self._owned(session, "probe", sha256, create=create)

    def index_key(self, session: Session, model_key: str) -> bytes:
        """The key sealing the gallery index files of one model (made on first use)."""
        return self._owned(session, "index", model_key, create=True)

    def destroy_subject_key(self, session: Session, subject_id: int) -> None:
        """Shred a subject's data (the subject row's deletion does this too, by cascade)."""
        session.execute(delete(DataKey).where(DataKey.subject_id == subject_id))

    def destroy_probe_key(self, session: Session, sha256: str) -> None:
        """Shred a probe: every copy of its photo and template becomes unreadable."""
        session.execute(delete(DataKey).where(DataKey.kind == "probe", DataKey.owner == sha256))

    def destroy_index_key(self, session: Session, model_key: str) -> None:
        """Shred an index's files (its model retired, or its files rebuilt under a new key)."""
        session.execute(delete(DataKey).where(DataKey.kind == "index", DataKey.owner == model_key))

    def probe_owners(self, session: Session) -> list[str]:
        """The sha256 of every probe that has a key (for `candor check`)."""
        return list(
            session.scalars(
                select(DataKey.owner).where(DataKey.kind == "probe").order_by(DataKey.owner)
            )
        )

    def count(self, session: Session) -> KeyCount:
        """How many keys of each kind there are."""
        return count_data_keys(session)

    def rewrap_all(self, session: Session, new_kek: bytes, new_path: Path) -> Iterator[int]:
        """Re-wrap every data key under `new_kek` and record it as the workspace's KEK, in the
        caller's transaction; yields the running count (for a progress bar). Every key is
        unwrapped first, so a key the old KEK cannot open fails before anything changes.
        The KEK record is locked first, so no key is added meanwhile under the old KEK."""
        _lock_kek_record(session, exclusive=True)
        self.follow_rotation(session)
        rows: Sequence[DataKey] = list(session.scalars(select(DataKey).order_by(DataKey.id)))
        plain = [self._unwrap(row, session) for row in rows]
        for done, (row, key) in enumerate(zip(rows, plain, strict=True), start=1):
            row.wrapped = wrap_key(new_kek, key)
            if done % 1000 == 0:
                session.flush()
            yield done
        record_kek(session, new_path, new_kek)
        session.flush()
        # Held from now on only if the transaction commits: on a rollback the record still
        # names the old KEK and the next key read or added follows it back.
        self._held = (new_kek, new_path)

    def check_all(self, session: Session) -> list[str]:
        """Every data key that does not unwrap under the KEK, described (for `candor check`)."""
        problems: list[str] = []
        for row in session.scalars(select(DataKey).order_by(DataKey.id)):
            try:
                self._unwrap(row, session)
            except WrongKeyError as error:
                problems.append(str(error))
        return problems

    def _owned(self, session: Session, kind: KeyKind, owner: str, *, create: bool) -> bytes:
        row = session.scalar(select(DataKey).where(DataKey.kind == kind, DataKey.owner == owner))
        if row is not None:
            return self._unwrap(row, session)
        if not create:
            raise KeyEncryptionKeyError(
                f"{kind} {owner} has no data key: it was erased, or never sealed"
            )
        return self._add(session, DataKey(kind=kind, owner=owner))

    def _add(self, session: Session, row: DataKey) -> bytes:
        self.follow_rotation(session, lock=True)
        key = new_data_key()
        row.wrapped = wrap_key(self._kek, key)
        row.created_at = utc_now()
        try:
            # A savepoint: two searches of one new probe photo at once both try to add its
            # key; the second one's insert fails alone and it reads the first one's key.
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            if row.kind == "subject":
                raise
            assert row.owner is not None
            return self._owned(session, row.kind, row.owner, create=False)  # type: ignore[arg-type]
        return key

    def _unwrap(self, row: DataKey, session: Session | None = None) -> bytes:
        what = f"subject {row.subject_id}" if row.kind == "subject" else f"{row.kind} {row.owner}"
        try:
            return unwrap_key(self._kek, row.wrapped, what)
        except WrongKeyError:
            # Re-wrapped by another process's rotation since this one read its KEK?
            if session is None or not self.follow_rotation(session):
                raise
        return unwrap_key(self._kek, row.wrapped, what)
