"""ORM model of report cards: what `candor evaluate` keeps of an evaluation. Revision
0003_report_cards.

- report_cards: id, created_at, created_by (the user who ran it; nullable), dataset (the
  folder's path as given), dataset_sha256 (sha256 over the photos' sorted relative paths,
  each with its file's sha256), settings (JSON: engine, protocol and bootstrap settings),
  model_key, result (JSON: exactly the object `candor evaluate --json` prints), and
  dataset_limits (what the dataset is not: who is in it, how its photos were taken,
  known label errors).

Only the figures are kept: no photo, template, score list or person's name beyond what
the result holds (counts, figures, intervals, and per-group figures under the group
names the evaluator supplied). Transparency reports show the latest report card.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from candor.store.models import NEVER_REUSED_IDS, Base, UTCDateTime, _hex64, _non_blank


class ReportCard(Base):
    """One evaluation's figures on one labelled folder, with the settings that gave them."""

    __tablename__ = "report_cards"
    __table_args__ = (
        CheckConstraint(_non_blank("dataset"), name="dataset_not_blank"),
        CheckConstraint(_hex64("dataset_sha256"), name="dataset_sha256_hex"),
        CheckConstraint(_non_blank("model_key"), name="model_key_not_blank"),
        CheckConstraint(_non_blank("dataset_limits"), name="dataset_limits_not_blank"),
        Index("ix_report_cards_created_at", "created_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    dataset: Mapped[str] = mapped_column(Text)
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_key: Mapped[str] = mapped_column(String(200))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_limits: Mapped[str] = mapped_column(Text)


def latest_report_card(session: Session) -> ReportCard | None:
    """The report card recorded last (by id: insertion order, whatever clock dated it)."""
    return session.scalars(select(ReportCard).order_by(ReportCard.id.desc()).limit(1)).first()


def add_report_card(session: Session, card: ReportCard) -> ReportCard:
    """Store a new report card; its id is set on return."""
    session.add(card)
    session.flush()
    return card
