"""Calibrations: the impostor score tails thresholds are derived from (model `Calibration`
in candor.store.governance).

One calibration per model and score is active; recording a new one deactivates the
others of that model and score in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from candor.store.governance import Calibration

_COLUMNS = Calibration.__table__.c
# Table columns on the session's connection: every governed search reads this, and an
# ORM object per read cost more than the query.
_ACTIVE = select(
    _COLUMNS.model_key,
    _COLUMNS.dataset,
    _COLUMNS.dataset_sha256,
    _COLUMNS.templates,
    _COLUMNS.impostor_pairs,
    _COLUMNS.points,
    _COLUMNS.score,
)


@dataclass(frozen=True)
class StoredCalibration:
    """The columns of a calibration that a threshold is derived from."""

    model_key: str
    dataset: str
    dataset_sha256: str
    templates: int
    impostor_pairs: int
    points: list[list[float]]
    score: str


def active_calibration_row(
    session: Session, model_key: str, score: str
) -> StoredCalibration | None:
    """The newest active calibration of `score` for `model_key`, or None."""
    row = (
        session.connection()
        .execute(
            _ACTIVE.where(
                _COLUMNS.model_key == model_key,
                _COLUMNS.score == score,
                _COLUMNS.active.is_(True),
            )
            .order_by(_COLUMNS.id.desc())
            .limit(1)
        )
        .first()
    )
    return None if row is None else StoredCalibration(*row)


def add_active_calibration(
    session: Session,
    *,
    model_key: str,
    score: str,
    dataset: str,
    dataset_sha256: str,
    impostor_pairs: int,
    templates: int,
    points: list[list[float]],
    created_at: datetime,
    created_by: int | None,
) -> Calibration:
    """Add a calibration as the active one of its model and score (the others of that
    model and score are deactivated); flushed, so it has its id."""
    session.execute(
        update(Calibration)
        .where(Calibration.model_key == model_key, Calibration.score == score)
        .values(active=False)
    )
    row = Calibration(
        model_key=model_key,
        score=score,
        dataset=dataset,
        dataset_sha256=dataset_sha256,
        impostor_pairs=impostor_pairs,
        templates=templates,
        points=points,
        created_at=created_at,
        created_by=created_by,
        active=True,
    )
    session.add(row)
    session.flush()
    return row
