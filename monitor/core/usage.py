"""Usage accounting: successive counter readings in, bytes per SIM per calendar month out.

`account()` compares a sample's counters with the readings remembered in a `UsageState` and
counts only bytes it can prove flowed: a drop is classified (wrap, reboot or agent restart,
clear, SIM swap) from the counter's width and the device's own evidence, and anything that would
be negative or implausibly large is not counted. The device's month counters, where continuous,
recover bytes the interface counters lost over a reboot (the larger of the two, never the sum).
docs/usage-accounting.md states the rules for operators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from monitor.core import calendar
from monitor.model import (
    Counter,
    CounterType,
    Sample,
    UptimeClock,
    UsageDelta,
    UsageState,
)

MAX_RATE = 50e6  # bytes/s: twice what the fastest LTE category in the fleet can carry
GRACE_SECONDS = 5.0  # added to every interval before judging plausibility: poll timing jitters
# An uptime may lag "previous + elapsed" by this much (whole-second uptimes, poll latency, a
# device clock drifting by up to 500 ppm) before it counts as gone back. Kept small: a reboot
# within this slack of the previous boot cannot be told from no reboot at all.
UPTIME_SLACK = 5.0
UPTIME_DRIFT = 0.0005
RATE_TIME_CONSTANT = 3 * 86400.0  # seconds: recent_rate forgets with this time constant
SYS_UPTIME_WRAP = 2**32 / 100  # seconds: a 32-bit TimeTicks wraps after 497 days


@dataclass(frozen=True, slots=True)
class Accounting:
    """What one sample changed: the state to persist, bytes newly counted, and why."""

    state: UsageState
    deltas: tuple[UsageDelta, ...]
    notes: tuple[str, ...]


class _Restart(Enum):
    NONE = "none"  # uptime continuous, or no evidence either way
    AGENT = "agent"  # an agent clock went back: agent restart or reboot, counters may go on
    DEVICE = "device"  # the device's own clock went back: interface counters restarted


@dataclass(frozen=True, slots=True)
class _Count:
    """Bytes provably new in one direction, and the window [start, end) they flowed in."""

    bytes: int
    start: datetime
    uncertain: bool = False  # something could not be counted: keep it out of the rate


def account(
    previous: UsageState | None, sample: Sample, zone: ZoneInfo, *, max_rate: float = MAX_RATE
) -> Accounting:
    """Count the bytes `sample` adds to `previous`, split per calendar month (in `zone`)."""
    traffic = sample.traffic
    has_counters = any(
        value is not None
        for value in (traffic.received, traffic.sent, traffic.month_received, traffic.month_sent)
    )
    if not has_counters:
        # Keep the old readings (and their time) so the next interval is judged against them.
        note = ("no counters in this sample: nothing counted",)
        if previous is None:
            state = UsageState(sample.router_id, sample.at, iccid=sample.identity.iccid)
            return Accounting(state, (), note)
        return Accounting(previous, (), note)
    if previous is None or not _has_readings(previous):
        known = previous.iccid if previous is not None else None
        return _first_sight(sample, zone, max_rate, None, "first sight", known, seed=True)
    new_sim = sample.identity.iccid
    if previous.iccid is not None and new_sim is not None and new_sim != previous.iccid:
        why = (
            f"SIM swap {previous.iccid}->{new_sim}: the interval since the last poll is not counted"
        )
        # The device's month counters also hold the old SIM's bytes: never seed the new SIM.
        return _first_sight(sample, zone, max_rate, previous.recent_rate, why, None, seed=False)
    elapsed = (sample.at - previous.at).total_seconds()
    if elapsed <= 0:
        return Accounting(previous, (), ("sample not newer than the last readings: ignored",))
    return _interval(previous, sample, zone, max_rate, elapsed)


def _has_readings(state: UsageState) -> bool:
    return any(
        value is not None
        for value in (state.received, state.sent, state.month_received, state.month_sent)
    )


def _state(sample: Sample, iccid: str | None, rate: float | None) -> UsageState:
    traffic = sample.traffic
    return UsageState(
        router_id=sample.router_id,
        at=sample.at,
        iccid=iccid,
        received=traffic.received,
        sent=traffic.sent,
        uptime_seconds=sample.uptime_seconds,
        uptime_clock=sample.uptime_clock,
        month_received=traffic.month_received,
        month_sent=traffic.month_sent,
        month_cleared=traffic.month_cleared,
        recent_rate=rate,
    )


def _first_sight(
    sample: Sample,
    zone: ZoneInfo,
    max_rate: float,
    rate: float | None,
    why: str,
    known_iccid: str | None,
    *,
    seed: bool,
) -> Accounting:
    """Seed the month from the device's month counters if they cover it, else mark it partial."""
    traffic = sample.traffic
    key = calendar.month_key(sample.at, zone)
    iccid = sample.identity.iccid or known_iccid
    since_start = (sample.at - calendar.month_start(key, zone)).total_seconds()
    follows_calendar = traffic.month_cleared is None or calendar.is_first_of_month(
        traffic.month_cleared, key
    )
    received, sent = traffic.month_received, traffic.month_sent
    if (
        seed
        and follows_calendar
        and received is not None
        and sent is not None
        and received + sent <= max_rate * (since_start + GRACE_SECONDS)
    ):
        delta = UsageDelta(sample.router_id, iccid, key, received, sent)
        if since_start >= 86400:
            rate = (received + sent) / since_start
        note = f"{why}: month {key} seeded from the device's month counters"
    else:
        delta = UsageDelta(sample.router_id, iccid, key, 0, 0, partial=True)
        note = f"{why}: month {key} is partial (nothing to seed it from)"
    return Accounting(_state(sample, iccid, rate), (delta,), (note,))


def _interval(
    previous: UsageState, sample: Sample, zone: ZoneInfo, max_rate: float, elapsed: float
) -> Accounting:
    """Count the bytes of one interval between two readings of the same SIM."""
    notes: list[str] = []
    restart, boot = _restart(previous, sample, elapsed, notes)
    traffic = sample.traffic
    # The device's month counters describe this interval only if they ran on unbroken: same
    # calendar month (they restart with it), same clear stamp (no clear in between).
    continuous = calendar.month_key(previous.at, zone) == calendar.month_key(sample.at, zone)
    if continuous and previous.month_cleared != traffic.month_cleared:
        notes.append(
            f"month statistics cleared ({previous.month_cleared}->{traffic.month_cleared})"
        )
        continuous = False
    judge = _Judge(previous.at, sample.at, max_rate, restart, boot, notes)
    counts = (
        judge.direction(
            "received",
            previous.received,
            traffic.received,
            _month_delta(
                "received", previous.month_received, traffic.month_received, continuous, notes
            ),
        ),
        judge.direction(
            "sent",
            previous.sent,
            traffic.sent,
            _month_delta("sent", previous.month_sent, traffic.month_sent, continuous, notes),
        ),
    )
    months: dict[str, list[int]] = {}
    for index, count in enumerate(counts):
        for key, part in calendar.split(count.start, sample.at, count.bytes, zone):
            months.setdefault(key, [0, 0])[index] += part
    iccid = sample.identity.iccid or previous.iccid
    deltas = tuple(
        UsageDelta(sample.router_id, iccid, key, received, sent)
        for key, (received, sent) in sorted(months.items())
        if received or sent
    )
    rate = previous.recent_rate
    if not any(count.uncertain for count in counts):
        rate = _smooth(rate, counts[0].bytes + counts[1].bytes, elapsed)
    return Accounting(_state(sample, iccid, rate), deltas, tuple(notes))


def _restart(
    previous: UsageState, sample: Sample, elapsed: float, notes: list[str]
) -> tuple[_Restart, datetime]:
    """Whether the uptime shows a restart since the last poll, and when it booted if so."""
    clock, old, new = sample.uptime_clock, previous.uptime_seconds, sample.uptime_seconds
    if clock is None or old is None or new is None or clock != previous.uptime_clock:
        return _Restart.NONE, previous.at
    expected = old + elapsed
    slack = UPTIME_SLACK + UPTIME_DRIFT * elapsed
    if new >= expected - slack:
        return _Restart.NONE, previous.at
    if clock == UptimeClock.SYS_UPTIME and abs(new - (expected - SYS_UPTIME_WRAP)) <= slack:
        notes.append("sysUpTime wrapped (497 days): not a restart")
        return _Restart.NONE, previous.at
    boot = max(previous.at, sample.at - timedelta(seconds=new))
    if clock in (UptimeClock.DEVICE, UptimeClock.HR_SYSTEM):
        notes.append("reboot: uptime went back")
        return _Restart.DEVICE, boot
    notes.append(f"restart: {clock.value} went back (agent restart or reboot)")
    return _Restart.AGENT, boot


def _month_delta(
    name: str, old: int | None, new: int | None, continuous: bool, notes: list[str]
) -> int | None:
    """Bytes by the device's month counter over the interval, or None if it cannot say."""
    if old is None or new is None or not continuous:
        return None
    if new < old:
        # Integer32 on the wire (Teltonika): it may have wrapped, or been cleared unseen.
        notes.append(f"{name}: month counter went down without a clear: not trusted")
        return None
    return new - old


@dataclass(frozen=True, slots=True)
class _Judge:
    """Judges one interval's counter readings against the plausible maximum."""

    since: datetime
    now: datetime
    max_rate: float
    restart: _Restart
    boot: datetime
    notes: list[str]

    def limit(self, start: datetime) -> float:
        """The most bytes that could plausibly have flowed in one direction since `start`."""
        return self.max_rate * ((self.now - start).total_seconds() + GRACE_SECONDS)

    def direction(
        self, name: str, old: Counter | None, new: Counter | None, month: int | None
    ) -> _Count:
        """Bytes provably new in one direction: the counter's, or the month counter's if larger."""
        count = self.counter(name, old, new)
        if month is None:
            return count
        if month > self.limit(self.since):
            self.notes.append(f"{name}: month counter rose by {month}: implausible, not counted")
            return count
        if month > count.bytes:
            self.notes.append(f"{name}: month counter recovered {month - count.bytes} bytes")
            return _Count(month, self.since)
        return count

    def counter(self, name: str, old: Counter | None, new: Counter | None) -> _Count:
        """Classify one counter's change and count what is provably new."""
        if old is None or new is None:
            return _Count(0, self.since, uncertain=new is not None and old is None)
        if old.type != new.type:
            self.notes.append(f"{name}: counter type changed ({old.type}->{new.type})")
            return _Count(0, self.since, uncertain=True)
        resets = new.type != CounterType.DEVICE  # device totals survive reboots
        if new.value >= old.value:
            if resets and self.restart is _Restart.DEVICE:
                # Restarted from zero after the last poll: all of it is new, the tail is lost.
                return self.plausible(name, new.value, self.boot, "since boot")
            return self.plausible(name, new.value - old.value, self.since, None)
        if resets and self.restart is not _Restart.NONE:
            return self.plausible(name, new.value, self.boot, "reset by the restart")
        wrapped = new.value + 2**new.width - old.value
        if wrapped <= self.limit(self.since):
            self.notes.append(f"{name}: {new.width}-bit wrap")
            return _Count(wrapped, self.since)
        what = "device total cleared" if new.type == CounterType.DEVICE else "dropped: a reset"
        return self.plausible(name, new.value, self.since, f"{what} ({old.value}->{new.value})")

    def plausible(self, name: str, value: int, start: datetime, why: str | None) -> _Count:
        """`value` if it could have flowed since `start`, else nothing (never a spike)."""
        if value > self.limit(start):
            self.notes.append(f"{name}: {value} bytes is implausible for the interval: not counted")
            return _Count(0, start, uncertain=True)
        if why is not None:
            self.notes.append(f"{name}: {why}, counted {value}")
        return _Count(value, start, uncertain=why is not None)


def _smooth(rate: float | None, counted: int, elapsed: float) -> float:
    """Exponentially weighted rate, weighted by time so uneven poll gaps are fair."""
    observed = counted / elapsed
    if rate is None:
        return observed
    weight = 1 - math.exp(-elapsed / RATE_TIME_CONSTANT)
    return rate + weight * (observed - rate)
