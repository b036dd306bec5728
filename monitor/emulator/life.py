"""The simulated life of one emulated router, and the ground truth tests compare against.

A `RouterLife` is advanced by the clock it is given (seconds since the epoch, so a test can use a
fake clock). Traffic flows at a steady rate while the router is powered, has its SIM and its
mobile link; every byte is also booked to the calendar month (in `zone`) in which it flowed, which
is what a correct monitor must report. The agents in this package only read a life's state; the
faults (reboot, SIM removal, link loss, power-off, slow or garbage answers, session expiry, a
manual clear of the month statistics) are methods a test, the demo or a benchmark calls.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], float]
LONDON = ZoneInfo("Europe/London")


@dataclass
class Faults:
    """Misbehaviour switched on for a router's management interface."""

    powered_off: bool = False  # no answer at all
    delay: float = 0.0  # seconds before each answer
    garbage: bool = False  # answers that are not valid SNMP / XML
    wrong_credentials: bool = False  # the agent behaves as if our credentials were wrong


@dataclass
class RouterLife:
    """One router's state; every mutating method first brings traffic up to `now`."""

    router_id: str
    model: str
    imei: str
    serial: str
    iccid: str | None
    imsi: str = "234150000000001"
    firmware: str = "1.0.0"
    received_rate: float = 20_000.0  # bytes/s downloaded while connected
    sent_rate: float = 2_000.0  # bytes/s uploaded while connected
    zone: ZoneInfo = LONDON
    month_start_day: int = 1  # the device's own month statistics restart on this day
    boot_time: float = 0.0
    updated: float = 0.0
    sim_present: bool = True
    link_up: bool = True
    battery_percent: float = 100.0
    battery_drain_per_hour: float = 0.0
    charging: bool = False
    signal_rssi: int = -67
    signal_rsrp: int = -95
    signal_rsrq: int = -10
    signal_sinr: float = 12.0
    # Interface counters: since boot. Device totals: since last manual clear, kept over reboots.
    received_since_boot: int = 0
    sent_since_boot: int = 0
    device_received: int = 0
    device_sent: int = 0
    month_received: int = 0
    month_sent: int = 0
    month_cleared_at: float = 0.0
    faults: Faults = field(default_factory=Faults)
    truth: dict[tuple[str, int, int], int] = field(default_factory=lambda: defaultdict(int))
    _fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.month_start_day <= 28:
            raise ValueError("month_start_day must be 1 to 28")

    @classmethod
    def born(cls, now: float, **fields: object) -> RouterLife:
        """A router booted and cleared at `now`."""
        life = cls(**fields)  # type: ignore[arg-type]
        life.boot_time = life.updated = life.month_cleared_at = now
        return life

    @property
    def connected(self) -> bool:
        """Whether traffic flows: powered, SIM in, link up."""
        return not self.faults.powered_off and self.sim_present and self.link_up

    def uptime(self, now: float) -> float:
        """Seconds since the last boot."""
        return max(0.0, now - self.boot_time)

    def advance(self, now: float) -> None:
        """Let traffic flow (and the battery drain) from the last update to `now`."""
        while now > self.updated:
            restart = self._next_device_month(self.updated)
            step = min(now, restart)
            self._flow(self.updated, step)
            self.updated = step
            if step == restart:
                self.month_received = self.month_sent = 0
                self.month_cleared_at = restart

    def reboot(self, now: float) -> None:
        """Power-cycle: uptime and interface counters restart; device totals survive."""
        self.advance(now)
        self.boot_time = now
        self.received_since_boot = self.sent_since_boot = 0

    def remove_sim(self, now: float) -> None:
        """The user takes the SIM out: no traffic, the router reports no SIM."""
        self.advance(now)
        self.sim_present = False

    def insert_sim(self, now: float, iccid: str | None = None) -> None:
        """The SIM goes back in (or a different one, if `iccid` is given)."""
        self.advance(now)
        self.sim_present = True
        if iccid is not None:
            self.iccid = iccid

    def set_link(self, now: float, up: bool) -> None:
        """The mobile link drops or comes back."""
        self.advance(now)
        self.link_up = up

    def power(self, now: float, on: bool) -> None:
        """Switch off (no answers, no traffic) or on again (which is a boot)."""
        self.advance(now)
        was_off, self.faults.powered_off = self.faults.powered_off, not on
        if was_off and on:
            self.boot_time = now
            self.received_since_boot = self.sent_since_boot = 0

    def clear_month(self, now: float) -> None:
        """The user clears the device's month statistics by hand."""
        self.advance(now)
        self.month_received = self.month_sent = 0
        self.month_cleared_at = now

    def jitter_signal(self, rng: random.Random) -> None:
        """Move the radio values a little, as a real cell would."""
        self.signal_rssi = max(-113, min(-51, self.signal_rssi + rng.randint(-2, 2)))
        self.signal_rsrp = max(-140, min(-44, self.signal_rsrp + rng.randint(-2, 2)))

    def month_truth(self, year: int, month: int, iccid: str | None = None) -> int:
        """Bytes that really flowed in that calendar month (in `zone`), for one SIM or all."""
        return sum(
            count
            for (sim, y, m), count in self.truth.items()
            if (y, m) == (year, month) and (iccid is None or sim == iccid)
        )

    def _book(self, start: float, end: float, total: int) -> None:
        """Book `total` bytes spread evenly over [start, end) to calendar months."""
        sim = self.iccid or ""
        booked = 0
        cursor = start
        while cursor < end:
            local = datetime.fromtimestamp(cursor, UTC).astimezone(self.zone)
            year, month = local.year, local.month
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=self.zone)
            boundary = min(end, following.timestamp())
            part = round(total * (boundary - start) / (end - start)) - booked
            self.truth[(sim, year, month)] += part
            booked += part
            cursor = boundary

    def _flow(self, start: float, end: float) -> None:
        if not self.charging:
            drain = (end - start) / 3600 * self.battery_drain_per_hour
            self.battery_percent = max(0.0, self.battery_percent - drain)
        if not self.connected:
            return
        exact = (end - start) * (self.received_rate + self.sent_rate) + self._fraction
        total = int(exact)
        self._fraction = exact - total
        received = round(total * self.received_rate / (self.received_rate + self.sent_rate or 1))
        sent = total - received
        self.received_since_boot += received
        self.sent_since_boot += sent
        self.device_received += received
        self.device_sent += sent
        self.month_received += received
        self.month_sent += sent
        self._book(start, end, total)

    def _next_device_month(self, after: float) -> float:
        """The first local midnight of `month_start_day` strictly after `after`."""
        local = datetime.fromtimestamp(after, UTC).astimezone(self.zone)
        year, month = local.year, local.month
        for _ in range(2):
            candidate = datetime(year, month, self.month_start_day, tzinfo=self.zone).timestamp()
            if candidate > after:
                return candidate
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        raise AssertionError("unreachable: next month's start is always later")
