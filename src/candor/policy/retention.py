"""Retention cut-offs: from a policy and the current time, what is due for deletion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from candor.policy.model import Policy


@dataclass(frozen=True)
class RetentionCutoffs:
    """Data older than these is due for deletion.

    probes_before / search_records_before: stored strictly before this instant.
    gallery_collected_before: gallery photos collected strictly before this date (in the
    time zone of `now`); None when the policy sets no gallery maximum.
    """

    probes_before: datetime
    search_records_before: datetime
    gallery_collected_before: date | None

    def probe_due(self, stored_at: datetime) -> bool:
        return _aware(stored_at, "stored_at") < self.probes_before

    def search_record_due(self, created_at: datetime) -> bool:
        return _aware(created_at, "created_at") < self.search_records_before

    def gallery_due(self, collected_on: date) -> bool:
        return self.gallery_collected_before is not None and (
            collected_on < self.gallery_collected_before
        )


def _aware(moment: datetime, name: str) -> datetime:
    # A naive time would be compared as if it were in some unknown zone; refuse it.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone-aware datetime")
    return moment


def retention_due(policy: Policy, now: datetime) -> RetentionCutoffs:
    """The cut-offs at `now` (time-zone aware; pass it in the workspace's time zone so the
    gallery's cut-off date is that zone's date)."""
    _aware(now, "now")
    retention = policy.retention
    gallery_days = retention.gallery_max_days
    return RetentionCutoffs(
        probes_before=now - timedelta(days=retention.probe_days),
        search_records_before=now - timedelta(days=retention.search_record_days),
        gallery_collected_before=(
            None if gallery_days is None else now.date() - timedelta(days=gallery_days)
        ),
    )


def gallery_retain_until_limit(policy: Policy, collected_on: date) -> date | None:
    """The latest retain_until the policy allows for a photo collected on that date (the
    last day it may be kept), or None when the policy sets no gallery maximum."""
    days = policy.retention.gallery_max_days
    return None if days is None else collected_on + timedelta(days=days)
