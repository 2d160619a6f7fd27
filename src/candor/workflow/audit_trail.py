"""The audit trail: one entry per action, written in the action's own transaction.

`record` appends an entry to the hash-chained, Merkle-hashed log in the caller's
session, so the action and its entry commit together or not at all. Checkpoints (tree
size, root, time) are signed with the workspace's Ed25519 key automatically every
`checkpoint_every` entries or when the last one is older than `checkpoint_seconds`,
and on demand. An automatic checkpoint is signed after the action that made it due
commits, in a short transaction of its own: the action's transaction (a search's) only
checks the witness, in a few index lookups. Entries hold internal ids and hashes only:
never face data, nor the names or booking numbers of gallery subjects.

The log never signs a tree that does not extend the last one it signed. That one is
kept as the witness (candor.audit.witness), beside the signing key and so outside the
workspace whenever the key is: the database cannot be trusted to say what was signed,
since whoever writes it can delete checkpoint rows. Before signing, the store is checked
against the witness: the checkpoint rows up to it are all there and the one it holds is
among them, its last entry is unchanged, and the entries after it chain on from it. The
new tree is then grown from the witness's right edge, so it is consistent with the
witnessed tree by construction, at a cost of the entries since the witness, not of the
whole log. Each checkpoint row keeps its tree's compact range (revision 0012), so a
witness left behind (a crash, another node) grows from the newest stored checkpoint
instead, once that is shown to extend the witness: O(entries since it + log n). The
witness moves on only after the transaction that signed commits.

The signing key and the witness are made with the workspace (`start_audit_log`) or by
an audited rotation, never on demand: a missing key stops every action that would sign.
A workspace made before witnesses existed gets its first witness from its latest stored
checkpoint, but only when that checkpoint and the whole log verify with its key
(docs/audit-format.md, "Trust on first use").

Given a `Workflow` instead of a bare `Workspace`, `record` and `make_checkpoint` take
their time from the workflow's clock and the schedule from the workflow, so a
simulated clock dates the entries and checkpoints of a simulation consistently.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from candor.audit import (
    AuditError,
    Checkpoint,
    EntryError,
    KeyFileError,
    KeyRing,
    MerkleAccumulator,
    ProofError,
    SignatureError,
    SigningKey,
    VerificationReport,
    VerifierKey,
    Witness,
    build_entry,
    cosign,
    format_time,
    leaf_hash,
    open_with,
    parse_entry,
    shared_subtrees,
    verify_entries,
)
from candor.audit.merkle import HASH_SIZE
from candor.store import AuditCheckpoint, Workspace
from candor.store import audit_log as repository
from candor.store.errors import StoreError
from candor.store.workspace import write_file_atomic
from candor.workflow.errors import WorkflowError

if TYPE_CHECKING:
    from candor.workflow.context import Workflow

GENESIS_PREV = "0" * 64
KEY_ENV = "CANDOR_AUDIT_KEY"
ROTATION_ACTION: Final = "audit.key_rotated"
WITNESS_SUFFIX: Final = ".witness"
# A rotation writes the new key here first; it replaces the key file once the
# rotation's checkpoint has committed.
PENDING_KEY_SUFFIX: Final = ".new"
_TAIL_KEY = "candor.audit.tail"
_PENDING_KEY = "candor.audit.pending_witness"
_DUE_KEY = "candor.audit.checkpoint_due"
# In canonical JSON "action" is the first member, so a rotation entry is found without
# parsing every entry.
_ROTATION_PREFIX: Final = b'{"action":"' + ROTATION_ACTION.encode() + b'",'

_log = logging.getLogger(__name__)


class AuditSigningError(WorkflowError):
    """The log will not sign (or cannot be checked): its key or witness is missing, or the
    store disagrees with what was signed. The message says what and where."""


class SigningKeyError(AuditSigningError):
    """The signing key file is missing, unreadable, or not the key this log signs with."""


class WitnessMismatchError(AuditSigningError):
    """The witness is missing or unreadable, or the store disagrees with it."""


@dataclass(frozen=True)
class CheckpointSchedule:
    """When checkpoints are made without being asked: whichever comes first."""

    every_entries: int = 100
    every_seconds: float = 60.0

    @classmethod
    def from_environment(cls) -> CheckpointSchedule:
        """$CANDOR_CHECKPOINT_EVERY (entries) and $CANDOR_CHECKPOINT_SECONDS, else defaults."""
        default = cls()
        try:
            every = int(os.environ.get("CANDOR_CHECKPOINT_EVERY", default.every_entries))
            seconds = float(os.environ.get("CANDOR_CHECKPOINT_SECONDS", default.every_seconds))
        except ValueError as error:
            raise ValueError(f"checkpoint schedule: {error}") from error
        if every < 1 or seconds <= 0:
            raise ValueError(
                "CANDOR_CHECKPOINT_EVERY must be at least 1 and CANDOR_CHECKPOINT_SECONDS above 0"
            )
        return cls(every, seconds)


# -- where the key and the witness live ---------------------------------------------------


def _key_path_for(home: Path) -> Path:
    configured = os.environ.get(KEY_ENV)
    return Path(configured) if configured else home / "keys" / "audit-signing.key"


def signing_key_path(workspace: Workspace) -> Path:
    """The audit signing key: $CANDOR_AUDIT_KEY, else keys/audit-signing.key in the workspace.

    Keeping the key outside the workspace (another disk, another account) means whoever
    copies the workspace cannot also re-sign a rewritten history.
    """
    return _key_path_for(workspace.home)


def witness_path(workspace: Workspace) -> Path:
    """The witness: beside the signing key, named after it (`<key file>.witness`)."""
    return _witness_path_for(signing_key_path(workspace))


def _witness_path_for(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + WITNESS_SUFFIX)


def _pending_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + PENDING_KEY_SUFFIX)


def _key_source() -> str:
    """Where the key path came from, for messages about a key or witness not found."""
    if os.environ.get(KEY_ENV):
        return f"the key path is set by ${KEY_ENV}"
    return f"the workspace's default key path; ${KEY_ENV} is not set"


def log_origin(workspace: Workspace) -> str:
    """The log's name in its checkpoints: one per workspace."""
    return _origin_for(workspace.workspace_id)


def _origin_for(workspace_id: str) -> str:
    return f"candor-{workspace_id}"


def start_audit_log(home: Path, workspace_id: str) -> None:
    """Make a new workspace's signing key and its witness (which holds no checkpoint yet).

    Passed to `Workspace.create`; an existing key or witness at the path is refused, since
    a new log needs a key of its own and an old witness would belong to another log.
    """
    key_path = _key_path_for(home)
    witness = _witness_path_for(key_path)
    for path, what in ((key_path, "signing key"), (witness, "witness")):
        if path.exists() or path.is_symlink():
            raise SigningKeyError(
                f"an audit {what} already exists at {path}; a new workspace needs its own: "
                f"set {KEY_ENV} to a new file's path"
            )
    try:
        key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = SigningKey.generate(key_path, _origin_for(workspace_id))
    except (KeyFileError, OSError) as error:
        raise SigningKeyError(f"cannot make the audit signing key: {error}") from None
    try:
        _store_witness(
            witness, Witness.empty(KeyRing.single(key.verifier_key()), "made with the log")
        )
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise


# -- the signing key ----------------------------------------------------------------------


def _missing_key(path: Path, role: str) -> SigningKeyError:
    return SigningKeyError(
        f"the {role} {path} does not exist ({_key_source()}); Candor never makes a key "
        f"on demand: restore the key file (or point {KEY_ENV} at it), or, if it is lost, "
        "have an admin run `candor keys rotate`"
    )


def _load_key(path: Path, role: str = "audit signing key") -> SigningKey:
    if not path.exists() and not path.is_symlink():
        raise _missing_key(path, role)
    try:
        return SigningKey.load(path)
    except KeyFileError as error:
        raise SigningKeyError(f"the {role} cannot be used: {error}") from None


def _signer(workspace: Workspace, keys: KeyRing) -> tuple[SigningKey, Path | None]:
    """The private key of `keys.current`, and the pending key file to move into place once
    the checkpoint it signs has committed (None when it is the key file itself)."""
    path = signing_key_path(workspace)
    expected = str(keys.current)
    pending = _pending_key_path(path)
    found: SigningKey | None = None
    if path.exists() or path.is_symlink():
        found = _load_key(path)
        if found.verifier_key() == expected:
            return found, None
    if pending.exists():
        # A rotation committed but did not get to replace the key file.
        candidate = _load_key(pending, "pending audit signing key")
        if candidate.verifier_key() == expected:
            return candidate, pending
    if found is None:
        raise _missing_key(path, "audit signing key")
    raise SigningKeyError(
        f"the key in {path} ({found.name}+{found.key_id.hex()}) is not the key this log "
        f"signs with ({keys.current.name}+{keys.current.key_id.hex()}, per its witness "
        f"{_witness_path_for(path)}; {_key_source()}): point {KEY_ENV} at the right file"
    )


def load_signing_key(workspace: Workspace) -> SigningKey:
    """The key file's key, whoever's it is; SigningKeyError if it is missing or unusable."""
    return _load_key(signing_key_path(workspace))


# -- the witness --------------------------------------------------------------------------


_FOLDER_LOCKS: dict[str, threading.Lock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold the key folder against other threads and processes while the witness or the
    key file changes. Never held while waiting for the database, so it cannot deadlock
    with a transaction."""
    with _FOLDER_LOCKS_GUARD:
        lock = _FOLDER_LOCKS.setdefault(str(folder.resolve()), threading.Lock())
    with lock:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _read_witness(path: Path) -> Witness | None:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise WitnessMismatchError(f"the audit witness {path} is not UTF-8 text") from None
    except OSError as error:
        raise WitnessMismatchError(
            f"cannot read the audit witness {path}: {error.strerror or error}"
        ) from None
    try:
        return Witness.from_text(text, f"the audit witness {path}")
    except AuditError as error:
        raise WitnessMismatchError(str(error)) from None


def _progress(witness: Witness) -> tuple[int, int]:
    return witness.size, len(witness.keys.spans)


def _store_witness(path: Path, witness: Witness, *, first: bool = True) -> None:
    """Write `witness` atomically. first=True: only where none exists yet; otherwise only
    over an older one (a slower process that signed earlier must not move it back)."""
    try:
        with _folder_lock(path.parent):
            if not first:
                current = _read_witness(path)
                if current is not None and _progress(current) >= _progress(witness):
                    return
            write_file_atomic(
                path, witness.to_text().encode("utf-8"), ".witness-", replace=not first
            )
    except FileExistsError:
        return  # another process made the first witness at the same moment
    except OSError as error:
        raise WitnessMismatchError(
            f"cannot write the audit witness {path}: {error.strerror or error}"
        ) from None


def _witness_on_first_use(session: Session, workspace: Workspace, path: Path) -> Witness:
    """The first witness of a workspace made before witnesses existed: its latest stored
    checkpoint, accepted only if it and the whole log verify with the key file's key."""
    key = load_signing_key(workspace)
    if key.name != log_origin(workspace):
        raise SigningKeyError(
            f"the key in {signing_key_path(workspace)} belongs to the log {key.name}, not to "
            f"this workspace's log {log_origin(workspace)}"
        )
    keys = KeyRing.single(key.verifier_key())
    entries, notes = stored_log(session)
    started = f"trust on first use, {format_time(datetime.now(UTC))}"
    if not notes:
        if entries:
            raise WitnessMismatchError(
                f"there is no audit witness at {path}, and the log holds {len(entries)} "
                "entries but no checkpoint, so nothing shows what was signed; restore the "
                "witness, or the checkpoint rows, from a backup"
            )
        witness = Witness.empty(keys, started)
    else:
        report = verify_entries(entries, notes, keys)
        if not report.ok:
            raise WitnessMismatchError(
                f"there is no audit witness at {path} yet, and none is made from a log that "
                f"does not verify: {report.problem}"
            )
        latest = open_with(notes[-1], keys)
        leaves = [leaf_hash(body) for body in entries[: latest.size]]
        witness = Witness.signed(
            keys,
            notes[-1],
            MerkleAccumulator(leaves[:-1]),
            leaves[-1],
            len(notes),
            f"{started}, from the stored checkpoint of size {latest.size}",
        )
    _store_witness(path, witness)
    stored = _read_witness(path)
    workspace.mark_audit_witness()
    return witness if stored is None else stored


def current_witness(session: Session, workspace: Workspace) -> Witness:
    """The witness this session's next checkpoint must extend: the one it signed itself
    in its open transaction, else the witness file (made on first use for a workspace
    from before witnesses; see the module docstring)."""
    pending = _pending(session)
    if pending:
        return max((item.witness for item in pending), key=_progress)
    path = witness_path(workspace)
    witness = _read_witness(path)
    if witness is None:
        key_path = signing_key_path(workspace)
        if not key_path.exists() and not _pending_key_path(key_path).exists():
            # Both gone: most likely $CANDOR_AUDIT_KEY names the wrong place.
            raise _missing_key(key_path, "audit signing key")
        if workspace.keeps_audit_witness:
            raise WitnessMismatchError(
                f"the audit witness {path} is missing ({_key_source()}); it is the log's "
                "own record of what it last signed and is never made again from the database: "
                f"restore it from a backup, or point {KEY_ENV} at the key it lies beside"
            )
        return _witness_on_first_use(session, workspace, path)
    if witness.keys.name != log_origin(workspace):
        raise WitnessMismatchError(
            f"the audit witness {path} belongs to the log {witness.keys.name}, not to this "
            f"workspace's log {log_origin(workspace)}; {_key_source()}"
        )
    workspace.mark_audit_witness()
    return witness


# -- checking the store against the witness -----------------------------------------------


def _rotation(body: bytes, seq: int, keys: KeyRing) -> KeyRing:
    """`keys` after the rotation that entry `seq` records; refused unless it hands over
    from the key that signs at that point."""
    details = parse_entry(body)["details"]
    previous = details.get("previous_key") if isinstance(details, dict) else None
    new = details.get("key") if isinstance(details, dict) else None
    if previous != str(keys.current) or not isinstance(new, str):
        raise WitnessMismatchError(
            f"entry {seq} records a key rotation from {previous!r}, but the log's key at that "
            f"point is {keys.current}"
        )
    try:
        return keys.rotated(VerifierKey.parse(new), seq)
    except SignatureError as error:
        raise WitnessMismatchError(f"entry {seq} records a key rotation: {error}") from None


def _rotations(entries: Iterable[tuple[int, bytes]], keys: KeyRing) -> KeyRing:
    """`keys` with every rotation that the (seq, entry) pairs record, in order."""
    for seq, body in entries:
        if body.startswith(_ROTATION_PREFIX):
            keys = _rotation(body, seq, keys)
    return keys


def log_keys(workspace: Workspace) -> KeyRing:
    """The keys the log has signed with, each with the sizes it covers (public keys only):
    the witness's, and any rotation committed after it."""
    with workspace.session() as session:
        witness = current_witness(session, workspace)
        return _rotations(repository.entries_after(session, witness.size), witness.keys)


@dataclass
class _Extension:
    """The log up to its last entry, grown from the witness after checking the store."""

    keys: KeyRing
    tree: MerkleAccumulator
    before_last: MerkleAccumulator
    last_leaf: bytes
    checkpoints: int
    catch_up: Witness | None = None


def _extend(session: Session, witness: Witness, where: Path) -> _Extension:
    """Check the store against `witness` and grow the tree over the entries after it.

    The tree grows from the newest stored checkpoint's compact range when that checkpoint
    is past the witness (a witness left behind by a crash, or by another node), else from
    the witness's own edge. Either way the cost is the entries after the tree it grows
    from plus a few index lookups (the checkpoint rows up to the witness are counted, not
    read), never the whole log."""
    held = _check_witness_rows(session, witness, where)
    newest = repository.newest_checkpoint(session)
    if newest is not None and newest.tree_size > witness.size and newest.compact_range is not None:
        return _extend_from_store(session, witness, where, newest)
    # No stored range past the witness (none signed since it, or only before revision
    # 0012): grow from the witness over every entry after it, this once.
    return _extend_from_witness(session, witness, where, held)


def _check_witness_rows(session: Session, witness: Witness, where: Path) -> int:
    """Check that the checkpoint rows up to the witness are all there and that the one it
    holds is among them; return how many there are."""
    size = witness.size
    held = repository.count_checkpoints_up_to(session, size)
    if witness.checkpoint is not None:
        root = repository.checkpoint_root(session, size)
        if root is None:
            raise WitnessMismatchError(
                f"the log has no checkpoint of size {size}, which the witness {where} holds: "
                "checkpoint rows were removed; nothing more is signed"
            )
        if root != witness.checkpoint.root.hex():
            raise WitnessMismatchError(
                f"the stored checkpoint of size {size} has root {root}, but the witness {where} "
                f"signed {witness.checkpoint.root.hex()}; nothing more is signed"
            )
    if held != witness.checkpoints:
        raise WitnessMismatchError(
            f"the log holds {held} checkpoints up to size {size}, but held {witness.checkpoints} "
            f"when the witness {where} was signed: checkpoint rows were removed; nothing more "
            "is signed"
        )
    return held


def _check_last_entry(row: repository.EntryRow | None, size: int, leaf: bytes, what: str) -> None:
    """Entry `size`, the last of the signed tree `what` names, must be there and unchanged."""
    if row is None or row.seq != size:
        raise WitnessMismatchError(
            f"entry {size}, the last {what} covers, is missing: the log was cut short; "
            "nothing more is signed"
        )
    if leaf_hash(row.body) != leaf or row.leaf_hash != leaf.hex():
        raise WitnessMismatchError(
            f"entry {size} is not the entry {what} signed: the log was rewritten; nothing "
            "more is signed"
        )


def _grow(
    rows: Sequence[repository.EntryRow],
    tree: MerkleAccumulator,
    edge: tuple[MerkleAccumulator, bytes] | None,
    keys: KeyRing,
    after: str,
    at_leaf: Callable[[KeyRing, MerkleAccumulator, bytes], None] | None = None,
) -> tuple[MerkleAccumulator, bytes, KeyRing]:
    """Append `rows`, the entries after `tree`, each checked: in order, well formed, linked
    to the one before and hashing to its stored leaf hash; the rotations they record join
    `keys`. `edge` is the tree before its last leaf and that leaf (None for the empty
    tree); `after` says what the rows follow, for the errors; `at_leaf` is told the keys,
    the tree before the leaf and the leaf, after each. Returns the new edge and keys."""
    before_last, prev = edge if edge is not None else (tree, bytes.fromhex(GENESIS_PREV))
    prev_hex = prev.hex()
    for row in rows:
        expected = tree.size + 1
        problem = None
        if row.seq != expected:
            problem = f"entry {expected} is missing"
        else:
            try:
                entry = parse_entry(row.body)
            except EntryError as error:
                problem = f"entry {expected} is malformed: {error}"
            else:
                if entry["seq"] != expected or entry["prev"] != prev_hex:
                    problem = f"entry {expected} does not link to entry {expected - 1}"
        digest = leaf_hash(row.body)
        if problem is None and digest.hex() != row.leaf_hash:
            problem = f"entry {expected} does not hash to its stored leaf hash"
        if problem is not None:
            raise WitnessMismatchError(f"{problem}, after {after}; nothing more is signed")
        if row.body.startswith(_ROTATION_PREFIX):
            keys = _rotation(row.body, row.seq, keys)
        before_last = MerkleAccumulator.resume(tree.size, tree.subtrees)
        tree.append(digest)
        prev, prev_hex = digest, digest.hex()
        if at_leaf is not None:
            at_leaf(keys, before_last, digest)
    return before_last, prev, keys


def _extend_from_witness(session: Session, witness: Witness, where: Path, held: int) -> _Extension:
    """Grow the witness's tree over every entry after it, checking each stored checkpoint
    after it against the roots on the way."""
    size = witness.size
    later = repository.checkpoints_after(session, size)
    rows = repository.entries_from(session, max(size, 1))
    edge = None
    if witness.last_leaf is not None:
        _check_last_entry(
            rows[0] if rows else None, size, witness.last_leaf, f"the witness {where}"
        )
        edge = (MerkleAccumulator.resume(size - 1, witness.subtrees), witness.last_leaf)
        rows = rows[1:]
    roots: dict[int, bytes] = {}
    wanted = {row.tree_size for row in later}
    # The newest stored checkpoint after the witness, to bring the witness up to it.
    catch_size = later[-1].tree_size if later else None
    catch_edge: list[tuple[KeyRing, MerkleAccumulator, bytes]] = []
    tree = witness.tree()

    def at_leaf(keys: KeyRing, before_last: MerkleAccumulator, leaf: bytes) -> None:
        if tree.size in wanted:
            roots[tree.size] = tree.root()
        if tree.size == catch_size:
            catch_edge.append((keys, before_last, leaf))

    after = f"the witness {where} (entries 1..{size})"
    before_last, last_leaf, keys = _grow(rows, tree, edge, witness.keys, after, at_leaf)
    extension = _Extension(keys, tree, before_last, last_leaf, held + len(later))
    for stored in later:
        if stored.tree_size > tree.size:
            raise WitnessMismatchError(
                f"a stored checkpoint covers {stored.tree_size} entries but the log holds "
                f"{tree.size}: entries were removed; nothing more is signed"
            )
        try:
            signed = open_with(stored.note, keys)
        except SignatureError as error:
            raise WitnessMismatchError(
                f"the stored checkpoint of size {stored.tree_size} was rejected: {error}"
            ) from None
        if signed.root != roots[stored.tree_size] or stored.root_hash != signed.root.hex():
            raise WitnessMismatchError(
                f"the stored checkpoint of size {stored.tree_size} does not match entries "
                f"1..{stored.tree_size}; nothing more is signed"
            )
    if catch_edge:
        catch_keys, catch_before, catch_leaf = catch_edge[0]
        extension.catch_up = Witness.signed(
            catch_keys, later[-1].note, catch_before, catch_leaf, held + len(later),
            witness.started,
        )  # fmt: skip
    return extension


def _stored_edge(
    stored: repository.StoredCheckpoint, keys: KeyRing
) -> tuple[MerkleAccumulator, bytes]:
    """The newest stored checkpoint's tree, before its last leaf, and that leaf, from its
    compact range; refused unless its note opens with `keys` and the range gives its root."""
    size = stored.tree_size
    try:
        signed = open_with(stored.note, keys)
    except SignatureError as error:
        raise WitnessMismatchError(
            f"the stored checkpoint of size {size} was rejected: {error}"
        ) from None
    if signed.size != size or stored.root_hash != signed.root.hex():
        raise WitnessMismatchError(
            f"the stored checkpoint of size {size} does not match its signed note (size "
            f"{signed.size}, root {signed.root.hex()}); nothing more is signed"
        )
    packed = stored.compact_range or b""
    try:
        before_last = MerkleAccumulator.from_bytes(size - 1, packed[:-HASH_SIZE])
    except ProofError as error:
        raise WitnessMismatchError(
            f"the compact range stored with the checkpoint of size {size} is malformed "
            f"({error}); nothing more is signed"
        ) from None
    last_leaf = packed[-HASH_SIZE:]
    tree = MerkleAccumulator.resume(before_last.size, before_last.subtrees)
    tree.append(last_leaf)
    if len(last_leaf) != HASH_SIZE or tree.root() != signed.root:
        raise WitnessMismatchError(
            f"the compact range stored with the checkpoint of size {size} gives the root "
            f"{tree.root().hex()}, not the signed {signed.root.hex()}: it was altered; "
            "nothing more is signed"
        )
    return before_last, last_leaf


@dataclass(frozen=True)
class _StoredTree:
    """The newest stored checkpoint past the witness, shown to be the log's."""

    keys: KeyRing
    before_last: MerkleAccumulator
    last_leaf: bytes
    checkpoints: int
    witness: Witness


def _stored_tree(
    session: Session, witness: Witness, where: Path, newest: repository.StoredCheckpoint
) -> _StoredTree:
    """The newest stored checkpoint's tree, from its compact range, once it is shown to be
    the log's: signed with the log's keys, its range giving its signed root, the subtrees
    it shares with the witnessed tree equal to the witness's, and the witness's last entry
    unchanged. The checkpoints between the two are counted, not read (`candor audit
    verify` reads them all): a few index lookups, whatever the log's size."""
    size, base = witness.size, newest.tree_size
    if witness.last_leaf is not None:
        _check_last_entry(
            repository.entry_at(session, size), size, witness.last_leaf, f"the witness {where}"
        )
    rotations = repository.entries_of_action_between(session, ROTATION_ACTION, size, base)
    keys = _rotations(rotations, witness.keys)
    before_last, last_leaf = _stored_edge(newest, keys)
    tree = MerkleAccumulator.resume(before_last.size, before_last.subtrees)
    tree.append(last_leaf)
    shared = shared_subtrees(size, base)
    if witness.tree().subtrees[:shared] != tree.subtrees[:shared]:
        raise WitnessMismatchError(
            f"the stored checkpoint of size {base} does not extend the tree of the witness "
            f"{where} (entries 1..{size}); nothing more is signed"
        )
    checkpoints = repository.count_checkpoints_up_to(session, base)
    caught_up = Witness.signed(
        keys, newest.note, before_last, last_leaf, checkpoints, witness.started
    )
    return _StoredTree(keys, before_last, last_leaf, checkpoints, caught_up)


def _extend_from_store(
    session: Session, witness: Witness, where: Path, newest: repository.StoredCheckpoint
) -> _Extension:
    """Grow the newest stored checkpoint's tree (`_stored_tree`) over the entries after it."""
    base = newest.tree_size
    stored = _stored_tree(session, witness, where, newest)
    tree = MerkleAccumulator.resume(stored.before_last.size, stored.before_last.subtrees)
    tree.append(stored.last_leaf)
    rows = repository.entries_from(session, base)
    what = f"the stored checkpoint of size {base}"
    _check_last_entry(rows[0] if rows else None, base, stored.last_leaf, what)
    before_last, last_leaf, keys = _grow(
        rows[1:], tree, (stored.before_last, stored.last_leaf), stored.keys, what
    )
    return _Extension(keys, tree, before_last, last_leaf, stored.checkpoints, stored.witness)


def _check_before_commit(session: Session, where: Workspace | Workflow) -> None:
    """What an action whose entry makes a checkpoint due checks in its own transaction,
    the checkpoint itself being signed after it commits: that the witness is there, the
    checkpoint rows up to it and its last entry are unchanged, and (a witness left behind)
    that the newest stored checkpoint extends it, to which the witness is brought up. Index
    lookups and the witness file, whatever the log's size; a log found tampered with is
    refused here, with the action, as before."""
    if _pending(session):
        return  # this transaction signed already: it checked the witness then
    space, _ = _clock_of(where)
    key_path = signing_key_path(space)
    if not key_path.exists() and not _pending_key_path(key_path).exists():
        raise _missing_key(key_path, "audit signing key")
    path = witness_path(space)
    witness = current_witness(session, space)
    _check_witness_rows(session, witness, path)
    if witness.last_leaf is not None:
        row = repository.entry_at(session, witness.size)
        _check_last_entry(row, witness.size, witness.last_leaf, f"the witness {path}")
    newest = repository.newest_checkpoint(session)
    if newest is not None and newest.tree_size > witness.size and newest.compact_range is not None:
        _store_witness(path, _stored_tree(session, witness, path, newest).witness, first=False)


# -- after the transaction ----------------------------------------------------------------


@dataclass
class _Pending:
    """A witness this session signed, to be written once its transaction commits."""

    transaction: SessionTransaction | None
    witness: Witness
    path: Path
    key_moves: list[tuple[Path, Path]] = field(default_factory=list)


def _pending(session: Session) -> list[_Pending]:
    found = session.info.get(_PENDING_KEY)
    return found if isinstance(found, list) else []


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _after_commit(session: Session) -> None:
    # Fired for savepoints too: the witness waits for the outermost commit.
    if session.in_nested_transaction():
        return
    due = session.info.get(_DUE_KEY)
    if isinstance(due, _Due):
        due.committed = True
    pending = session.info.pop(_PENDING_KEY, None)
    if not pending:
        return
    latest = max(pending, key=lambda item: _progress(item.witness))
    try:
        _store_witness(latest.path, latest.witness, first=False)
    except WitnessMismatchError as error:
        # The checkpoint has committed; the next one catches the witness up, or refuses.
        _log.warning("%s", error)
    for item in pending:
        for source, target in item.key_moves:
            _move_key_into_place(source, target)


def _after_soft_rollback(session: Session, ended: SessionTransaction) -> None:
    pending = _pending(session)
    if pending:
        session.info[_PENDING_KEY] = [
            item for item in pending if not _within(item.transaction, ended)
        ]


def _move_key_into_place(source: Path, target: Path) -> None:
    try:
        with _folder_lock(target.parent):
            if source.exists():
                source.replace(target)
                fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    except OSError as error:
        # The pending key keeps signing until a later commit manages the move.
        _log.warning("cannot move the new audit signing key %s into place: %s", source, error)


def _listen(session: Session) -> None:
    if not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_soft_rollback)
        event.listen(session, "after_transaction_end", _after_transaction_end)


def _remember(session: Session, item: _Pending) -> None:
    _listen(session)
    session.info[_PENDING_KEY] = [*_pending(session), item]


@dataclass
class _Due:
    """A checkpoint an entry of this session's transaction made due: signed once it
    commits, in a transaction of its own (`_sign_due_checkpoint`)."""

    where: Workspace | Workflow
    schedule: CheckpointSchedule
    committed: bool = False


def _sign_after_commit(
    session: Session, where: Workspace | Workflow, schedule: CheckpointSchedule
) -> None:
    """Have the due checkpoint signed after this session's transaction commits. Checked
    before (`_check_before_commit`) only once per transaction: a transaction that appends
    many entries gets one checkpoint of them all."""
    if isinstance(session.info.get(_DUE_KEY), _Due):
        return
    _check_before_commit(session, where)
    _listen(session)
    session.info[_DUE_KEY] = _Due(where, schedule)


def _after_transaction_end(session: Session, ended: SessionTransaction) -> None:
    # Fired for savepoints too, and after the connection went back to the pool: the
    # outermost transaction's end signs what it made due, if it committed.
    if ended.parent is not None:
        return
    due = session.info.pop(_DUE_KEY, None)
    if isinstance(due, _Due) and due.committed:
        _sign_due_checkpoint(due)


def _sign_due_checkpoint(due: _Due) -> None:
    """Sign the checkpoint an action made due, in a short transaction of its own that holds
    the log's head, unless another writer signed one meanwhile. The action has committed, so
    a refusal is logged, not raised: the log then fails `candor audit verify`, and the next
    action that makes a checkpoint due is refused if the witness shows the tampering."""
    space, now = _clock_of(due.where)
    try:
        with space.session() as session, session.begin():
            repository.lock_log_head(session)
            head = repository.log_head(session)
            if head.entry is None or not _checkpoint_due(
                head.checkpoint, head.entry[0], now, due.schedule
            ):
                return
            make_checkpoint(session, due.where)
    except (AuditSigningError, StoreError, SQLAlchemyError) as error:
        # A busy or lost database too: the action stands, the next due checkpoint covers it.
        _log.error("the audit checkpoint due after a commit was not signed: %s", error)


# -- appending entries and signing ----------------------------------------------------------


@dataclass
class _Tail:
    """The log's last entry and latest checkpoint as seen inside one transaction.

    The transaction read them holding the log's head (`lock_log_head`: SQLite's write
    lock, PostgreSQL's advisory lock) until it ends, and entries are only ever appended by
    `record`, so no one else can move either; the next entries of the same transaction
    need not read them again. Another transaction,
    a savepoint, or this one after a rollback is another object and reads them afresh.
    """

    transaction: SessionTransaction
    seq: int
    leaf_hash: str
    checkpoint: tuple[int, datetime] | None


def _innermost_transaction(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def _cached_tail(session: Session) -> _Tail | None:
    tail = session.info.get(_TAIL_KEY)
    if isinstance(tail, _Tail) and tail.transaction is _innermost_transaction(session):
        return tail
    return None


def _clock_of(where: Workspace | Workflow) -> tuple[Workspace, datetime]:
    if isinstance(where, Workspace):
        return where, datetime.now(UTC)
    return where.workspace, where.now()


def record(
    session: Session,
    workspace: Workspace | Workflow,
    actor: str | None,
    action: str,
    objects: Mapping[str, int | str],
    details: Mapping[str, object],
    *,
    schedule: CheckpointSchedule | None = None,
    auto_checkpoint: bool = True,
) -> int:
    """Append one entry in `session`'s transaction and return its sequence number.

    workspace: a Workflow (its clock dates the entry, its schedule applies) or a
        Workspace (the system clock, the schedule given or the environment's).
    auto_checkpoint: False when the caller signs a checkpoint itself right after (a key
        rotation, whose checkpoint needs its own signers).
    """
    _, now = _clock_of(workspace)
    if schedule is None and not isinstance(workspace, Workspace):
        schedule = workspace.checkpoint_schedule
    tail = _cached_tail(session)
    if tail is not None:
        seq, prev_hex, checkpoint = tail.seq + 1, tail.leaf_hash, tail.checkpoint
    else:
        # The head is held until the transaction ends, so no other writer (process or
        # node) appends between this read and the commit: one order, no gap, no fork.
        repository.lock_log_head(session)
        last, checkpoint = repository.log_head(session)
        seq = 1 if last is None else last[0] + 1
        prev_hex = GENESIS_PREV if last is None else last[1]
    body = build_entry(
        seq=seq,
        time=now,
        actor=actor,
        action=action,
        objects=dict(objects),
        details=dict(details),
        prev_hex=prev_hex,
    )
    entry_hash = leaf_hash(body).hex()
    repository.append_entry(
        session, seq, body, entry_hash, now, repository.entry_columns(action, actor, objects)
    )
    transaction = _innermost_transaction(session)
    if transaction is not None:
        session.info[_TAIL_KEY] = _Tail(transaction, seq, entry_hash, checkpoint)
    schedule = schedule or CheckpointSchedule.from_environment()
    if auto_checkpoint and _checkpoint_due(checkpoint, seq, now, schedule):
        # Signed after the action commits, never inside its transaction (a search's):
        # only the witness is checked here, so a tampered log still refuses the action.
        _sign_after_commit(session, workspace, schedule)
    return seq


def _checkpoint_due(
    latest: tuple[int, datetime] | None, seq: int, now: datetime, schedule: CheckpointSchedule
) -> bool:
    if latest is None:
        return True
    size, made_at = latest
    if seq - size >= schedule.every_entries:
        return True
    return now - made_at >= timedelta(seconds=schedule.every_seconds)


def make_checkpoint(
    session: Session,
    workspace: Workspace | Workflow,
    *,
    cosigners: Sequence[SigningKey] = (),
) -> AuditCheckpoint | None:
    """Sign a checkpoint of the whole log as it stands in `session`; None if nothing new.

    Refuses (AuditSigningError, saying why) when the key is missing or not the log's, the
    witness is missing, or the store disagrees with the witness (see the module
    docstring). The witness moves on when the transaction commits.

    workspace: a Workflow (its clock dates the checkpoint) or a Workspace (the system clock).
    cosigners: keys that sign the same note too (a rotation's outgoing key).
    """
    space, now = _clock_of(workspace)
    size = repository.log_size(session)
    existing = repository.checkpoint_of_size(session, size)
    if size == 0 or existing is not None:
        _note_checkpoint(session, existing)
        return existing
    path = witness_path(space)
    from_file = not _pending(session)
    witness = current_witness(session, space)
    extension = _extend(session, witness, path)
    if extension.tree.size != size:
        raise WitnessMismatchError(
            f"the log's entries end at {size} but run unbroken only to {extension.tree.size}"
        )
    if from_file and extension.catch_up is not None:
        # Checkpoints committed after the witness was last written (a crash, or a write
        # that failed): bring it up to them before signing more.
        _store_witness(path, extension.catch_up, first=False)
    key, pending_key = _signer(space, extension.keys)
    checkpoint = Checkpoint(
        origin=extension.keys.name, size=size, root=extension.tree.root(), time=now
    )
    note = key.sign(checkpoint)
    for other in cosigners:
        note = cosign(note, other)
    # The tree's compact range, stored with it: the next checkpoint grows from here even
    # where this process's witness is not (a crash before it was written, another node).
    compact_range = extension.before_last.to_bytes() + extension.last_leaf
    row = repository.add_checkpoint(session, size, checkpoint.root.hex(), note, now, compact_range)
    signed = Witness.signed(
        extension.keys,
        note,
        extension.before_last,
        extension.last_leaf,
        extension.checkpoints + 1,
        witness.started,
    )
    moves = [] if pending_key is None else [(pending_key, signing_key_path(space))]
    _remember(session, _Pending(_innermost_transaction(session), signed, path, moves))
    _note_checkpoint(session, row)
    return row


def _note_checkpoint(session: Session, row: AuditCheckpoint | None) -> None:
    tail = _cached_tail(session)
    if tail is not None and row is not None:
        tail.checkpoint = (row.tree_size, row.created_at)


# -- the whole log, for verification, export and rotation -----------------------------------


def stored_log(session: Session) -> tuple[list[bytes], list[str]]:
    """Every entry's bytes in seq order and every checkpoint note in tree-size order."""
    return repository.entry_bodies(session), repository.checkpoint_notes(session)


@dataclass(frozen=True)
class LogState:
    """The stored log read in one transaction, checked against its witness."""

    entries: list[bytes]
    notes: list[str]
    witness: Witness
    keys: KeyRing
    report: VerificationReport


def check_stored_log(session: Session, workspace: Workspace, held: Sequence[str] = ()) -> LogState:
    """Verify the whole stored log (every entry re-hashed, the chain, every checkpoint and
    its root) against the witness and the checkpoints an auditor holds (`held`).

    The keys are those its rotation entries tell, from the witness's first key; they must
    be the witness's own. Raises AuditSigningError only when the witness or the keys
    cannot be had; every disagreement is a failed report."""
    witness = current_witness(session, workspace)
    entries, notes = stored_log(session)
    problem = None
    keys = witness.keys
    try:
        numbered = list(enumerate(entries, start=1))
        keys = _rotations(numbered[witness.size :], witness.keys)
        told = _rotations(numbered, KeyRing.single(witness.keys.spans[0].key))
    except WitnessMismatchError as error:
        problem = str(error)
    else:
        if told != keys:
            problem = (
                f"the key rotations recorded in the log do not match the keys of the witness "
                f"{witness_path(workspace)}: the log tells {told}, the witness {keys}"
            )
    report = verify_entries(entries, notes, keys, held, witness=witness)
    if problem is None and report.ok:
        problem = _compact_range_problem(session, keys)
    if problem is not None and report.ok:
        report = _failed(report, problem)
    return LogState(entries, notes, witness, keys, report)


def _compact_range_problem(session: Session, keys: KeyRing) -> str | None:
    """Why a stored compact range is not its checkpoint's (it does not give the signed
    root), or None: the next checkpoint may grow from any of them. O(log n) each."""
    for stored in repository.stored_compact_ranges(session):
        try:
            _stored_edge(stored, keys)
        except WitnessMismatchError as error:
            return str(error)
    return None


def _failed(report: VerificationReport, problem: str) -> VerificationReport:
    return replace(report, ok=False, problem=problem, witness_size=None)


@contextmanager
def prepared_rotation(workspace: Workspace) -> Iterator[tuple[SigningKey | None, SigningKey]]:
    """The outgoing key (None when its file is lost) and a new key, written beside the key
    file as `<key file>.new`. Inside, the caller records the rotation and signs its
    checkpoint (the log's keys then say the new key signs); when that commits, the new
    key replaces the key file. If it does not commit, the new key is removed."""
    path = signing_key_path(workspace)
    pending = _pending_key_path(path)
    old = _load_key(path) if path.exists() or path.is_symlink() else None
    if not path.parent.is_dir():
        raise SigningKeyError(
            f"the folder of the audit signing key, {path.parent}, does not exist ({_key_source()})"
        )
    with _folder_lock(path.parent):
        if pending.exists() or pending.is_symlink():
            raise AuditSigningError(
                f"{pending} exists: a key rotation is under way, or one was cut short before "
                "it committed. If `candor keys show` does not list that key among the log's "
                "keys, nothing was signed with it: remove the file and rotate again"
            )
        try:
            new = SigningKey.generate(pending, log_origin(workspace))
        except KeyFileError as error:
            raise SigningKeyError(f"cannot make the new signing key: {error}") from None
    try:
        yield old, new
    except BaseException:
        if pending.exists() and not _signed_by(workspace, new):
            pending.unlink(missing_ok=True)
        raise


def _signed_by(workspace: Workspace, key: SigningKey) -> bool:
    """Whether the latest stored checkpoint carries `key`'s signature (a rotation committed)."""
    with workspace.session() as session:
        note = repository.latest_checkpoint_note(session)
    if note is None:
        return False
    try:
        open_with(note, key.verifier_key())
    except SignatureError:
        return False
    return True


def describe_witness(workspace: Workspace) -> dict[str, object] | None:
    """What the witness file says (no secrets), or None when there is none."""
    witness = _read_witness(witness_path(workspace))
    if witness is None:
        return None
    return {
        "tree_size": witness.size,
        "root_hash": None if witness.checkpoint is None else witness.checkpoint.root.hex(),
        "checkpoints": witness.checkpoints,
        "started": witness.started,
        "keys": [str(span) for span in witness.keys.spans],
    }


__all__ = [
    "KEY_ENV",
    "ROTATION_ACTION",
    "AuditSigningError",
    "CheckpointSchedule",
    "LogState",
    "SigningKeyError",
    "WitnessMismatchError",
    "check_stored_log",
    "current_witness",
    "describe_witness",
    "load_signing_key",
    "log_keys",
    "log_origin",
    "make_checkpoint",
    "prepared_rotation",
    "record",
    "signing_key_path",
    "start_audit_log",
    "stored_log",
    "witness_path",
]
