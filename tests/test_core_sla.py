"""Working days in England and Wales and the 3-working-day response aim."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.sla import (
    add_working_days,
    bank_holidays,
    due_at,
    is_overdue,
    is_working_day,
    next_working_day,
    working_days_between,
)

LONDON = ZoneInfo("Europe/London")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        # Easter 2026: Good Friday 3 April and Easter Monday 6 April are bank holidays.
        (local(2026, 4, 2, 10, 0), local(2026, 4, 9, 10, 0)),
        (local(2026, 4, 3, 9, 0), local(2026, 4, 10, 0, 0)),  # opened on Good Friday
        (local(2026, 4, 4, 23, 59), local(2026, 4, 10, 0, 0)),  # Easter Saturday
        # Christmas 2026: Friday 25, Saturday 26 (Boxing Day, substituted on Monday 28).
        (local(2026, 12, 24, 15, 0), local(2026, 12, 31, 15, 0)),
        (local(2026, 12, 30, 12, 0), local(2027, 1, 5, 12, 0)),  # over New Year's Day
        (local(2026, 12, 28, 9, 0), local(2027, 1, 4, 0, 0)),  # the substitute day
        # An ordinary week, and a weekend.
        (local(2026, 11, 23, 10, 0), local(2026, 11, 26, 10, 0)),
        (local(2026, 11, 27, 16, 30), local(2026, 12, 2, 16, 30)),  # Friday -> Wednesday
        (local(2026, 11, 28, 11, 0), local(2026, 12, 3, 0, 0)),  # Saturday: Mon-Wed in full
    ],
)
def test_due_three_working_days_later(opened: datetime, due: datetime) -> None:
    assert due_at(opened) == due.astimezone(UTC)
    assert due_at(opened.astimezone(UTC)) == due  # the zone of the input does not matter


def test_due_across_the_clocks_going_forward_keeps_the_wall_time() -> None:
    # BST starts on Sunday 29 March 2026: Friday 10:00 GMT is due Wednesday 10:00 BST.
    assert due_at(local(2026, 3, 27, 10, 0)) == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        (local(2026, 4, 9, 9, 59), False),
        (local(2026, 4, 9, 10, 0), True),
        (local(2026, 4, 20, 0, 0), True),
    ],
)
def test_is_overdue(now: datetime, overdue: bool) -> None:
    assert is_overdue(local(2026, 4, 2, 10, 0), now) is overdue


def test_other_response_times() -> None:
    opened = local(2026, 4, 2, 10, 0)
    assert due_at(opened, working_days=0) == opened
    assert due_at(opened, working_days=1) == local(2026, 4, 7, 10, 0)
    assert is_overdue(opened, local(2026, 4, 7, 10, 0), working_days=1)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), False),  # Easter Monday
        (date(2026, 5, 4), False),  # Early May bank holiday
        (date(2026, 8, 31), False),  # Summer bank holiday (not Scotland's)
        (date(2026, 12, 28), False),  # Boxing Day substitute
        (date(2026, 11, 28), False),  # a Saturday
        (date(2026, 11, 30), True),  # St Andrew's Day is Scotland's, not England's
        (date(2027, 1, 4), True),  # 2 January is Scotland's, not England's
    ],
)
def test_working_days_in_england(day: date, working: bool) -> None:
    assert is_working_day(day) is working
    assert is_working_day(day, "WLS") is working


def test_england_and_wales_share_their_bank_holidays() -> None:
    assert bank_holidays(2026, "ENG") == bank_holidays(2026, "WLS")
    assert date(2026, 12, 25) in bank_holidays(2026)


def test_other_regions_and_bad_input_are_refused() -> None:
    with pytest.raises(ValueError, match="region"):
        bank_holidays(2026, "SCT")
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2026, 4, 2, 10, 0))
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2026, 4, 2), -1)


def test_working_days_between() -> None:
    assert working_days_between(date(2026, 4, 2), date(2026, 4, 9)) == 3
    assert working_days_between(date(2026, 12, 24), date(2027, 1, 4)) == 4
    assert working_days_between(date(2026, 4, 9), date(2026, 4, 2)) == 0
    assert next_working_day(date(2026, 12, 24)) == date(2026, 12, 29)


instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@given(opened=instants, days=st.integers(min_value=1, max_value=10))
def test_due_is_a_working_day_the_right_count_later(opened: datetime, days: int) -> None:
    due = due_at(opened, working_days=days)
    due_day = due.astimezone(LONDON).date()
    assert due > opened
    assert is_working_day(due_day)
    opened_day = opened.astimezone(LONDON).date()
    # Opened on a day off, the clock starts on the next working day: one more in between.
    extra = 0 if is_working_day(opened_day) else 1
    assert working_days_between(opened_day, due_day) == days + extra
    assert not is_overdue(opened, due - timedelta(microseconds=1), working_days=days)
    assert is_overdue(opened, due, working_days=days)


@given(first=instants, gap=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)))
def test_a_later_request_is_never_due_earlier(first: datetime, gap: timedelta) -> None:
    assert due_at(first + gap) >= due_at(first)
