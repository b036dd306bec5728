"""Calendar months in Europe/London: keys, boundaries across BST, the cap reset, splits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core import calendar
from monitor.emulator.life import LONDON


@pytest.mark.parametrize(
    ("at", "key"),
    [
        (datetime(2024, 9, 30, 22, 59, 59, tzinfo=UTC), "2024-09"),
        (datetime(2024, 9, 30, 23, 0, tzinfo=UTC), "2024-10"),  # midnight BST
        (datetime(2024, 10, 31, 23, 59, 59, tzinfo=UTC), "2024-10"),  # 23:59:59 GMT
        (datetime(2024, 11, 1, 0, 0, tzinfo=UTC), "2024-11"),
        (datetime(2024, 12, 31, 23, 59, tzinfo=UTC), "2024-12"),
    ],
)
def test_month_key_is_local_to_london(at: datetime, key: str) -> None:
    assert calendar.month_key(at, LONDON) == key


def test_month_boundaries_follow_local_midnight_across_bst() -> None:
    assert calendar.month_start("2024-10", LONDON) == datetime(2024, 9, 30, 23, tzinfo=UTC)
    assert calendar.month_end("2024-10", LONDON) == datetime(2024, 11, 1, tzinfo=UTC)
    # October has an extra hour when BST ends; March one hour fewer when it begins.
    october = calendar.month_end("2024-10", LONDON) - calendar.month_start("2024-10", LONDON)
    march = calendar.month_end("2025-03", LONDON) - calendar.month_start("2025-03", LONDON)
    assert (october, march) == (timedelta(days=31, hours=1), timedelta(days=31, hours=-1))
    assert calendar.month_end("2024-12", LONDON) == datetime(2025, 1, 1, tzinfo=UTC)


def test_cap_resets_at_london_midnight_on_the_first_of_next_month() -> None:
    reset = calendar.cap_reset(datetime(2025, 3, 15, 12, tzinfo=UTC), LONDON)
    assert reset == datetime(2025, 3, 31, 23, tzinfo=UTC)  # 00:00 BST on 1 April
    assert reset.astimezone(LONDON).replace(tzinfo=None) == datetime(2025, 4, 1)


@pytest.mark.parametrize("key", ["2024-13", "2024-1", "24-01", "2024-00", "abcd-ef"])
def test_parse_key_rejects_malformed_keys(key: str) -> None:
    with pytest.raises(ValueError, match="not a month key"):
        calendar.parse_key(key)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-10-1", True),
        ("2024-10-01 00:00:00", True),
        (" 2024-10-01", True),
        ("2024-10-2", False),
        ("2024-9-1", False),
        ("", False),
        ("cleared", False),
        (None, False),
    ],
)
def test_is_first_of_month_reads_device_stamps(stamp: str | None, expected: bool) -> None:
    assert calendar.is_first_of_month(stamp, "2024-10") is expected


def test_split_is_proportional_and_exact() -> None:
    start = datetime(2024, 10, 31, 23, tzinfo=UTC)
    end = datetime(2024, 11, 1, 2, tzinfo=UTC)
    assert calendar.split(start, end, 10, LONDON) == [("2024-10", 3), ("2024-11", 7)]


def test_split_of_an_empty_interval_lands_in_the_month_of_its_end() -> None:
    at = datetime(2024, 11, 1, tzinfo=UTC)
    assert calendar.split(at, at, 5, LONDON) == [("2024-11", 5)]


def test_split_ending_on_a_boundary_stays_in_the_month_before() -> None:
    start = datetime(2024, 10, 31, 23, tzinfo=UTC)
    end = datetime(2024, 11, 1, tzinfo=UTC)  # 00:00 GMT on 1 November
    assert calendar.split(start, end, 7, LONDON) == [("2024-10", 7)]


def test_split_across_several_months() -> None:
    start = datetime(2024, 9, 30, 23, tzinfo=UTC)  # 1 October, 00:00 BST
    end = datetime(2024, 12, 31, 23, 59, tzinfo=UTC)
    parts = calendar.split(start, end, 10**9, LONDON)
    assert [key for key, _ in parts] == ["2024-10", "2024-11", "2024-12"]
    assert sum(part for _, part in parts) == 10**9


instants = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(start=instants, length=st.integers(0, 100 * 86400 * 10**6), total=st.integers(0, 10**13))
def test_split_parts_add_up_and_never_go_negative(start: datetime, length: int, total: int) -> None:
    end = start + timedelta(microseconds=length)
    parts = calendar.split(start, end, total, LONDON)
    assert sum(part for _, part in parts) == total
    assert all(part >= 0 for _, part in parts)
    assert parts[0][0] == calendar.month_key(start, LONDON) or length == 0
    last = end - timedelta(microseconds=1) if length else end  # [start, end): end is excluded
    assert parts[-1][0] == calendar.month_key(last, LONDON)
    keys = [key for key, _ in parts]
    assert keys == sorted(set(keys))
