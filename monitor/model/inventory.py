"""Inventory values: organisations, devices, routers and how to reach them."""

from __future__ import annotations

from dataclasses import dataclass, field
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
