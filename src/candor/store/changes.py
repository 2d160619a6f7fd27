"""The gallery's change log: which templates were added and removed, in commit order.

Every process (and, later, every node) holds its own copy of the gallery index; this log
is how each copy learns what others committed. Each row says that one template of one
model was added or removed. Rows are written by database triggers on `face_templates`
(migration 0007), so every path that adds, replaces or deletes a template (enrolment,
re-enrolment, expungement, retention, a cascade from a deleted image or subject) logs it
in its own transaction, and none can forget to. The log holds ids and model keys only,
nothing biometric.

A reader remembers the last `seq` it applied; `latest_change` (one indexed lookup) says
whether it moved, and `changes_after` lists what to apply. On SQLite writers hold the
database's one write lock, so `seq` order is commit order and a reader never sees seq
n+1 committed before n.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
from sqlalchemy import CheckConstraint, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.store.data_keys import DataKeys
from candor.store.gallery import open_templates
from candor.store.models import Base, FaceTemplate, GalleryImage
from candor.store.vault import BiometricVault

ADDED: Final = "added"
REMOVED: Final = "removed"
CHANGE_KINDS: Final = (ADDED, REMOVED)
# Ids per IN (...) list: far below SQLite's limit of bound parameters.
_ID_BATCH: Final = 10_000


class GalleryChange(Base):
    """One template added to or removed from the gallery (written by triggers only)."""

    __tablename__ = "gallery_changes"
    __table_args__ = (
        CheckConstraint("kind IN ('added', 'removed')", name="kind_known"),
        # Never reuse a seq: a reader that applied n must never miss a later row numbered n.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(Integer)
    model_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))


def latest_change(session: Session) -> int:
    """The seq of the newest change in the session's snapshot, 0 when there is none."""
    # max() of the integer primary key is one B-tree descent, whatever the log's length.
    latest = session.connection().execute(select(func.max(GalleryChange.seq))).scalar()
    return int(latest or 0)


def earliest_change(session: Session) -> int:
    """The seq of the oldest change still logged, 0 when there is none."""
    earliest = session.connection().execute(select(func.min(GalleryChange.seq))).scalar()
    return int(earliest or 0)


def changes_after(
    session: Session, seq: int, model_key: str, *, up_to: int
) -> list[tuple[int, str]]:
    """(template_id, kind) of one model's changes with seq in (seq, up_to], oldest first."""
    columns = GalleryChange.__table__.c
    rows = session.connection().execute(
        select(columns.template_id, columns.kind)
        .where(columns.seq > seq, columns.seq <= up_to, columns.model_key == model_key)
        .order_by(columns.seq)
    )
    return [(int(template_id), str(kind)) for template_id, kind in rows]


def stored_template_ids(session: Session, model_key: str) -> set[int]:
    """The ids of every stored template of one model, in the session's snapshot."""
    column = FaceTemplate.__table__.c
    rows = session.connection().execute(select(column.id).where(column.model_key == model_key))
    return {int(template_id) for (template_id,) in rows}


def template_vectors(
    session: Session,
    template_ids: Iterable[int],
    model_key: str,
    vault: BiometricVault,
    keys: DataKeys,
) -> dict[int, np.ndarray]:
    """The stored vectors of these templates of one model, opened under their subjects' keys
    (read a batch at a time); ids not in the store are absent."""
    wanted = sorted(set(template_ids))
    columns = FaceTemplate.__table__.c
    images = GalleryImage.__table__
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(wanted), _ID_BATCH):
        query = (
            select(
                columns.id,
                columns.subject_id,
                columns.image_id,
                columns.dimension,
                columns.vector,
                images.c.sha256,
            )
            .join(images, images.c.id == columns.image_id)
            .where(
                columns.id.in_(wanted[start : start + _ID_BATCH]), columns.model_key == model_key
            )
        )
        rows = session.connection().execute(query).all()
        for template_id, _, _, vector in open_templates(session, rows, model_key, vault, keys):
            found[int(template_id)] = vector
    return found
