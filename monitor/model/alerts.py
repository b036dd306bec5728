"""Alert values: rules, what a rule found (`Condition`), an alert's lifecycle state (`Alert`).

Every field is a plain value, so an `Alert` is persisted as it stands and a restart resumes from
it. Identity is deliberately boring and deterministic:

- the fingerprint names *what* is wrong with *what*: rule + router, or rule + organisation for a
  group outage, so the same problem keeps one identity across evaluations and restarts;
- the episode id names *one occurrence* of it: fingerprint + the instant it started firing, so a
  process that recomputes it after a restart gets the same id (the support portal's correlation
  id), and a problem that clears and comes back gets a new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Rule(StrEnum):
    """The alert rules; the value is the `alertname` notifiers send."""

    ROUTER_OFFLINE = "router_offline"
    ROUTER_WAN_DOWN = "router_wan_down"
    SIM_REMOVED = "sim_removed"
    DATA_CAP_WARNING = "data_cap_warning"
    DATA_CAP_REACHED = "data_cap_reached"
    BATTERY_LOW = "battery_low"
    ROUTER_LOST_OR_STOLEN = "router_lost_or_stolen"
    SUPPORT_REQUEST_OVERDUE = "support_request_overdue"
    ORGANISATION_OUTAGE = "organisation_outage"  # many routers of one organisation offline


class Severity(StrEnum):
    """How urgently a person should look (the `severity` label)."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertState(StrEnum):
    """Where an alert is in its life: inactive -> pending -> firing -> resolved."""

    INACTIVE = "inactive"  # the condition cleared before it had held for its for-duration
    PENDING = "pending"  # the condition holds, not yet for its for-duration
    FIRING = "firing"
    RESOLVED = "resolved"  # it fired, then the condition cleared


class SupportRequestKind(StrEnum):
    """The requests the support portal offers (support guidance, "Checking 4G router status")."""

    CONNECTIVITY_SUPPORT = "connectivity_support"
    REACTIVATE_SIM = "reactivate_sim"
    DEACTIVATE_SIM = "deactivate_sim"
    DATA_CAP_REACHED = "data_cap_reached"
    REPLACE_ROUTER = "replace_router"
    RECONFIGURE_ROUTER = "reconfigure_router"


def alert_fingerprint(
    rule: Rule, router_id: str | None = None, organisation_id: str | None = None
) -> str:
    """The stable identity of `rule` about one router (or, without one, one organisation)."""
    if router_id is not None:
        subject = f"router:{router_id}"
    elif organisation_id is not None:
        subject = f"organisation:{organisation_id}"
    else:
        raise ValueError(f"{rule} needs a router or an organisation")
    # Hashed so that ids of any spelling give a fixed-length, label-safe value.
    return hashlib.sha256(f"{rule.value}|{subject}".encode()).hexdigest()[:16]


def episode_id(fingerprint: str, starts_at: datetime) -> str:
    """One firing episode's id: the fingerprint plus the instant (UTC) it started firing."""
    return f"{fingerprint}-{starts_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"


@dataclass(frozen=True, slots=True)
class Condition:
    """What a rule found holding at one evaluation (rule output, lifecycle input).

    `since` is when the condition began, where the facts say so (a health state's onset);
    None means "unknown": the lifecycle then counts from the first evaluation that saw it.
    """

    rule: Rule
    severity: Severity
    fire_after: timedelta  # the for-duration, counted from `since`
    router_id: str | None = None
    organisation_id: str | None = None
    since: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    request: SupportRequestKind | None = None  # the support request this calls for, if any
    held_back: bool = False  # part of a group outage: the group's request stands for it
    # Seen clearing since then, not yet for long enough to count as cleared (health's recovery
    # damping): a spell that ended before it was due never fires, however late it is evaluated.
    clearing_since: datetime | None = None

    @property
    def fingerprint(self) -> str:
        """The identity of the alert this condition feeds."""
        return alert_fingerprint(self.rule, self.router_id, self.organisation_id)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert's persisted lifecycle state.

    `active_since` is when the current pending-or-firing spell began; `starts_at` when it began
    firing; `ends_at` when it resolved. `episode_id` is set from the moment it fires and kept,
    with `starts_at` and `ends_at`, after it resolves, so a resolution can still be delivered.
    """

    fingerprint: str
    rule: Rule
    state: AlertState
    severity: Severity
    updated_at: datetime
    router_id: str | None = None
    organisation_id: str | None = None
    active_since: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    episode_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    request: SupportRequestKind | None = None
    held_back: bool = False

    @property
    def raises_request(self) -> bool:
        """Whether this alert, firing, should have a support request of its own."""
        return self.state is AlertState.FIRING and self.request is not None and not self.held_back


@dataclass(frozen=True, slots=True)
class Advance:
    """One alert after an evaluation, and what changed (what the caller persists and sends)."""

    alert: Alert
    previous: AlertState  # `inactive` for an alert seen for the first time
    updated: bool = False  # still firing, but what it says changed (worth a work note)

    @property
    def changed(self) -> bool:
        """Whether the state moved (pending, fired, resolved, went inactive)."""
        return self.alert.state is not self.previous

    @property
    def fired(self) -> bool:
        """Whether a new episode began firing at this evaluation."""
        return self.changed and self.alert.state is AlertState.FIRING
