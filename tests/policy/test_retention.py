"""Retention cut-offs from each example policy at a fixed time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from candor.policy import gallery_retain_until_limit, retention_due
from tests.policy.support import example

NOW = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "probes", "records", "gallery"),
    [
        (
            "moratorium",
            datetime(2026, 8, 29, 8, 30, tzinfo=UTC),
            datetime(2019, 11, 29, 8, 30, tzinfo=UTC),
            None,
        ),
        (
            "two-reviewers",
            datetime(2026, 8, 29, 8, 30, tzinfo=UTC),
            datetime(2019, 11, 29, 8, 30, tzinfo=UTC),
            date(2016, 11, 29),
        ),
    ],
)
def test_cutoffs(name: str, probes: datetime, records: datetime, gallery: date | None) -> None:
    cutoffs = retention_due(example(name), NOW)
    assert cutoffs.probes_before == probes
    assert cutoffs.search_records_before == records
    assert cutoffs.gallery_collected_before == gallery


def test_due_is_strictly_before_the_cutoff() -> None:
    cutoffs = retention_due(example("moratorium"), NOW)
    edge = NOW - timedelta(days=90)
    assert cutoffs.probe_due(edge - timedelta(microseconds=1))
    assert not cutoffs.probe_due(edge)
    assert cutoffs.search_record_due(NOW - timedelta(days=2556))
    assert not cutoffs.search_record_due(NOW - timedelta(days=2554))


def test_due_compares_instants_across_time_zones() -> None:
    cutoffs = retention_due(example("moratorium"), NOW)
    berlin_winter = timezone(timedelta(hours=1))
    same_instant = (NOW - timedelta(days=90)).astimezone(berlin_winter)
    assert not cutoffs.probe_due(same_instant)
    assert cutoffs.probe_due(same_instant - timedelta(seconds=1))


def test_gallery_due_only_with_a_maximum() -> None:
    assert not retention_due(example("moratorium"), NOW).gallery_due(date(1990, 1, 1))
    cutoffs = retention_due(example("two-reviewers"), NOW)
    assert cutoffs.gallery_due(date(2016, 11, 28))
    assert not cutoffs.gallery_due(date(2016, 11, 29))


def test_gallery_date_is_the_date_in_nows_zone() -> None:
    late_in_los_angeles = datetime(2026, 11, 27, 2, 0, tzinfo=timezone(timedelta(hours=-8)))
    cutoffs = retention_due(example("two-reviewers"), late_in_los_angeles)
    assert cutoffs.gallery_collected_before == date(2016, 11, 29)


def test_gallery_retain_until_limit_agrees_with_gallery_due() -> None:
    policy = example("two-reviewers")
    collected = date(2020, 2, 29)
    limit = gallery_retain_until_limit(policy, collected)
    assert limit == date(2030, 2, 26)
    assert limit is not None
    on_last_day = datetime.combine(limit, datetime.min.time(), tzinfo=UTC)
    assert not retention_due(policy, on_last_day).gallery_due(collected)
    assert retention_due(policy, on_last_day + timedelta(days=1)).gallery_due(collected)
    assert gallery_retain_until_limit(example("moratorium"), collected) is None


@pytest.mark.parametrize("call", ["retention_due", "probe_due", "search_record_due"])
def test_naive_times_are_refused(call: str) -> None:
    naive = datetime(2026, 11, 27, 8, 30)
    policy = example("moratorium")
    with pytest.raises(ValueError, match="time-zone-aware"):
        if call == "retention_due":
            retention_due(policy, naive)
        elif call == "probe_due":
            retention_due(policy, NOW).probe_due(naive)
        else:
            retention_due(policy, NOW).search_record_due(naive)
