"""Health values: a router's health state, its damping memory, and recorded transitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Health(StrEnum):
    """What an on-call engineer should believe about one router."""

    UNKNOWN = "unknown"  # never observed long enough to say
    ONLINE = "online"
    WAN_DOWN = "wan_down"  # answers, but the mobile link is not connected
    SIM_ABSENT = "sim_absent"  # answers, but reports no SIM
    CAPPED = "capped"  # the SIM's month usage reached the data cap
    UNREACHABLE = "unreachable"  # the management interface does not answer
    UNREADABLE = "unreadable"  # answers, but refuses our login or gives replies we cannot read


@dataclass(frozen=True, slots=True)
class HealthState:
    """One router's health and what damping remembers; every field is a plain persistable value.

    `pending` is the condition seen on every observation since `pending_since` that differs from
    `state`; `last_at` is the last observation counted, so late or repeated results are ignored.
    """

    router_id: str
    state: Health
    since: datetime  # when `state` was entered
    pending: Health | None = None
    pending_since: datetime | None = None
    last_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, with the reason an operator reads."""

    router_id: str
    at: datetime
    from_state: Health
    to_state: Health
    reason: str
