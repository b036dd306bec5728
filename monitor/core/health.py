"""Per-router health: a damped state machine fed one poll result at a time.

A 4G link that drops for a poll or two must not page anyone, so a router changes state only after
a new condition has been seen on every observation for that condition's for-duration; a condition
that clears sooner leaves the state as it was. What each poll result counts as evidence for:

- `PollFailure` timeout/refused: `unreachable` (the management interface does not answer).
- `PollFailure` auth/bad_reply/unsupported: `unreadable`. The router answers, so calling it
  unreachable would send an engineer after a power or coverage fault that is not there, and
  keeping the old state would hide a wrong password or a firmware change for ever; it is a
  fault of ours (credentials, profile) more often than the user's, hence its own state.
- `Sample`: `sim_absent` if the SIM is out, else `wan_down` unless the link is connected, else
  `online`. A link the profile does not report counts as up: the router answered and nothing
  shows a fault.
- `capped` (from the usage core) outranks everything but an absent SIM: a capped SIM often looks
  like a dead link or a silent router, and the guidance says the cap cannot be lifted, so a
  connectivity ticket would be wasted. An absent SIM is a fault the school can fix (put it back,
  or reactivate it through the portal), so it is shown even on a capped SIM.

A router seen for the first time starts in `unknown` and leaves it by the same rules: one poll
is no more evidence for a new router than for an old one. After a restart the persisted state
carries on, so no transition is raised again for a router already in that state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.model import (
    FailureKind,
    Health,
    HealthState,
    LinkState,
    PollFailure,
    PollResult,
    Sample,
    SimState,
    Transition,
)


@dataclass(frozen=True, slots=True)
class HealthRules:
    """How long a condition must persist before the state changes (the `health:` config keys)."""

    # Long enough to ride out a cell reselection or a router reboot (~2 min) on a 60 s poll.
    unreachable_after: timedelta = timedelta(minutes=5)
    # A 4G re-attach normally takes well under a minute; 3 minutes is a real outage.
    wan_down_after: timedelta = timedelta(minutes=3)
    # A SIM reported absent is rarely a misreading; short, not zero, to ride out a modem reset.
    sim_absent_after: timedelta = timedelta(minutes=1)
    # The usage core already decided; there is nothing to debounce.
    capped_after: timedelta = timedelta(0)
    # HiLink sessions expire and lock out for minutes, and the user's link is unaffected.
    unreadable_after: timedelta = timedelta(minutes=10)
    # Consecutive good polls needed to call a router online again.
    recovery_after: timedelta = timedelta(minutes=2)
    # After entering online, stay there at least this long (0 = off): stops up/down cycling from
    # raising a transition pair every few minutes, at the cost of seeing the next fault later.
    recovery_hold: timedelta = timedelta(0)

    def after(self, state: Health) -> timedelta:
        """The for-duration of a condition."""
        return {
            Health.UNREACHABLE: self.unreachable_after,
            Health.WAN_DOWN: self.wan_down_after,
            Health.SIM_ABSENT: self.sim_absent_after,
            Health.CAPPED: self.capped_after,
            Health.UNREADABLE: self.unreadable_after,
            Health.ONLINE: self.recovery_after,
        }[state]


_UNREACHABLE_KINDS = frozenset({FailureKind.TIMEOUT, FailureKind.REFUSED})


def observe(
    previous: HealthState | None, result: PollResult, capped: bool, rules: HealthRules
) -> tuple[HealthState, Transition | None]:
    """Fold one poll result (observed at `result.at`) into a router's health."""
    at = result.at
    if previous is None:
        previous = HealthState(result.router_id, Health.UNKNOWN, at)
    elif previous.router_id != result.router_id:
        raise ValueError(f"health of {previous.router_id} fed a result of {result.router_id}")
    elif previous.last_at is not None and at <= previous.last_at:
        # A late or repeated result: counting it could move `since` backwards.
        return previous, None
    seen = _condition(result, capped)
    if seen is previous.state:
        return replace(previous, pending=None, pending_since=None, last_at=at), None
    started = previous.pending_since if seen is previous.pending else None
    started = at if started is None else started
    held = previous.state is Health.ONLINE and at - previous.since < rules.recovery_hold
    if held or at - started < rules.after(seen):
        return replace(previous, pending=seen, pending_since=started, last_at=at), None
    reason = _reason(previous.state, seen, result, at - started)
    return (
        HealthState(result.router_id, seen, at, last_at=at),
        Transition(result.router_id, at, previous.state, seen, reason),
    )


def time_in_state(state: HealthState, now: datetime) -> timedelta:
    """How long the router has been in its state (never negative if clocks disagree)."""
    return max(now - state.since, timedelta(0))


def _condition(result: PollResult, capped: bool) -> Health:
    if isinstance(result, Sample) and result.sim is SimState.ABSENT:
        return Health.SIM_ABSENT
    if capped:
        return Health.CAPPED
    if isinstance(result, PollFailure):
        return Health.UNREACHABLE if result.kind in _UNREACHABLE_KINDS else Health.UNREADABLE
    if result.link in (LinkState.CONNECTED, LinkState.UNKNOWN):
        return Health.ONLINE
    return Health.WAN_DOWN


def _reason(before: Health, after: Health, result: PollResult, lasted: timedelta) -> str:
    took = format_duration(lasted)
    if after is Health.CAPPED:
        return "data cap reached"
    if after is Health.SIM_ABSENT:
        return "SIM removed"
    if isinstance(result, PollFailure):
        if after is Health.UNREACHABLE:
            return f"no answer for {took} ({result.kind.value})"
        return f"answers but cannot be read for {took} ({result.kind.value})"
    if after is Health.WAN_DOWN:
        sim = "" if result.sim in (SimState.READY, SimState.UNKNOWN) else f" (SIM {result.sim})"
        return f"mobile link down for {took}{sim}"
    return _RECOVERED.get(before, "answers again") + f", link up for {took}"


_RECOVERED = {
    Health.UNKNOWN: "answers",
    Health.WAN_DOWN: "mobile link back",
    Health.SIM_ABSENT: "SIM back",
    Health.CAPPED: "no longer capped",
}


def format_duration(span: timedelta) -> str:
    """A span as an operator reads it: 5m, 1m30s, 2h5m, 0s (whole seconds, rounded down)."""
    seconds = max(int(span.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"
