"""Usage accounting: named regressions per counter flavour, and the samplers the properties use."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.core.usage import SYS_UPTIME_WRAP, Accounting, account
from monitor.emulator.life import LONDON, RouterLife
from monitor.model import (
    Counter,
    CounterType,
    Identity,
    Sample,
    Traffic,
    UptimeClock,
    UsageDelta,
    UsageState,
)

T32 = 2**32
SIM_A = "8944100000000000001"
SIM_B = "8944100000000000002"

Sampler = Callable[[RouterLife, float], Sample]


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Seconds since the epoch of a London wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=LONDON).timestamp()


def _sample(
    life: RouterLife, now: float, clock: UptimeClock, uptime: float, **kw: object
) -> Sample:
    return Sample(
        router_id=life.router_id,
        at=datetime.fromtimestamp(now, UTC),
        uptime_seconds=uptime,
        uptime_clock=clock,
        identity=Identity(iccid=life.iccid),
        traffic=Traffic(**kw),  # type: ignore[arg-type]
    )


def _signed32(value: int) -> int:
    """What a Teltonika agent puts on the wire: the low 32 bits, as a signed Integer32."""
    value %= T32
    return value - T32 if value >= 2**31 else value


def teltonika(life: RouterLife, now: float) -> Sample:
    """RutOS: Integer32 traffic (made unsigned as the collector does) and month columns."""
    life.advance(now)
    return _sample(
        life,
        now,
        UptimeClock.DEVICE,
        life.uptime(now),
        received=Counter(_signed32(life.received_since_boot) & 0xFFFFFFFF, CounterType.INTEGER32),
        sent=Counter(_signed32(life.sent_since_boot) & 0xFFFFFFFF, CounterType.INTEGER32),
        month_received=_signed32(life.month_received) & 0xFFFFFFFF,
        month_sent=_signed32(life.month_sent) & 0xFFFFFFFF,
    )


def ifmib32(life: RouterLife, now: float) -> Sample:
    """IF-MIB ifInOctets/ifOutOctets (Counter32) with sysUpTime (wraps at 497 days)."""
    life.advance(now)
    return _sample(
        life,
        now,
        UptimeClock.SYS_UPTIME,
        life.uptime(now) % SYS_UPTIME_WRAP,
        received=Counter(life.received_since_boot % T32, CounterType.COUNTER32),
        sent=Counter(life.sent_since_boot % T32, CounterType.COUNTER32),
    )


def ifmib64(life: RouterLife, now: float) -> Sample:
    """IF-MIB ifHCInOctets/ifHCOutOctets (Counter64) with hrSystemUptime."""
    life.advance(now)
    return _sample(
        life,
        now,
        UptimeClock.HR_SYSTEM,
        life.uptime(now),
        received=Counter(life.received_since_boot, CounterType.COUNTER64),
        sent=Counter(life.sent_since_boot, CounterType.COUNTER64),
    )


def hilink(life: RouterLife, now: float) -> Sample:
    """HiLink: TotalDownload/TotalUpload plus month statistics with MonthLastClearTime."""
    life.advance(now)
    cleared = datetime.fromtimestamp(life.month_cleared_at, UTC).astimezone(life.zone)
    return _sample(
        life,
        now,
        UptimeClock.DEVICE,
        life.uptime(now),
        received=Counter(life.device_received, CounterType.DEVICE),
        sent=Counter(life.device_sent, CounterType.DEVICE),
        month_received=life.month_received,
        month_sent=life.month_sent,
        month_cleared=f"{cleared.year}-{cleared.month}-{cleared.day}",
    )


SAMPLERS: dict[str, Sampler] = {
    "teltonika": teltonika,
    "ifmib32": ifmib32,
    "ifmib64": ifmib64,
    "hilink": hilink,
}


class Ledger:
    """Feeds samples to `account` and sums the deltas per (SIM, month), as persistence would."""

    def __init__(self) -> None:
        self.state: UsageState | None = None
        self.totals: dict[tuple[str, str], int] = defaultdict(int)
        self.partial: set[tuple[str, str]] = set()
        self.notes: list[str] = []

    def feed(self, sample: Sample) -> Accounting:
        """Account one sample and book its deltas."""
        result = account(self.state, sample, LONDON)
        self.state = result.state
        self.notes.extend(result.notes)
        for delta in result.deltas:
            assert delta.received >= 0
            assert delta.sent >= 0
            key = (delta.iccid or "", delta.month)
            self.totals[key] += delta.received + delta.sent
            if delta.partial:
                self.partial.add(key)
        return result

    def restart(self) -> None:
        """A daemon restart: the state goes through persistence and comes back field by field."""
        if self.state is not None:
            # Reconstructed from plain fields (as a row would be read back), then copied.
            self.state = replace(UsageState(**_fields(self.state)))

    def month(self, iccid: str, month: str) -> int:
        """Bytes counted for one SIM in one month."""
        return self.totals[(iccid, month)]


def _fields(state: UsageState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__slots__}


def new_life(start: float, **fields: object) -> RouterLife:
    """A router booted at `start` with SIM A."""
    defaults: dict[str, object] = {
        "router_id": "r1",
        "model": "RUTX11",
        "imei": "867098031000017",
        "serial": "S1",
        "iccid": SIM_A,
    }
    return RouterLife.born(start, **(defaults | fields))


def run(life: RouterLife, sampler: Sampler, times: Iterable[float], ledger: Ledger) -> None:
    """Poll `life` at each time."""
    for now in times:
        ledger.feed(sampler(life, now))


def state(**kw: object) -> UsageState:
    """A previous state at 2024-10-10 12:00 London."""
    return UsageState("r1", datetime(2024, 10, 10, 11, tzinfo=UTC), **kw)  # type: ignore[arg-type]


def sample(seconds: float, **kw: object) -> Sample:
    """A sample `seconds` after `state()`'s time, with traffic fields `kw`."""
    uptime = kw.pop("uptime", None)
    clock = kw.pop("clock", None)
    iccid = kw.pop("iccid", None)
    at = datetime.fromtimestamp(datetime(2024, 10, 10, 11, tzinfo=UTC).timestamp() + seconds, UTC)
    return Sample(
        "r1",
        at,
        uptime_seconds=uptime,  # type: ignore[arg-type]
        uptime_clock=clock,  # type: ignore[arg-type]
        identity=Identity(iccid=iccid),  # type: ignore[arg-type]
        traffic=Traffic(**kw),  # type: ignore[arg-type]
    )


def i32(value: int) -> Counter:
    """A Teltonika Integer32 counter as the collector hands it over (unsigned)."""
    return Counter(value & 0xFFFFFFFF, CounterType.INTEGER32)


def c32(value: int) -> Counter:
    """An IF-MIB Counter32."""
    return Counter(value, CounterType.COUNTER32)


def c64(value: int) -> Counter:
    """An IF-MIB Counter64."""
    return Counter(value, CounterType.COUNTER64)


def dev(value: int) -> Counter:
    """A device's own 64-bit total."""
    return Counter(value, CounterType.DEVICE)


def only(result: Accounting) -> UsageDelta:
    """The single delta of a result."""
    assert len(result.deltas) == 1, result
    return result.deltas[0]


# --- named regressions, per counter flavour ------------------------------------------------


def test_teltonika_negative_integer32_counter_then_small_increase() -> None:
    before = state(received=i32(-1835401583), sent=i32(1000))
    assert before.received == Counter(2459565713, CounterType.INTEGER32)
    result = account(before, sample(60, received=i32(-1835401583 + 5000), sent=i32(1100)), LONDON)
    assert (only(result).received, only(result).sent) == (5000, 100)
    assert only(result).month == "2024-10"
    assert result.notes == ()


def test_teltonika_integer32_wraps_from_negative_to_positive() -> None:
    before = state(received=i32(-10), sent=i32(0))
    result = account(before, sample(60, received=i32(90), sent=i32(0)), LONDON)
    assert only(result).received == 100
    assert "received: 32-bit wrap" in result.notes


def test_ifmib_counter32_wraps_several_times_in_a_month() -> None:
    # 20 kB/s down wraps ifInOctets every 2.5 days: a dozen times in October.
    life = new_life(ts(2024, 10, 1), received_rate=20_000.0, sent_rate=3_000.0)
    life.received_since_boot = T32 - 1_000_000  # the first wrap comes within a minute
    ledger = Ledger()
    run(life, ifmib32, (ts(2024, 10, 1) + hour * 3600 for hour in range(745)), ledger)
    assert ledger.notes.count("received: 32-bit wrap") >= 12
    assert ledger.month(SIM_A, "2024-10") == life.month_truth(2024, 10, SIM_A)
    assert ledger.partial == {(SIM_A, "2024-10")}  # no month counters: first sight is partial


def test_ifmib_counter64_reboot_counts_since_boot() -> None:
    life = new_life(ts(2024, 10, 1))
    ledger = Ledger()
    run(life, ifmib64, [ts(2024, 10, 1), ts(2024, 10, 2)], ledger)
    life.reboot(ts(2024, 10, 2, 0, 30))
    result = ledger.feed(ifmib64(life, ts(2024, 10, 2, 1)))
    assert "reboot: uptime went back" in result.notes
    assert only(result).received == 1800 * 20_000  # since boot; the 30 minutes before are lost
    assert ledger.month(SIM_A, "2024-10") < life.month_truth(2024, 10, SIM_A)


@pytest.mark.parametrize("sampler", [teltonika, hilink], ids=["teltonika", "hilink"])
def test_reboot_at_2359_on_the_last_day_of_the_month(sampler: Sampler) -> None:
    life = new_life(ts(2024, 10, 30))
    ledger = Ledger()
    run(life, sampler, [ts(2024, 10, 30), ts(2024, 10, 31, 23, 58)], ledger)
    life.reboot(ts(2024, 10, 31, 23, 59))
    run(life, sampler, [ts(2024, 11, 1, 0, 1), ts(2024, 11, 1, 6)], ledger)
    october, november = life.month_truth(2024, 10, SIM_A), life.month_truth(2024, 11, SIM_A)
    assert ledger.month(SIM_A, "2024-11") == november
    if sampler is hilink:  # device totals survive the reboot: nothing is lost
        assert ledger.month(SIM_A, "2024-10") == october
    else:  # the minute 23:58-23:59 is lost; the bytes since boot land by time
        assert ledger.month(SIM_A, "2024-10") == october - 60 * 22_000


def test_teltonika_month_counters_recover_a_reboot_without_double_counting() -> None:
    life = new_life(ts(2024, 10, 1))
    ledger = Ledger()
    run(life, teltonika, [ts(2024, 10, 1), ts(2024, 10, 2)], ledger)
    life.reboot(ts(2024, 10, 2, 12))
    result = ledger.feed(teltonika(life, ts(2024, 10, 3)))
    assert "received: month counter recovered 864000000 bytes" in result.notes
    assert ledger.month(SIM_A, "2024-10") == life.month_truth(2024, 10, SIM_A)
    assert ledger.partial == set()  # seeded from the month columns at first sight


def test_hilink_month_statistics_cleared_by_hand_falls_back_to_device_totals() -> None:
    life = new_life(ts(2024, 10, 1), model="E5576")
    ledger = Ledger()
    run(life, hilink, [ts(2024, 10, 1), ts(2024, 10, 3)], ledger)
    life.clear_month(ts(2024, 10, 3, 12))
    result = ledger.feed(hilink(life, ts(2024, 10, 4)))
    assert "month statistics cleared (2024-10-1->2024-10-3)" in result.notes
    assert ledger.month(SIM_A, "2024-10") == life.month_truth(2024, 10, SIM_A)


def test_hilink_device_totals_cleared_by_hand_recovered_from_month_counters() -> None:
    life = new_life(ts(2024, 10, 1), model="E5576")
    ledger = Ledger()
    run(life, hilink, [ts(2024, 10, 1), ts(2024, 10, 2)], ledger)
    life.advance(ts(2024, 10, 2, 6))
    life.device_received = life.device_sent = 0  # the user cleared TotalDownload/TotalUpload
    result = ledger.feed(hilink(life, ts(2024, 10, 3)))
    assert any("device total cleared" in note for note in result.notes)
    assert any("month counter recovered" in note for note in result.notes)
    assert ledger.month(SIM_A, "2024-10") == life.month_truth(2024, 10, SIM_A)


def test_device_total_cleared_without_month_counters_counts_since_the_clear() -> None:
    result = account(state(received=dev(10**9), sent=dev(0)), sample(60, received=dev(500)), LONDON)
    assert only(result).received == 500
    assert "received: device total cleared (1000000000->500), counted 500" in result.notes


def test_sys_uptime_wrap_after_497_days_is_not_a_reboot() -> None:
    before = state(
        received=c32(T32 - 100),
        uptime_seconds=SYS_UPTIME_WRAP - 30,
        uptime_clock=UptimeClock.SYS_UPTIME,
    )
    after = sample(60, received=c32(400), uptime=30.0, clock=UptimeClock.SYS_UPTIME)
    result = account(before, after, LONDON)
    assert only(result).received == 500  # a counter wrap, not a reset counted as 400
    assert result.notes == ("sysUpTime wrapped (497 days): not a restart", "received: 32-bit wrap")


def test_agent_restart_with_counters_going_on_counts_the_difference() -> None:
    before = state(received=c32(10**6), uptime_seconds=86400.0, uptime_clock=UptimeClock.SYS_UPTIME)
    after = sample(60, received=c32(10**6 + 7000), uptime=20.0, clock=UptimeClock.SYS_UPTIME)
    result = account(before, after, LONDON)
    assert only(result).received == 7000  # not 10**6 + 7000: the kernel counter went on
    assert "restart: sysUpTime went back (agent restart or reboot)" in result.notes


def test_agent_restart_with_a_drop_counts_only_the_new_reading() -> None:
    before = state(received=c32(10**9), uptime_seconds=86400.0, uptime_clock=UptimeClock.SYS_UPTIME)
    after = sample(60, received=c32(7000), uptime=20.0, clock=UptimeClock.SYS_UPTIME)
    result = account(before, after, LONDON)
    assert only(result).received == 7000
    assert "received: reset by the restart, counted 7000" in result.notes


def test_ambiguous_counter64_drop_is_a_reset() -> None:
    result = account(state(received=c64(10**12)), sample(60, received=c64(4000)), LONDON)
    assert only(result).received == 4000
    assert "received: dropped: a reset (1000000000000->4000), counted 4000" in result.notes


def test_implausible_jump_is_never_counted() -> None:
    result = account(state(received=c64(0)), sample(60, received=c64(10**12)), LONDON)
    assert result.deltas == ()
    assert (
        "received: 1000000000000 bytes is implausible for the interval: not counted" in result.notes
    )


def test_implausible_reset_after_a_32bit_drop_counts_nothing() -> None:
    # A drop too large to be a wrap in 60 s, and a new reading too large to be new: nothing.
    result = account(
        state(received=c32(4 * 10**9)), sample(10, received=c32(3_900_000_000)), LONDON
    )
    assert result.deltas == ()


def test_month_counter_going_down_without_a_clear_is_not_trusted() -> None:
    before = state(received=i32(1000), month_received=T32 - 10)
    result = account(before, sample(60, received=i32(2000), month_received=5), LONDON)
    assert only(result).received == 1000
    assert "received: month counter went down without a clear: not trusted" in result.notes


def test_implausible_month_counter_rise_is_ignored() -> None:
    before = state(received=i32(1000), month_received=0)
    result = account(before, sample(60, received=i32(2000), month_received=10**12), LONDON)
    assert only(result).received == 1000


def test_month_counters_alone_are_counted() -> None:
    before = state(month_received=100, month_sent=10)
    result = account(before, sample(60, month_received=300, month_sent=20), LONDON)
    assert (only(result).received, only(result).sent) == (200, 10)


def test_sim_swap_closes_the_old_sim_and_starts_the_new_one_partial() -> None:
    before = state(iccid=SIM_A, received=i32(1000), month_received=5000, recent_rate=3.0)
    after = sample(60, iccid=SIM_B, received=i32(9000), month_received=6000)
    result = account(before, after, LONDON)
    assert result.deltas == (UsageDelta("r1", SIM_B, "2024-10", 0, 0, partial=True),)
    assert result.notes[0].startswith(f"SIM swap {SIM_A}->{SIM_B}")
    assert (result.state.iccid, result.state.recent_rate) == (SIM_B, 3.0)
    follow = account(result.state, sample(120, iccid=SIM_B, received=i32(9500)), LONDON)
    assert only(follow) == UsageDelta("r1", SIM_B, "2024-10", 500, 0)


@pytest.mark.parametrize(
    ("cleared", "partial"),
    [("2024-10-1", False), ("2024-10-01 00:00:00", False), (None, False), ("2024-10-15", True)],
)
def test_first_sight_seeds_from_month_counters_that_cover_the_calendar_month(
    cleared: str | None, partial: bool
) -> None:
    first = sample(0, received=dev(10**9), month_received=700, month_sent=70, month_cleared=cleared)
    delta = only(account(None, first, LONDON))
    assert delta.partial is partial
    assert (delta.received, delta.sent) == ((0, 0) if partial else (700, 70))


def test_first_sight_seed_sets_the_recent_rate_from_the_month_so_far() -> None:
    first = sample(0, month_received=9 * 86400 * 1000, month_sent=0)  # 9.5 days into October
    result = account(None, first, LONDON)
    assert result.state.recent_rate == pytest.approx(9 * 86400 * 1000 / (9.5 * 86400))


def test_first_sight_with_an_implausible_seed_is_partial() -> None:
    delta = only(account(None, sample(0, month_received=10**16, month_sent=0), LONDON))
    assert delta.partial


def test_sample_without_counters_keeps_the_previous_readings() -> None:
    before = state(received=c32(1000))
    result = account(before, sample(60, iccid=SIM_B), LONDON)
    assert (result.state, result.deltas) == (before, ())
    first = account(None, sample(0, iccid=SIM_A), LONDON)
    assert first.state == UsageState("r1", first.state.at, iccid=SIM_A)
    seen = account(first.state, sample(60, received=c32(1000)), LONDON)
    assert only(seen) == UsageDelta("r1", SIM_A, "2024-10", 0, 0, partial=True)


def test_sample_not_newer_than_the_readings_is_ignored() -> None:
    before = state(received=c32(1000))
    result = account(before, sample(0, received=c32(2000)), LONDON)
    assert (result.state, result.deltas) == (before, ())


def test_counter_type_change_counts_nothing_and_rebaselines() -> None:
    before = state(received=c32(1000))
    result = account(before, sample(60, received=c64(2000)), LONDON)
    assert result.deltas == ()
    assert result.state.received == c64(2000)
    assert result.state.recent_rate is None  # an uncertain interval leaves the rate alone


def test_a_counter_appearing_is_a_baseline() -> None:
    result = account(
        state(received=c32(1000)), sample(60, received=c32(2000), sent=c32(50)), LONDON
    )
    assert (only(result).received, only(result).sent) == (1000, 0)


def test_interval_across_a_month_end_is_split_by_time() -> None:
    before = UsageState("r1", datetime(2024, 10, 31, 23, 30, tzinfo=UTC), received=c64(0))
    after = Sample(
        "r1", datetime(2024, 11, 1, 0, 30, tzinfo=UTC), traffic=Traffic(received=c64(1001))
    )
    result = account(before, after, LONDON)
    assert [(d.month, d.received) for d in result.deltas] == [("2024-10", 500), ("2024-11", 501)]


def test_recent_rate_is_smoothed_over_days() -> None:
    steady = state(received=c64(0), recent_rate=1000.0)
    burst = account(steady, sample(60, received=c64(60 * 101_000)), LONDON)
    assert burst.state.recent_rate == pytest.approx(
        1000 + 100_000 * (1 - 2.71828 ** (-60 / 259200)), rel=1e-4
    )
    first = account(state(received=c64(0)), sample(60, received=c64(6000)), LONDON)
    assert first.state.recent_rate == 100.0


def test_daemon_restart_round_trip_loses_and_doubles_nothing() -> None:
    life = new_life(ts(2024, 10, 1))
    ledger = Ledger()
    for day in range(1, 10):
        ledger.feed(teltonika(life, ts(2024, 10, day)))
        ledger.restart()
    assert ledger.month(SIM_A, "2024-10") == life.month_truth(2024, 10, SIM_A)


def test_second_reboot_a_minute_after_the_first_is_not_taken_for_a_wrap() -> None:
    before = state(
        received=c32(T32 - 1000), uptime_seconds=30.0, uptime_clock=UptimeClock.SYS_UPTIME
    )
    after = sample(60, received=c32(2000), uptime=20.0, clock=UptimeClock.SYS_UPTIME)
    assert only(account(before, after, LONDON)).received == 2000  # not 3000 as a wrap


def test_reboot_seconds_after_boot_is_caught_by_plausibility_not_uptime() -> None:
    # Uptime 0 then 59 s after 60 s looks continuous; a wrap would mean 4.3 GB in a minute.
    before = state(received=c32(1), uptime_seconds=0.0, uptime_clock=UptimeClock.SYS_UPTIME)
    after = sample(60, received=c32(0), uptime=59.0, clock=UptimeClock.SYS_UPTIME)
    result = account(before, after, LONDON)
    assert result.deltas == ()
    assert "received: dropped: a reset (1->0), counted 0" in result.notes
