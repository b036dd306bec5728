"""Alert rules: which conditions hold for one router, from what is known of it at `now`.

`evaluate()` reads a router's inventory record, its health state, its SIM's month so far (and
that month's forecast) and its latest sample, and returns a `Condition` for every rule that
holds. It decides *what* is wrong; the lifecycle (`monitor.core.lifecycle`) decides when that
has lasted long enough to fire. Precedence, and why:

- A router not in use (`monitored` off, in stock, faulty, replaced) raises nothing: nobody is
  relying on it, and an alert would ask someone to fix a device on a shelf.
- A lost or stolen router raises only `router_lost_or_stolen`: deactivating its SIM is the one
  useful action (guidance), and connectivity tickets for a device no one has would be wasted.
- A capped SIM raises `data_cap_reached` and never `router_offline`/`router_wan_down`: a capped
  SIM looks like a dead link, the cap cannot be raised, so a connectivity ticket is wasted.
- `data_cap_warning` gives way to `data_cap_reached`: one cap alert at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.core.calendar import cap_reset, month_end, month_key
from monitor.core.forecast import Forecast
from monitor.core.health import HealthRules
from monitor.core.sla import RESPONSE_WORKING_DAYS, due_at
from monitor.model import (
    Condition,
    DeviceStatus,
    Health,
    HealthState,
    MonthUsage,
    Router,
    Rule,
    Sample,
    Severity,
    SupportRequest,
    SupportRequestKind,
    SupportRequestState,
)

LONDON = ZoneInfo("Europe/London")
# The guidance's checks to try before reporting a connectivity fault, for the request and the
# on-call engineer alike, with its warning never to reset the router.
CONNECTIVITY_CHECKS = (
    "Before reporting a fault, ask the user to check: whether another device (such as a "
    "smartphone) has a connection, to rule out a problem in the local area; whether the SIM card "
    "has been removed (if so, put it back and try again); whether the laptop or tablet connects "
    "another way (free wifi, tethering to a phone); and clearing the web browser's cache. "
    "Do not reset the router: that stops both the router and the SIM working."
)
CAP_ADVICE = (
    "The data limit cannot be increased. The allowance resets on the first day of next month; "
    "until then, use data only for remote education, with Standard Definition (SD) video "
    "selected where possible."
)


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds and for-durations of the rules (the `alerts:` config keys)."""

    cap_bytes: int = 20 * 10**9  # the programme's 20GB a month (decimal), as in config
    zone: ZoneInfo = LONDON  # calendar months, and so the cap's reset, are Europe/London
    # The health durations in force, to date a condition from its real onset: health enters a
    # state only after the condition has held for that state's damping.
    health: HealthRules = field(default_factory=HealthRules)
    # Unreachable this long (from the last answer) is an outage, not a reboot, a cell reselection
    # or a school's power cut over lunch; also longer than the group window, so an
    # organisation-wide outage is known before any router's own request is due.
    offline_after: timedelta = timedelta(minutes=15)
    wan_down_after: timedelta = timedelta(minutes=15)  # same reasoning, router still answers
    # Time for a user who took the SIM out to put it back (guidance: put it back and retry).
    sim_removed_after: timedelta = timedelta(minutes=5)
    cap_warning_ratios: tuple[float, ...] = (0.8, 0.9)  # the 80% and 90%
    # A "low" confidence forecast rests on under 3 days of history or a partial month: warning
    # on it would cry wolf on the 2nd of every month.
    forecast_confidence: frozenset[str] = frozenset({"medium", "high"})
    battery_low_percent: int = 15  # where most routers start warning themselves
    battery_low_after: timedelta = timedelta(minutes=10)  # ride out a reading while unplugging
    sample_max_age: timedelta = timedelta(minutes=10)  # an older sample says nothing about now
    # The programme aims to respond within 3 working days (guidance); England's bank holidays.
    response_working_days: int = RESPONSE_WORKING_DAYS
    holiday_region: str = "ENG"


@dataclass(frozen=True, slots=True)
class RouterFacts:
    """What is known of one router when the rules are evaluated."""

    router: Router
    health: HealthState | None = None
    usage: MonthUsage | None = None  # its SIM's month so far (what the cap counts)
    forecast: Forecast | None = None  # that month projected to its end
    sample: Sample | None = None  # the latest sample, for the battery


_SEVERITY = {
    Rule.ROUTER_OFFLINE: Severity.CRITICAL,
    Rule.ROUTER_WAN_DOWN: Severity.CRITICAL,
    Rule.SIM_REMOVED: Severity.CRITICAL,
    Rule.DATA_CAP_WARNING: Severity.INFO,
    Rule.DATA_CAP_REACHED: Severity.WARNING,
    Rule.BATTERY_LOW: Severity.WARNING,
    Rule.ROUTER_LOST_OR_STOLEN: Severity.WARNING,
    Rule.SUPPORT_REQUEST_OVERDUE: Severity.WARNING,
}
_REQUEST = {
    Rule.ROUTER_OFFLINE: SupportRequestKind.CONNECTIVITY_SUPPORT,
    Rule.ROUTER_WAN_DOWN: SupportRequestKind.CONNECTIVITY_SUPPORT,
    Rule.SIM_REMOVED: SupportRequestKind.REACTIVATE_SIM,
    Rule.DATA_CAP_REACHED: SupportRequestKind.DATA_CAP_REACHED,
    Rule.ROUTER_LOST_OR_STOLEN: SupportRequestKind.DEACTIVATE_SIM,
}
_LOST = frozenset({DeviceStatus.LOST, DeviceStatus.STOLEN})


def evaluate(facts: RouterFacts, now: datetime, rules: AlertRules) -> list[Condition]:
    """Every condition that holds for one router at `now`."""
    router = facts.router
    status = router.device.status
    if not router.monitored or status not in _LOST | {DeviceStatus.IN_USE}:
        return []
    if status in _LOST:
        notes = {"status": status.value}
        return [_condition(router, Rule.ROUTER_LOST_OR_STOLEN, timedelta(0), notes)]
    found: list[Condition] = []
    health = facts.health
    capped = health is not None and health.state is Health.CAPPED
    usage = facts.usage
    if usage is not None and usage.month != month_key(now, rules.zone):
        usage = None  # last month's count: the cap has reset since
    capped = capped or (usage is not None and usage.total >= rules.cap_bytes)
    if capped:
        found.append(_capped(router, health, now, rules))
    elif usage is not None:
        found.extend(_cap_warning(router, usage, facts.forecast, rules))
    if health is not None:
        found.extend(_from_health(router, health, capped, rules))
    sample = facts.sample
    if (
        sample is not None
        and sample.battery_percent is not None
        and sample.battery_percent <= rules.battery_low_percent
        and sample.charging is not True
        and now - sample.at <= rules.sample_max_age
    ):
        notes = {"battery": f"{sample.battery_percent}%"}
        found.append(_condition(router, Rule.BATTERY_LOW, rules.battery_low_after, notes))
    return found


def onset(health: HealthState, rules: HealthRules) -> datetime:
    """When the condition behind a health state began: its entry less the damping it waited."""
    if health.state is Health.UNKNOWN:
        return health.since  # a first sighting, not a damped change
    return health.since - rules.after(health.state)


def _from_health(
    router: Router, health: HealthState, capped: bool, rules: AlertRules
) -> list[Condition]:
    began = onset(health, rules.health)
    noticed = began.astimezone(rules.zone).isoformat()
    if health.state is Health.SIM_ABSENT:
        notes = {"absent_since": noticed}
        condition = _condition(router, Rule.SIM_REMOVED, rules.sim_removed_after, notes, began)
        return [replace(condition, clearing_since=_clearing(health))]
    if capped:
        return []
    if health.state is Health.UNREACHABLE:
        rule, after = Rule.ROUTER_OFFLINE, rules.offline_after
    elif health.state is Health.WAN_DOWN:
        rule, after = Rule.ROUTER_WAN_DOWN, rules.wan_down_after
    else:
        return []
    notes = {"down_since": noticed, "checks": CONNECTIVITY_CHECKS}
    condition = _condition(router, rule, after, notes, began)
    return [replace(condition, clearing_since=_clearing(health))]


def _clearing(health: HealthState) -> datetime | None:
    """Since when health has seen something else, not yet long enough to leave its state."""
    return health.pending_since if health.pending is not None else None


def _capped(
    router: Router, health: HealthState | None, now: datetime, rules: AlertRules
) -> Condition:
    reset = cap_reset(now, rules.zone).astimezone(rules.zone)
    # Health's entry into `capped` is a persisted, stable instant; the month's update time is not.
    since = health.since if health is not None and health.state is Health.CAPPED else None
    notes = {
        "resets_at": reset.isoformat(),
        "resets_on": f"{reset.day} {reset:%B %Y}, 00:00 UK time",
        "cannot_be_raised": "true",
        "advice": CAP_ADVICE,
    }
    notes["cap_bytes"] = str(rules.cap_bytes)
    return _condition(router, Rule.DATA_CAP_REACHED, timedelta(0), notes, since)


def _cap_warning(
    router: Router, usage: MonthUsage, forecast: Forecast | None, rules: AlertRules
) -> list[Condition]:
    ratio = usage.total / rules.cap_bytes
    crossed = [level for level in rules.cap_warning_ratios if ratio >= level]
    notes = {"cap_bytes": str(rules.cap_bytes)}
    if crossed:
        notes["level"] = f"{max(crossed):.0%}"
    end = month_end(usage.month, rules.zone)
    if (
        forecast is not None
        and forecast.cap_reached_at is not None
        and forecast.cap_reached_at < end
        and forecast.confidence in rules.forecast_confidence
    ):
        notes["forecast_cap_reached_on"] = (
            f"{forecast.cap_reached_at.astimezone(rules.zone):%Y-%m-%d}"
        )
        notes["forecast_basis"] = forecast.basis
        notes.setdefault("level", "forecast")
    if "level" not in notes:
        return []
    return [_condition(router, Rule.DATA_CAP_WARNING, timedelta(0), notes)]


def _condition(
    router: Router,
    rule: Rule,
    fire_after: timedelta,
    annotations: dict[str, str],
    since: datetime | None = None,
) -> Condition:
    severity = _SEVERITY[rule]
    device = router.device
    labels = {
        "alertname": rule.value,
        "router": router.id,
        "organisation": device.organisation_id,
        "severity": severity.value,
    }
    # Every request must quote the order number and the IMEI (guidance), so every alert does.
    notes = {"order_number": device.order_number, **annotations}
    if device.imei is not None:
        notes["imei"] = device.imei
    if router.iccid is not None:
        notes["iccid"] = router.iccid
    return Condition(
        rule,
        severity,
        fire_after,
        router_id=router.id,
        organisation_id=device.organisation_id,
        since=since,
        labels=labels,
        annotations=notes,
        request=_REQUEST.get(rule),
    )


def overdue(
    requests: Iterable[SupportRequest], now: datetime, rules: AlertRules
) -> list[Condition]:
    """A condition per router (or organisation) with a portal request unanswered past its due.

    A request counts from when the portal accepted it (`opened_at`) until the first sign of
    the support team working on it (`responded_at`); the due instant is `response_working_days`
    working days later (monitor.core.sla). The earliest overdue request speaks for its subject.
    """
    found: dict[str, Condition] = {}
    for request in sorted(requests, key=lambda r: (r.opened_at or now, r.correlation_id)):
        if (
            request.state is not SupportRequestState.OPEN
            or request.opened_at is None
            or request.responded_at is not None
        ):
            continue
        due = due_at(
            request.opened_at, rules.response_working_days, rules.zone, rules.holiday_region
        )
        if now < due:
            continue
        rule = Rule.SUPPORT_REQUEST_OVERDUE
        severity = _SEVERITY[rule]
        labels = {"alertname": rule.value, "severity": severity.value}
        if request.router_id is not None:
            labels["router"] = request.router_id
        if request.organisation_id is not None:
            labels["organisation"] = request.organisation_id
        notes = {
            "request": request.portal_number or request.correlation_id,
            "correlation_id": request.correlation_id,
            "kind": request.kind.value,
            "opened_at": request.opened_at.astimezone(rules.zone).isoformat(),
            "due_at": due.astimezone(rules.zone).isoformat(),
            "summary": (
                f"No response from the support portal within {rules.response_working_days} "
                "working days (the programme's aim); chase it quoting the request number."
            ),
        }
        for key, value in (("order_number", request.order_number), ("imei", request.imei)):
            if value:
                notes[key] = value
        condition = Condition(
            rule,
            severity,
            timedelta(0),
            router_id=request.router_id,
            organisation_id=request.organisation_id,
            since=due,
            labels=labels,
            annotations=notes,
        )
        if request.router_id is None and request.organisation_id is None:
            continue  # nothing to identify it by; cannot happen for requests we raise
        found.setdefault(condition.fingerprint, condition)
    return list(found.values())
