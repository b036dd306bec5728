"""What a poll learns: a `Sample`, or a `PollFailure` saying why not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SimState(StrEnum):
    """The SIM as the router reports it."""

    READY = "ready"
    ABSENT = "absent"
    PIN_LOCKED = "pin_locked"
    PUK_LOCKED = "puk_locked"
    ERROR = "error"
    UNKNOWN = "unknown"


class LinkState(StrEnum):
    """The mobile (WAN) connection."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    UNKNOWN = "unknown"


class UptimeClock(StrEnum):
    """Which clock an uptime came from: they restart on different events."""

    SYS_UPTIME = "sysUpTime"  # restarts with the SNMP agent; wraps at 497 days
    ENGINE_TIME = "snmpEngineTime"  # restarts with the SNMP engine (boots counted apart)
    HR_SYSTEM = "hrSystemUptime"  # the host's own uptime
    DEVICE = "device"  # a device-specific value (a MIB scalar, a web API field)


class CounterType(StrEnum):
    """How a cumulative counter was encoded, which decides how it wraps."""

    COUNTER32 = "counter32"
    COUNTER64 = "counter64"
    INTEGER32 = "integer32"  # signed on the wire, read as unsigned 32-bit (Teltonika)
    DEVICE = "device"  # a device's own byte total, 64-bit, cleared only by the device


@dataclass(frozen=True, slots=True)
class Counter:
    """One reading of a cumulative byte counter, already made unsigned."""

    value: int
    type: CounterType

    @property
    def width(self) -> int:
        """Bits before the counter wraps to zero."""
        return 32 if self.type in (CounterType.COUNTER32, CounterType.INTEGER32) else 64


@dataclass(frozen=True, slots=True)
class Signal:
    """Radio quality; None where the router does not report a value."""

    rssi_dbm: float | None = None
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """What the router says it is; None where not reported."""

    imei: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    serial: str | None = None
    model: str | None = None
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class Traffic:
    """Cumulative counters (received = download, sent = upload) and the device's month counters."""

    received: Counter | None = None
    sent: Counter | None = None
    month_received: int | None = None
    month_sent: int | None = None
    month_cleared: str | None = None  # the device's own "last cleared" stamp, compared as text


@dataclass(frozen=True, slots=True)
class Sample:
    """Everything one successful poll learnt about a router at `at` (UTC)."""

    router_id: str
    at: datetime
    sim: SimState = SimState.UNKNOWN
    link: LinkState = LinkState.UNKNOWN
    network_type: str | None = None
    signal: Signal = Signal()
    battery_percent: int | None = None
    charging: bool | None = None
    uptime_seconds: float | None = None
    uptime_clock: UptimeClock | None = None
    identity: Identity = Identity()
    traffic: Traffic = Traffic()


class FailureKind(StrEnum):
    """Why a poll got no sample."""

    TIMEOUT = "timeout"  # no answer within the deadline: off, out of coverage, or too slow
    REFUSED = "refused"  # actively refused (ICMP unreachable, TCP reset)
    AUTH = "auth"  # wrong community/USM keys, or a web login refused
    BAD_REPLY = "bad_reply"  # answered, but not in a way we can read
    UNSUPPORTED = "unsupported"  # answered that it does not offer what the profile needs


@dataclass(frozen=True, slots=True)
class PollFailure:
    """A poll that got no sample, and why (the detail never holds a secret)."""

    router_id: str
    at: datetime
    kind: FailureKind
    detail: str


PollResult = Sample | PollFailure


@dataclass(frozen=True, slots=True)
class PollStatus:
    """What the last polls of one router showed."""

    last: PollResult
    last_sample: Sample | None
    last_success: datetime | None
    failures_in_row: int

    @property
    def reachable(self) -> bool:
        """Whether the management interface answered the last poll."""
        return isinstance(self.last, Sample)
