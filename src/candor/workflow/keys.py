"""Rotating the workspace's key-encryption key (KEK): `candor keys rotate --kek NEW_FILE`.

Every data key (a subject's, a probe's, an index's) is re-wrapped under the new KEK and the
new KEK's path and fingerprint recorded, in one transaction with the audit entry: a crash
before the commit leaves every key wrapped under the old KEK, which still opens the
workspace; after it, the new one does. The subjects' and probes' keys themselves do not
change, so no photo, crop or template file is rewritten.

Each gallery index gets a new data key (the old one destroyed) and the index this process
holds is resealed under it (`Workflow.reseal_index`); other index folders are rebuilt from
the store at their next open.

The old KEK file is left where it was: a backup made before the rotation holds the data
keys wrapped under it, including those of subjects expunged since. Destroying the old file
once those backups have expired (or been re-keyed) is what makes them unreadable.

Like the signing key's rotation it takes `policy.manage`, the admin's own permission.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from candor.sealing import (
    KeyFileError,
    WrongKeyError,
    create_key_file,
    key_fingerprint,
    read_key_file,
)
from candor.store.data_keys import KeyEncryptionKeyError, kek_record
from candor.workflow.accounts import Actor
from candor.workflow.actions import act
from candor.workflow.audit_ops import ROTATE_PERMISSION
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.permissions import require_permission

__all__ = [
    "KEK_ROTATION_ACTION",
    "KekRotation",
    "KekRotationError",
    "KeyEncryptionKeyError",
    "rotate_kek",
]

KEK_ROTATION_ACTION: Final = "keys.kek_rotated"
# Called with (keys re-wrapped so far, keys in all): for a progress bar.
Progress = Callable[[int, int], None]


class KekRotationError(WorkflowError):
    """The new KEK file cannot be used: it is the current KEK, or not a usable key file."""


@dataclass(frozen=True)
class KekRotation:
    """A KEK rotation: the fingerprints before and after, and where each file is."""

    previous_fingerprint: str
    previous_path: str
    fingerprint: str
    path: str
    made_file: bool
    data_keys: int


def rotate_kek(
    workflow: Workflow, actor: Actor, new_file: Path, progress: Progress | None = None
) -> KekRotation:
    """Re-wrap every data key under the KEK in `new_file` (read if it exists, made 0600 if
    not) and record it as the workspace's KEK; audited as `keys.kek_rotated` with both
    fingerprints. Refuses the current KEK (by path or by key) and an unusable file."""
    # Checked before a key file is made: a refused actor leaves nothing behind.
    require_permission(workflow, actor, ROTATE_PERMISSION)
    keys = workflow.workspace.keys
    target = Path(new_file).expanduser().absolute()
    if _same_file(target, keys.kek_path):
        raise KekRotationError(
            f"{target} is the workspace's current key-encryption key; name a new file "
            "(it is made if missing)"
        )
    made = not (target.exists() or target.is_symlink())
    try:
        new_kek = create_key_file(target) if made else read_key_file(target, "new KEK file")
    except KeyFileError as error:
        raise KekRotationError(str(error)) from None
    with act(workflow, actor, ROTATE_PERMISSION) as action:
        session = action.session
        keys.follow_rotation(session)
        record = kek_record(session)
        if record is None:
            raise KeyEncryptionKeyError(
                "the workspace has no key-encryption key yet: run `candor upgrade`"
            )
        fingerprint = key_fingerprint(new_kek)
        if fingerprint == record.fingerprint:
            raise KekRotationError(
                f"{target} holds the workspace's current key-encryption key (fingerprint "
                f"{fingerprint}); a rotation needs a new key: name a file that does not exist"
            )
        total = keys.count(session).total
        done = 0
        try:
            for done in keys.rewrap_all(session, new_kek, target):
                if progress is not None:
                    progress(done, total)
        except WrongKeyError as error:
            raise KekRotationError(f"nothing was re-wrapped: {error}") from None
        # The index keys are replaced, not only re-wrapped: the index files hold every
        # subject's template under one key, so an old backup of them must not open with
        # the new KEK either (an expunged subject's template would).
        workflow.reseal_index(session)
        action.record(
            KEK_ROTATION_ACTION,
            {},
            {
                "previous_fingerprint": record.fingerprint,
                "fingerprint": fingerprint,
                "data_keys": done,
            },
        )
    return KekRotation(
        previous_fingerprint=record.fingerprint,
        previous_path=str(record.path),
        fingerprint=fingerprint,
        path=str(target),
        made_file=made,
        data_keys=done,
    )


def _same_file(one: Path, other: Path) -> bool:
    if one == other:
        return True
    try:
        return one.samefile(other)
    except OSError:
        return False
