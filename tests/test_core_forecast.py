"""Month-end projections against the 20GB cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.forecast import Forecast, forecast
from monitor.emulator.life import LONDON
from monitor.model import MonthUsage

CAP = 20 * 10**9
OCT_START = datetime(2024, 9, 30, 23, tzinfo=UTC)  # 1 October 00:00 BST
OCT_END = datetime(2024, 11, 1, tzinfo=UTC)  # 1 November 00:00 GMT


def usage(total: int, at: datetime, *, partial: bool = False, key: str = "2024-10") -> MonthUsage:
    """October's usage, all of it received, counted up to `at`."""
    return MonthUsage("r1", "8944", key, total, 0, partial, at)


def test_recent_rate_projects_to_month_end_and_finds_the_cap() -> None:
    at = OCT_START + timedelta(days=10)
    result = forecast(usage(5 * 10**9, at), CAP, at, LONDON, 10_000.0)
    remaining = (OCT_END - at).total_seconds()
    assert result.projected_total == 5 * 10**9 + int(10_000 * remaining)
    assert result.cap_reached_at == at + timedelta(seconds=15 * 10**9 / 10_000)
    assert result.confidence == "medium"
    assert result.basis.startswith("recent rate")


def test_month_average_when_no_recent_rate_and_cap_not_reached_this_month() -> None:
    at = OCT_START + timedelta(days=10)
    result = forecast(usage(864 * 10**6, at), CAP, at, LONDON, None)
    assert result.basis == "this month's average rate"
    assert result.projected_total == 864 * 10**6 + int(1000 * (OCT_END - at).total_seconds())
    assert result.cap_reached_at is None


def test_cap_already_reached_reports_when_it_was_counted() -> None:
    at = OCT_START + timedelta(days=20)
    result = forecast(usage(CAP + 1, at), CAP, at, LONDON, 0.0)
    assert result.cap_reached_at == at
    assert result.confidence == "low"  # a zero rate says nothing about the rest of the month


def test_partial_month_says_so_and_is_low_confidence() -> None:
    at = OCT_START + timedelta(days=20)
    result = forecast(usage(10**9, at, partial=True), CAP, at, LONDON, None)
    assert result == Forecast(
        10**9,
        None,
        "low",
        "no rate known yet: the projection is the count so far"
        " (partial month: counting began mid-month, so this is a lower bound)",
    )


def test_early_in_the_month_is_low_confidence() -> None:
    at = OCT_START + timedelta(hours=12)
    assert forecast(usage(10**8, at), CAP, at, LONDON, 2000.0).confidence == "low"


def test_near_the_month_end_is_high_confidence() -> None:
    at = OCT_END - timedelta(days=3)
    assert forecast(usage(10**10, at), CAP, at, LONDON, 2000.0).confidence == "high"


def test_stale_counts_are_low_confidence() -> None:
    at = OCT_START + timedelta(days=10)
    result = forecast(usage(10**9, at), CAP, at + timedelta(days=2), LONDON, 2000.0)
    assert result.confidence == "low"
    assert "not been counted for over a day" in result.basis


@pytest.mark.parametrize("partial", [False, True])
def test_an_ended_month_is_final(partial: bool) -> None:
    at = OCT_END - timedelta(minutes=1)
    result = forecast(usage(10**9, at, partial=partial), CAP, OCT_END, LONDON, 10**6)
    assert (result.projected_total, result.cap_reached_at) == (10**9, None)
    assert result.confidence == ("low" if partial else "high")
    assert result.basis.startswith("month ended")


def test_a_trickle_puts_the_cap_beyond_the_month_without_overflowing() -> None:
    # Regression: a new router with a near-zero smoothed rate made the cap date overflow
    # datetime (found by the daemon on its first polls).
    at = OCT_START + timedelta(hours=1)
    result = forecast(usage(100, at, partial=True), CAP, at, LONDON, 1e-9)
    assert result.cap_reached_at is None
    assert result.projected_total == 100
