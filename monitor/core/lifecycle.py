"""Alert lifecycle: inactive -> pending -> firing -> resolved, and group outages.

`advance()` folds one evaluation's condition (or its absence) into an alert's persisted state.
A condition fires once it has held for its for-duration counted from its onset (`since`), so
a flapping link, whose every spell is shorter than that, stays pending and never fires; a spell
that is already clearing (`clearing_since`) counts only up to when it began to clear. Firing
starts at `since + fire_after`, not at the evaluation that noticed it, and the episode id is
derived from that instant: a restart that lost the state, or evaluates later than usual,
recomputes the same id, and the support portal sees the same correlation id.

`group_outages()` runs between rules and lifecycle: when many routers of one organisation lose
connectivity within a short window, the cause is shared (a mast, a power cut, the school's
network), so one outage condition is raised for the organisation and the routers' own
conditions are marked held back: they still alert on-call, but raise no request of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.core.rules import CONNECTIVITY_CHECKS
from monitor.model import (
    Advance,
    Alert,
    AlertState,
    Condition,
    Rule,
    Severity,
    SupportRequestKind,
    alert_fingerprint,
    episode_id,
)

_ACTIVE = frozenset({AlertState.PENDING, AlertState.FIRING})


def advance(previous: Alert | None, condition: Condition | None, now: datetime) -> Advance:
    """Fold one evaluation at `now` into an alert: `condition` holds, or (None) it does not."""
    if condition is None:
        if previous is None:
            raise ValueError("advance() needs a previous alert or a condition")
        return Advance(_cleared(previous, now), previous.state)
    fingerprint = condition.fingerprint
    if previous is not None and previous.fingerprint != fingerprint:
        raise ValueError(f"alert {previous.fingerprint} fed a condition of {fingerprint}")
    before = AlertState.INACTIVE if previous is None else previous.state
    if previous is not None and previous.state is AlertState.FIRING:
        refreshed = _refreshed(previous, condition, now)
        return Advance(refreshed, before, _content(previous) != _content(refreshed))

    if condition.since is not None:
        since = condition.since
    elif previous is not None and previous.state is AlertState.PENDING and previous.active_since:
        since = previous.active_since
    else:
        since = now  # onset unknown: count from the first evaluation that saw it
    if previous is not None and previous.ends_at is not None:
        # A new spell never starts before the last one ended, so its episode id is new.
        since = max(since, previous.ends_at)
    fires_at = since + condition.fire_after
    clearing = condition.clearing_since
    firing = now >= fires_at and (clearing is None or clearing >= fires_at)
    alert = Alert(
        fingerprint=fingerprint,
        rule=condition.rule,
        state=AlertState.FIRING if firing else AlertState.PENDING,
        severity=condition.severity,
        updated_at=now,
        router_id=condition.router_id,
        organisation_id=condition.organisation_id,
        active_since=since,
        starts_at=fires_at if firing else None,
        episode_id=episode_id(fingerprint, fires_at) if firing else None,
        labels=dict(condition.labels),
        annotations=dict(condition.annotations),
        request=condition.request,
        held_back=condition.held_back,
    )
    return Advance(alert, before)


def advance_all(
    previous: Mapping[str, Alert], conditions: Iterable[Condition], now: datetime
) -> list[Advance]:
    """Advance every alert known or newly found, keyed by fingerprint; one per fingerprint."""
    found: dict[str, Condition] = {}
    for condition in conditions:
        if condition.fingerprint in found:
            raise ValueError(f"two conditions for alert {condition.fingerprint}")
        found[condition.fingerprint] = condition
    advances = [advance(previous.get(key), condition, now) for key, condition in found.items()]
    advances += [advance(alert, None, now) for key, alert in previous.items() if key not in found]
    return advances


def _content(alert: Alert) -> tuple[object, ...]:
    return (
        alert.annotations,
        alert.held_back,
        alert.severity,
        alert.request,
        alert.organisation_id,
    )


def _cleared(previous: Alert, now: datetime) -> Alert:
    if previous.state is AlertState.FIRING:
        return replace(previous, state=AlertState.RESOLVED, ends_at=now, updated_at=now)
    if previous.state is AlertState.PENDING:
        # Never fired: nothing was sent, so nothing needs resolving and no episode is used up.
        return replace(previous, state=AlertState.INACTIVE, active_since=None, updated_at=now)
    return previous


def _refreshed(previous: Alert, condition: Condition, now: datetime) -> Alert:
    # The episode, its start and its onset stay; what the alert says follows the facts.
    return replace(
        previous,
        severity=condition.severity,
        updated_at=now,
        organisation_id=condition.organisation_id,  # a router reallocated mid-episode moves
        labels=dict(condition.labels),
        annotations=dict(condition.annotations),
        request=condition.request,
        held_back=condition.held_back,
    )


@dataclass(frozen=True, slots=True)
class OutageRules:
    """When routers of one organisation count as one outage (the `alerts.outage:` config keys)."""

    # Five routers of one school down together is rarely five separate faults; fewer is too
    # easily chance in a large trust.
    min_routers: int = 5
    # Onsets this close together count as one event. Keep window + the health damping within
    # the routers' own for-duration (10m + 5m <= 15m by default), so the group is known before
    # any member's own request would be raised.
    window: timedelta = timedelta(minutes=10)
    fire_after: timedelta = timedelta(minutes=15)  # from the first member's onset, as a router
    rules: frozenset[Rule] = frozenset({Rule.ROUTER_OFFLINE, Rule.ROUTER_WAN_DOWN})
    max_listed: int = 20  # router ids named in the annotation; the count is always given

    def __post_init__(self) -> None:
        if self.min_routers < 2:
            raise ValueError("an outage needs at least 2 routers (min_routers)")


def group_outages(
    conditions: Sequence[Condition],
    previous: Mapping[str, Alert],
    now: datetime,
    rules: OutageRules,
) -> list[Condition]:
    """The conditions with group outages added and their members marked held back."""
    by_org: dict[str, list[Condition]] = {}
    for condition in conditions:
        if condition.rule in rules.rules and condition.organisation_id is not None:
            by_org.setdefault(condition.organisation_id, []).append(condition)
    held: set[str] = set()
    groups: list[Condition] = []
    for org, members in sorted(by_org.items()):
        fingerprint = alert_fingerprint(Rule.ORGANISATION_OUTAGE, organisation_id=org)
        start = _outage_start(members, previous.get(fingerprint), now, rules)
        if start is None:
            continue
        joined = sorted(
            (c for c in members if _onset(c, now) >= start), key=lambda c: c.router_id or ""
        )
        held.update(c.fingerprint for c in joined)
        groups.append(_outage(org, start, joined, rules))
    # A member that already raised its own request keeps it (and closes it itself): holding it
    # back now would leave that request without anyone to resolve it.
    held -= {fp for fp in held if _raised_own(previous.get(fp))}
    marked = [replace(c, held_back=True) if c.fingerprint in held else c for c in conditions]
    return marked + groups


def _raised_own(alert: Alert | None) -> bool:
    return (
        alert is not None
        and alert.state is AlertState.FIRING
        and alert.request is not None
        and not alert.held_back
    )


def _outage_start(
    members: Sequence[Condition], previous: Alert | None, now: datetime, rules: OutageRules
) -> datetime | None:
    """When the organisation's outage began, or None if there is none."""
    onsets = sorted(_onset(c, now) for c in members)
    if previous is not None and previous.state in _ACTIVE and previous.active_since is not None:
        # An outage under way lasts while any router that failed since it began is down: as
        # routers come back one by one, the last few must not each raise a request.
        start = previous.active_since
        if any(onset >= start for onset in onsets):
            return start
    need = rules.min_routers
    for first, last in zip(onsets, onsets[need - 1 :], strict=False):
        if last - first <= rules.window:
            return first
    return None


def _onset(condition: Condition, now: datetime) -> datetime:
    return condition.since if condition.since is not None else now


def _outage(
    org: str, start: datetime, members: Sequence[Condition], rules: OutageRules
) -> Condition:
    ids = [c.router_id for c in members if c.router_id is not None]
    listed = ", ".join(ids[: rules.max_listed]) + (" ..." if len(ids) > rules.max_listed else "")
    return Condition(
        Rule.ORGANISATION_OUTAGE,
        Severity.CRITICAL,
        rules.fire_after,
        organisation_id=org,
        since=start,
        labels={
            "alertname": Rule.ORGANISATION_OUTAGE.value,
            "organisation": org,
            "severity": Severity.CRITICAL.value,
        },
        annotations={"routers": str(len(ids)), "router_ids": listed, "checks": CONNECTIVITY_CHECKS},
        request=SupportRequestKind.CONNECTIVITY_SUPPORT,
    )
