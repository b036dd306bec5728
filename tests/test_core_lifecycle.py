"""Alert lifecycle and group outages, alone and driven by the health machine and the rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.health import HealthRules, observe
from monitor.core.lifecycle import (
    Advance,
    OutageRules,
    advance,
    advance_all,
    group_outages,
)
from monitor.core.rules import AlertRules, RouterFacts, evaluate
from monitor.model import (
    Alert,
    AlertState,
    Condition,
    Device,
    DeviceKind,
    DeviceStatus,
    FailureKind,
    HealthState,
    LinkState,
    MonthUsage,
    PollFailure,
    PollResult,
    Router,
    Rule,
    Sample,
    Severity,
    SimState,
    SupportRequestKind,
    alert_fingerprint,
    episode_id,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
RULES = AlertRules()
OUTAGE = OutageRules()


def at(minutes: float) -> datetime:
    return T0 + minutes * MINUTE


def offline(
    router_id: str = "r-1", since: datetime | None = T0, org: str = "school-1", **notes: str
) -> Condition:
    return Condition(
        Rule.ROUTER_OFFLINE,
        Severity.CRITICAL,
        15 * MINUTE,
        router_id=router_id,
        organisation_id=org,
        since=since,
        annotations=notes,
        request=SupportRequestKind.CONNECTIVITY_SUPPORT,
    )


def run(steps: Iterable[tuple[float, Condition | None]]) -> list[Advance]:
    """Advance one alert through (minute, condition) evaluations."""
    alert: Alert | None = None
    seen = []
    for minute, condition in steps:
        step = advance(alert, condition, at(minute))
        alert = step.alert
        seen.append(step)
    return seen


def test_pending_then_firing_from_the_onset() -> None:
    pending, still, fired, again = run(
        [(1, offline()), (14, offline()), (15, offline()), (16, offline())]
    )
    assert (pending.previous, pending.alert.state) == (AlertState.INACTIVE, AlertState.PENDING)
    assert pending.changed
    assert not pending.fired
    assert still.alert.state is AlertState.PENDING
    assert not still.changed
    assert fired.fired
    assert fired.alert.starts_at == at(15)
    fingerprint = alert_fingerprint(Rule.ROUTER_OFFLINE, "r-1")
    assert fired.alert.fingerprint == fingerprint
    assert fired.alert.episode_id == episode_id(fingerprint, at(15))
    assert fired.alert.raises_request
    assert not again.changed
    assert not again.updated
    assert again.alert.episode_id == fired.alert.episode_id


def test_a_late_first_evaluation_fires_at_once_with_the_same_episode() -> None:
    # After a restart that lost alert state, the onset still comes from persisted health.
    (late,) = run([(40, offline())])
    (fired,) = run([(15, offline())])
    assert late.alert.state is AlertState.FIRING
    assert late.alert.episode_id == fired.alert.episode_id
    assert late.alert.starts_at == at(15)


def test_pending_that_clears_goes_inactive_without_an_episode() -> None:
    _, cleared, stays = run([(1, offline()), (5, None), (6, None)])
    assert cleared.alert.state is AlertState.INACTIVE
    assert cleared.changed
    assert cleared.alert.episode_id is None
    assert cleared.alert.active_since is None
    assert stays.alert == cleared.alert
    assert not stays.changed


def test_firing_resolves_and_a_recurrence_is_a_new_episode() -> None:
    steps = run(
        [
            (15, offline()),
            (20, None),
            (25, None),
            (30, offline(since=at(30))),
            (45, offline(since=at(30))),
        ]
    )
    first, resolved, quiet, pending, second = steps
    assert resolved.alert.state is AlertState.RESOLVED
    assert resolved.alert.ends_at == at(20)
    assert resolved.alert.episode_id == first.alert.episode_id  # a resolution names its episode
    assert quiet.alert is resolved.alert
    assert not quiet.changed
    assert pending.alert.state is AlertState.PENDING
    assert pending.alert.ends_at is None
    assert second.fired
    assert second.alert.episode_id != first.alert.episode_id


def test_a_recurrence_never_starts_before_the_last_episode_ended() -> None:
    # An onset that predates the resolution (a stale fact) must not reuse the old episode.
    first, _, second = run([(15, offline()), (20, None), (21, offline(since=T0))])
    assert second.alert.state is AlertState.PENDING
    assert second.alert.active_since == at(20)
    (refired,) = run([(15, offline())])
    assert refired.alert.episode_id == first.alert.episode_id


def test_unknown_onset_counts_from_first_sight() -> None:
    zero = replace(offline(since=None), fire_after=10 * MINUTE)
    first, later, fired = run([(3, zero), (8, zero), (13, zero)])
    assert first.alert.active_since == at(3)
    assert later.alert.state is AlertState.PENDING
    assert later.alert.active_since == at(3)
    assert fired.fired
    assert fired.alert.starts_at == at(13)


def test_firing_alert_follows_what_the_condition_says() -> None:
    first, second = offline(level="80%"), offline(level="90%")
    _, same, changed, held = run(
        [(15, first), (16, first), (17, second), (18, replace(second, held_back=True))]
    )
    assert not same.updated
    assert changed.updated
    assert changed.alert.annotations["level"] == "90%"
    assert held.updated
    assert held.alert.held_back
    assert not held.alert.raises_request


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="previous alert or a condition"):
        advance(None, None, T0)
    alert = advance(None, offline("r-1"), T0).alert
    with pytest.raises(ValueError, match="fed a condition"):
        advance(alert, offline("r-2"), T0)
    with pytest.raises(ValueError, match="two conditions"):
        advance_all({}, [offline(), offline()], T0)


def test_advance_all_resolves_what_no_longer_holds() -> None:
    first = {
        s.alert.fingerprint: s.alert for s in advance_all({}, [offline("a"), offline("b")], at(15))
    }
    second = advance_all(first, [offline("b")], at(16))
    states = {s.alert.router_id: s.alert.state for s in second}
    assert states == {"a": AlertState.RESOLVED, "b": AlertState.FIRING}


# Driven end to end through the pure pieces: health machine -> rules -> lifecycle.

Poll = PollResult


def fleet_router(router_id: str = "r-1", status: DeviceStatus = DeviceStatus.IN_USE) -> Router:
    device = Device(f"SN-{router_id}", DeviceKind.ROUTER, "school-1", "ORD-42", status=status)
    return Router(router_id, device, iccid="8944110000000000001")


def simulate(
    polls: Iterable[Poll], target: Router | None = None, usage: MonthUsage | None = None
) -> list[Advance]:
    """Feed polls through health, rules and lifecycle as the daemon will; every advance."""
    target = target or fleet_router()
    health: HealthState | None = None
    alerts: dict[str, Alert] = {}
    seen: list[Advance] = []
    capped = usage is not None and usage.total >= RULES.cap_bytes
    for poll in polls:
        health, _ = observe(health, poll, capped, HealthRules())
        facts = RouterFacts(target, health, usage)
        for step in advance_all(alerts, evaluate(facts, poll.at, RULES), poll.at):
            alerts[step.alert.fingerprint] = step.alert
            seen.append(step)
    return seen


def fired(steps: Iterable[Advance]) -> list[Rule]:
    return [s.alert.rule for s in steps if s.fired]


def ok(minute: float) -> Sample:
    return Sample("r-1", at(minute), sim=SimState.READY, link=LinkState.CONNECTED)


def silent(minute: float) -> PollFailure:
    return PollFailure("r-1", at(minute), FailureKind.TIMEOUT, "no reply")


def test_flapping_link_never_fires() -> None:
    # Down 9 minutes, up 3, for four hours: health changes state each time, the alert never fires.
    polls: list[Poll] = [silent(m) if m % 12 < 9 else ok(m) for m in range(240)]
    steps = simulate(polls)
    assert {s.alert.state for s in steps} >= {AlertState.PENDING}
    assert fired(steps) == []


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=14), min_size=1, max_size=12))
def test_flapping_spells_shorter_than_the_for_duration_never_fire(spells: list[int]) -> None:
    # Each outage is under 15 minutes from the first silent poll to the first answer, and each
    # recovery lasts health's 2 minutes: the alert is evaluated while health still says down.
    polls: list[Poll] = []
    minute = 0
    for length in spells:
        polls += [silent(minute + m) for m in range(length)]
        polls += [ok(minute + length + m) for m in range(3)]
        minute += length + 3
    assert fired(simulate(polls)) == []


def test_long_outage_fires_once_after_fifteen_minutes_unreachable() -> None:
    steps = simulate([ok(0), *(silent(m) for m in range(1, 40)), *(ok(m) for m in range(40, 45))])
    (firing,) = [s for s in steps if s.fired]
    assert firing.alert.rule is Rule.ROUTER_OFFLINE
    assert firing.alert.starts_at == at(16)
    assert [s.alert.state for s in steps if s.changed][-1] is AlertState.RESOLVED


def test_capped_then_offline_raises_no_offline_alert() -> None:
    capped = MonthUsage("r-1", "8944110000000000001", "2026-11", RULES.cap_bytes, 0, False, T0)
    steps = simulate([ok(0), ok(1), *(silent(m) for m in range(2, 60))], usage=capped)
    assert fired(steps) == [Rule.DATA_CAP_REACHED]
    assert not any(s.alert.rule is Rule.ROUTER_OFFLINE for s in steps)


def test_sim_removed_then_reinserted_fires_then_resolves() -> None:
    removed = [
        Sample("r-1", at(m), sim=SimState.ABSENT, link=LinkState.DISCONNECTED) for m in range(1, 12)
    ]
    steps = simulate([ok(0), *removed, *(ok(m) for m in range(12, 20))])
    (firing,) = [s for s in steps if s.fired]
    assert firing.alert.rule is Rule.SIM_REMOVED
    assert firing.alert.request is SupportRequestKind.REACTIVATE_SIM
    resolved = [s for s in steps if s.changed and s.alert.state is AlertState.RESOLVED]
    assert [s.alert.episode_id for s in resolved] == [firing.alert.episode_id]
    assert resolved[0].alert.ends_at == at(14)  # SIM back at 12, plus health's 2 min recovery


def test_lost_router() -> None:
    stolen = fleet_router(status=DeviceStatus.STOLEN)
    steps = simulate([ok(0), *(silent(m) for m in range(1, 60))], target=stolen)
    assert fired(steps) == [Rule.ROUTER_LOST_OR_STOLEN]
    (firing,) = [s.alert for s in steps if s.fired]
    assert firing.request is SupportRequestKind.DEACTIVATE_SIM
    assert firing.starts_at == at(0)


# Group outages.


def test_mass_outage_raises_one_group_alert() -> None:
    conditions = [offline(f"r-{n}", at(n)) for n in range(6)] + [offline("x-1", T0, org="school-2")]
    alerts: dict[str, Alert] = {}
    for minute in (6, 20):
        grouped = group_outages(conditions, alerts, at(minute), OUTAGE)
        for step in advance_all(alerts, grouped, at(minute)):
            alerts[step.alert.fingerprint] = step.alert
    requests = [a for a in alerts.values() if a.raises_request]
    group = alerts[alert_fingerprint(Rule.ORGANISATION_OUTAGE, organisation_id="school-1")]
    assert group.state is AlertState.FIRING
    assert group.starts_at == at(15)
    assert group.annotations["routers"] == "6"
    assert group.annotations["router_ids"] == "r-0, r-1, r-2, r-3, r-4, r-5"
    assert [a.router_id or a.organisation_id for a in requests] == ["x-1", "school-1"]
    held = [a for a in alerts.values() if a.held_back]
    assert len(held) == 6
    assert all(a.state is AlertState.FIRING for a in held)


@pytest.mark.parametrize(
    ("onsets", "grouped"),
    [
        ([0, 1, 2, 3], False),  # too few
        ([0, 1, 2, 3, 10], True),  # five within the 10 minute window
        ([0, 1, 2, 3, 11], False),  # the fifth came too late
        ([0, 30, 31, 32, 33, 34], True),  # an earlier, unrelated fault is not part of it
    ],
)
def test_group_threshold_and_window(onsets: list[int], grouped: bool) -> None:
    conditions = [offline(f"r-{i}", at(m)) for i, m in enumerate(onsets)]
    result = group_outages(conditions, {}, at(40), OUTAGE)
    groups = [c for c in result if c.rule is Rule.ORGANISATION_OUTAGE]
    assert len(groups) == int(grouped)
    held = {c.router_id for c in result if c.held_back}
    if onsets[0] == 0 and onsets[1] == 30:
        assert held == {f"r-{i}" for i in range(1, 6)}
        assert groups[0].since == at(30)
    else:
        assert len(held) == (len(onsets) if grouped else 0)


def test_outage_lasts_while_any_member_is_down_and_takes_in_late_joiners() -> None:
    members = [offline(f"r-{n}", at(n)) for n in range(5)]
    previous = {
        s.alert.fingerprint: s.alert
        for s in advance_all({}, group_outages(members, {}, at(20), OUTAGE), at(20))
    }
    late = offline("r-9", at(45))
    result = group_outages([members[4], late], previous, at(50), OUTAGE)
    assert [c.rule for c in result if c.held_back] == [Rule.ROUTER_OFFLINE] * 2
    (group,) = [c for c in result if c.rule is Rule.ORGANISATION_OUTAGE]
    assert group.since == T0
    assert group.annotations["routers"] == "2"
    assert group_outages([offline("r-0", at(-5))], previous, at(60), OUTAGE) == [
        offline("r-0", at(-5))
    ]


def test_group_lists_at_most_max_listed_routers() -> None:
    conditions = [offline(f"r-{n:02d}", at(n / 10)) for n in range(25)]
    result = group_outages(conditions, {}, at(20), OUTAGE)
    assert result[-1].annotations["router_ids"].endswith("r-19 ...")
    assert result[-1].annotations["routers"] == "25"


def test_other_rules_and_onset_free_conditions_group_sensibly() -> None:
    battery = Condition(
        Rule.BATTERY_LOW, Severity.WARNING, MINUTE, router_id="b", organisation_id="school-1"
    )
    conditions = [battery, *(offline(f"r-{n}", None) for n in range(5))]
    result = group_outages(conditions, {}, at(3), OUTAGE)
    assert not result[0].held_back
    assert result[-1].since == at(3)  # unknown onsets count as now


def test_outage_rules_need_two_routers() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        OutageRules(min_routers=1)


@pytest.mark.parametrize(("clearing", "fires"), [(14, False), (15, True), (None, True)])
def test_a_spell_that_cleared_before_it_was_due_never_fires(
    clearing: float | None, fires: bool
) -> None:
    condition = replace(offline(), clearing_since=None if clearing is None else at(clearing))
    (step,) = run([(16, condition)])
    assert step.alert.state is (AlertState.FIRING if fires else AlertState.PENDING)


def test_a_fingerprint_needs_a_router_or_an_organisation() -> None:
    with pytest.raises(ValueError, match="needs a router or an organisation"):
        alert_fingerprint(Rule.ROUTER_OFFLINE)
    by_router = alert_fingerprint(Rule.ROUTER_OFFLINE, "x")
    assert by_router != alert_fingerprint(Rule.ROUTER_OFFLINE, organisation_id="x")
    assert by_router != alert_fingerprint(Rule.ROUTER_WAN_DOWN, "x")
    assert len(by_router) == 16


def test_a_member_that_raised_its_own_request_is_not_held_back_later() -> None:
    # r-0's own for-duration (10 min, configurable) ran out before the others were seen down:
    # it fired with its own request. When the group forms with r-0 in it, r-0 keeps that request
    # (and so resolves it itself); holding it back would leave the request open for ever.
    early = replace(offline("r-0", at(0)), fire_after=10 * MINUTE)
    alerts: dict[str, Alert] = {}
    for step in advance_all(alerts, group_outages([early], alerts, at(10), OUTAGE), at(10)):
        alerts[step.alert.fingerprint] = step.alert
    assert alerts[early.fingerprint].raises_request
    members = [early] + [offline(f"r-{n}", at(n + 3)) for n in range(1, 6)]
    grouped = group_outages(members, alerts, at(12), OUTAGE)
    assert [c.rule for c in grouped if c.organisation_id and not c.router_id] == [
        Rule.ORGANISATION_OUTAGE
    ]
    held = {c.router_id for c in grouped if c.held_back}
    assert held == {f"r-{n}" for n in range(1, 6)}
