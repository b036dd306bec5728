"""RouterLife: the ground truth every emulator and end-to-end test compares against."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.emulator.life import LONDON, RouterLife


def at(text: str) -> float:
    """Epoch seconds of an ISO time; naive times are London local time."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=LONDON)).timestamp()


def life_at(start: float, **fields: object) -> RouterLife:
    """A router born at `start` moving 1000 bytes/s down and 100 up."""
    defaults: dict[str, object] = {
        "router_id": "r1",
        "model": "test",
        "imei": "356938035643809",
        "serial": "S1",
        "iccid": "8944110000000000001",
        "received_rate": 1000.0,
        "sent_rate": 100.0,
    }
    return RouterLife.born(start, **(defaults | fields))


@pytest.mark.parametrize(
    ("start", "end", "before", "after"),
    [
        # GMT month end (BST ended 29 Oct 2023): the boundary is midnight UTC.
        ("2023-10-31T23:00:00+00:00", "2023-11-01T01:00:00+00:00", (2023, 10), (2023, 11)),
        # BST month end: 1 April 00:00 BST is 31 March 23:00 UTC.
        ("2024-03-31T22:00:00+00:00", "2024-04-01T00:00:00+00:00", (2024, 3), (2024, 4)),
        ("2024-09-30T22:00:00+00:00", "2024-10-01T00:00:00+00:00", (2024, 9), (2024, 10)),
        # The year end.
        ("2023-12-31T23:00:00+00:00", "2024-01-01T01:00:00+00:00", (2023, 12), (2024, 1)),
    ],
)
def test_truth_splits_at_local_month_ends(
    start: str, end: str, before: tuple[int, int], after: tuple[int, int]
) -> None:
    life = life_at(at(start))
    life.advance(at(end))  # one step across the boundary: _book must split it
    # Each case spans one hour either side of local midnight on the 1st.
    assert life.month_truth(*before) == 3600 * 1100
    assert life.month_truth(*after) == 3600 * 1100


def test_truth_of_many_small_steps_equals_the_total() -> None:
    start = at("2024-03-31T00:00:00")
    life = life_at(start, received_rate=333.3, sent_rate=7.7)
    for minute in range(1, 48 * 60, 7):
        life.advance(start + minute * 60.5)
    total = life.received_since_boot + life.sent_since_boot
    assert life.month_truth(2024, 3) + life.month_truth(2024, 4) == total
    assert life.device_received + life.device_sent == total


def test_reboot_resets_interface_counters_but_keeps_device_totals() -> None:
    start = at("2024-05-10T12:00:00")
    life = life_at(start)
    life.reboot(start + 100)
    assert (life.received_since_boot, life.sent_since_boot) == (0, 0)
    assert (life.device_received, life.device_sent) == (100_000, 10_000)
    assert (life.month_received, life.month_sent) == (100_000, 10_000)
    assert life.uptime(start + 130) == 30
    life.advance(start + 110)
    assert life.received_since_boot == 10_000
    assert life.device_received == 110_000


def test_power_off_stops_traffic_and_power_on_is_a_boot() -> None:
    start = at("2024-05-10T12:00:00")
    life = life_at(start)
    life.power(start + 10, on=False)
    life.advance(start + 1000)
    assert life.device_received == 10_000
    life.power(start + 2000, on=True)
    assert life.boot_time == start + 2000
    assert life.received_since_boot == 0
    assert life.month_truth(2024, 5) == 11_000


def test_no_traffic_without_sim_or_link() -> None:
    start = at("2024-05-10T12:00:00")
    life = life_at(start)
    life.remove_sim(start + 1)
    life.insert_sim(start + 11, iccid="8944110000000000002")
    life.set_link(start + 12, up=False)
    life.set_link(start + 22, up=True)
    life.advance(start + 23)
    assert life.device_received == 3 * 1000
    assert life.month_truth(2024, 5, "8944110000000000001") == 1100
    assert life.month_truth(2024, 5, "8944110000000000002") == 2200


def test_clear_month_zeroes_the_device_month_only() -> None:
    start = at("2024-05-10T12:00:00")
    life = life_at(start)
    life.clear_month(start + 50)
    assert (life.month_received, life.month_sent, life.month_cleared_at) == (0, 0, start + 50)
    assert life.device_received == 50_000
    assert life.month_truth(2024, 5) == 50 * 1100


@pytest.mark.parametrize(
    ("start_day", "start", "restart"),
    [
        (15, "2024-06-14T23:00:00", "2024-06-15T00:00:00"),
        (1, "2024-03-31T23:00:00", "2024-04-01T00:00:00"),  # in BST
        (28, "2024-02-27T23:30:00", "2024-02-28T00:00:00"),
    ],
)
def test_device_month_restarts_on_its_start_day(start_day: int, start: str, restart: str) -> None:
    life = life_at(at(start), month_start_day=start_day)
    life.advance(at(restart) + 600)
    assert life.month_cleared_at == at(restart)
    assert (life.month_received, life.month_sent) == (600_000, 60_000)
    assert life.device_received == (at(restart) + 600 - at(start)) * 1000


def test_month_start_day_must_exist_in_every_month() -> None:
    with pytest.raises(ValueError, match="month_start_day"):
        life_at(0.0, month_start_day=29)


def test_battery_drains_unless_charging_and_stops_at_zero() -> None:
    start = datetime(2024, 5, 10, tzinfo=UTC).timestamp()
    life = life_at(start, battery_drain_per_hour=10.0)
    life.advance(start + 3 * 3600)
    assert life.battery_percent == pytest.approx(70.0)
    life.charging = True
    life.advance(start + 5 * 3600)
    assert life.battery_percent == pytest.approx(70.0)
    life.charging = False
    life.advance(start + 20 * 3600)
    assert life.battery_percent == 0.0
