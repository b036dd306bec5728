"""Plain typed values shared by every layer: the inventory and its rules.

Only the standard library is imported here. The validation helpers are pure functions used by
both the configuration loader and the CSV importer, so that a router is held to the same rules
whichever way it enters the inventory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class OrganisationKind(StrEnum):
    """The kinds of organisation that received devices."""

    LOCAL_AUTHORITY = "local_authority"
    ACADEMY_TRUST = "academy_trust"
    SCHOOL = "school"
    COLLEGE = "college"


class DeviceKind(StrEnum):
    """Every kind of device the programme handed out."""

    WINDOWS_LAPTOP = "windows_laptop"
    WINDOWS_TABLET = "windows_tablet"
    CHROMEBOOK = "chromebook"
    IPAD = "ipad"
    ROUTER = "router"


class Allocation(StrEnum):
    """What an LA's device was given for; the guidance's password rules depend on it."""

    SOCIAL_CARE = "social_care"
    SCHOOLS = "schools"


class DeviceStatus(StrEnum):
    """Where a device is in its life."""

    IN_USE = "in_use"
    IN_STOCK = "in_stock"
    LOST = "lost"
    STOLEN = "stolen"
    FAULTY = "faulty"
    REPLACED = "replaced"


class Protocol(StrEnum):
    """The management interface a router is polled through."""

    SNMP = "snmp"
    HILINK = "hilink"


DEFAULT_PORTS: dict[Protocol, int] = {Protocol.SNMP: 161, Protocol.HILINK: 80}

# A school or college is supported through its LA or academy trust (support guidance); LAs and
# trusts stand at the top of the tree.
ALLOWED_PARENTS: dict[OrganisationKind, frozenset[OrganisationKind]] = {
    OrganisationKind.LOCAL_AUTHORITY: frozenset(),
    OrganisationKind.ACADEMY_TRUST: frozenset(),
    OrganisationKind.SCHOOL: frozenset(
        {OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST}
    ),
    OrganisationKind.COLLEGE: frozenset(
        {OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST}
    ),
}


@dataclass(frozen=True, slots=True)
class Organisation:
    """An LA, academy trust, school or college; schools may sit under an LA or trust."""

    id: str
    name: str
    kind: OrganisationKind
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """One device of the programme, keyed by its serial number."""

    serial: str
    kind: DeviceKind
    organisation_id: str
    order_number: str
    imei: str | None = None
    allocation: Allocation | None = None
    order_term: str | None = None
    status: DeviceStatus = DeviceStatus.IN_USE


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how a router's management interface is reached (credentials live in config)."""

    protocol: Protocol
    host: str
    port: int
    profile: str


@dataclass(frozen=True, slots=True)
class Router:
    """A 4G router: its device record plus what polling needs."""

    id: str
    device: Device
    iccid: str | None = None
    endpoint: Endpoint | None = None
    monitored: bool = True


@dataclass(frozen=True, slots=True)
class SnmpCredentials:
    """SNMP v2c community or v3 USM user; secrets are kept out of repr."""

    version: str  # "2c" or "3"
    community: str = field(default="", repr=False)
    user: str = ""
    auth_protocol: str | None = None  # MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512
    auth_key: str = field(default="", repr=False)
    priv_protocol: str | None = None  # DES, AES, AES-192, AES-256
    priv_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class HttpLogin:
    """A router web API login; the password is kept out of repr."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PollTarget:
    """What a collector needs to poll one router: where, which profile, which credentials."""

    router_id: str
    endpoint: Endpoint
    snmp: SnmpCredentials | None = None
    http: HttpLogin | None = None


# --- validation helpers, shared by config and import --------------------------------------

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ORDER_TERM_RE = re.compile(r"^(20\d\d)-(spring|summer|autumn)$")
_ICCID_RE = re.compile(r"^89\d{16,20}$")


def identifier_problem(value: str) -> str | None:
    """Why `value` is not a usable id (of a router or organisation), or None if it is."""
    if _ID_RE.fullmatch(value):
        return None
    return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def imei_problem(value: str) -> str | None:
    """Why `value` is not a valid IMEI (15 digits with a correct Luhn check digit), or None."""
    if len(value) != 15 or not value.isdigit():
        return "must be 15 digits"
    if not _luhn_ok(value):
        return "check digit is wrong (Luhn): is a digit mistyped?"
    return None


def iccid_problem(value: str) -> str | None:
    """Why `value` is not a SIM ICCID (89 followed by 16-20 digits), or None."""
    if _ICCID_RE.fullmatch(value):
        return None
    return "must be a SIM ICCID: 18 to 22 digits starting with 89"


def order_term_problem(value: str) -> str | None:
    """Why `value` is not an order term such as 2020-summer, or None."""
    if _ORDER_TERM_RE.fullmatch(value):
        return None
    return "must be a year and term such as 2020-summer or 2020-autumn"


def parent_problem(kind: OrganisationKind, parent_kind: OrganisationKind | None) -> str | None:
    """Why an organisation of `kind` cannot sit under one of `parent_kind`, or None."""
    allowed = ALLOWED_PARENTS[kind]
    if parent_kind is None or parent_kind in allowed:
        return None
    if not allowed:
        return f"a {kind.value} has no parent organisation"
    names = " or ".join(sorted(k.value for k in allowed))
    return f"the parent of a {kind.value} must be an {names}, not a {parent_kind.value}"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# --- what a poll learns ------------------------------------------------------------------


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
