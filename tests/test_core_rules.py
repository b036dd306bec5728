"""Alert rules: which conditions hold per router, precedence, thresholds and annotations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.forecast import Forecast
from monitor.core.rules import AlertRules, RouterFacts, evaluate, onset
from monitor.model import (
    Device,
    DeviceKind,
    DeviceStatus,
    Health,
    HealthState,
    MonthUsage,
    Router,
    Rule,
    Sample,
    SupportRequestKind,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = AlertRules()
CAP = RULES.cap_bytes
MINUTE = timedelta(minutes=1)


def router(
    status: DeviceStatus = DeviceStatus.IN_USE,
    *,
    imei: str | None = "356938035643809",
    iccid: str | None = "8944110000000000001",
    monitored: bool = True,
) -> Router:
    device = Device("SN-1", DeviceKind.ROUTER, "school-1", "ORD-42", imei=imei, status=status)
    return Router("r-1", device, iccid=iccid, monitored=monitored)


def health(state: Health, since: datetime = T0 - 30 * MINUTE) -> HealthState:
    return HealthState("r-1", state, since)


def usage(total: int, month: str = "2026-11") -> MonthUsage:
    return MonthUsage("r-1", "8944110000000000001", month, total, 0, False, T0)


def rules_of(facts: RouterFacts, now: datetime = T0) -> list[Rule]:
    return [c.rule for c in evaluate(facts, now, RULES)]


def one(facts: RouterFacts, now: datetime = T0) -> dict[str, str]:
    (condition,) = evaluate(facts, now, RULES)
    return condition.annotations


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (Health.ONLINE, []),
        (Health.UNKNOWN, []),
        (Health.UNREADABLE, []),  # our credentials or profile, not the user's fault
        (Health.UNREACHABLE, [Rule.ROUTER_OFFLINE]),
        (Health.WAN_DOWN, [Rule.ROUTER_WAN_DOWN]),
        (Health.SIM_ABSENT, [Rule.SIM_REMOVED]),
        (Health.CAPPED, [Rule.DATA_CAP_REACHED]),
    ],
)
def test_health_states_map_to_rules(state: Health, expected: list[Rule]) -> None:
    assert rules_of(RouterFacts(router(), health(state))) == expected


@pytest.mark.parametrize(
    ("rule", "state", "request_kind", "fire_after"),
    [
        (Rule.ROUTER_OFFLINE, Health.UNREACHABLE, SupportRequestKind.CONNECTIVITY_SUPPORT, 15),
        (Rule.ROUTER_WAN_DOWN, Health.WAN_DOWN, SupportRequestKind.CONNECTIVITY_SUPPORT, 15),
        (Rule.SIM_REMOVED, Health.SIM_ABSENT, SupportRequestKind.REACTIVATE_SIM, 5),
    ],
)
def test_health_conditions_date_from_the_real_onset(
    rule: Rule, state: Health, request_kind: SupportRequestKind, fire_after: int
) -> None:
    state_ = health(state, T0 - 10 * MINUTE)
    (condition,) = evaluate(RouterFacts(router(), state_), T0, RULES)
    # Health entered the state only after its damping, so the condition began that much earlier.
    assert condition.since == T0 - 10 * MINUTE - RULES.health.after(state)
    assert condition.since == onset(state_, RULES.health)
    assert condition.request is request_kind
    assert condition.fire_after == fire_after * MINUTE
    assert condition.router_id == "r-1"
    assert condition.organisation_id == "school-1"


def test_connectivity_conditions_carry_the_guidance_checks() -> None:
    notes = one(RouterFacts(router(), health(Health.UNREACHABLE, T0 - 10 * MINUTE)))
    assert "another device" in notes["checks"]
    assert "Do not reset the router" in notes["checks"]
    assert notes["down_since"] == "2026-11-28T11:45:00+00:00"  # entry less 5m of damping


def test_every_alert_quotes_order_number_imei_and_iccid() -> None:
    (condition,) = evaluate(RouterFacts(router(), health(Health.WAN_DOWN)), T0, RULES)
    assert condition.annotations["order_number"] == "ORD-42"
    assert condition.annotations["imei"] == "356938035643809"
    assert condition.annotations["iccid"] == "8944110000000000001"
    assert condition.labels == {
        "alertname": "router_wan_down",
        "router": "r-1",
        "organisation": "school-1",
        "severity": "critical",
    }


def test_unknown_imei_and_iccid_are_left_out_not_blank() -> None:
    notes = one(RouterFacts(router(imei=None, iccid=None), health(Health.WAN_DOWN)))
    assert "imei" not in notes
    assert "iccid" not in notes


@pytest.mark.parametrize(
    ("state", "damping"),
    [(Health.UNKNOWN, 0), (Health.ONLINE, 2), (Health.UNREACHABLE, 5), (Health.CAPPED, 0)],
)
def test_onset_is_entry_less_damping(state: Health, damping: int) -> None:
    assert onset(health(state, T0), RULES.health) == T0 - damping * MINUTE


@pytest.mark.parametrize("state", [Health.UNREACHABLE, Health.WAN_DOWN, Health.ONLINE])
def test_capped_router_is_never_also_offline(state: Health) -> None:
    assert rules_of(RouterFacts(router(), health(state), usage(CAP))) == [Rule.DATA_CAP_REACHED]


def test_removed_sim_is_shown_even_when_capped() -> None:
    facts = RouterFacts(router(), health(Health.SIM_ABSENT), usage(CAP + 1))
    assert rules_of(facts) == [Rule.DATA_CAP_REACHED, Rule.SIM_REMOVED]


@pytest.mark.parametrize(
    ("now", "resets_at", "resets_on"),
    [
        (T0, "2026-12-01T00:00:00+00:00", "1 December 2026, 00:00 UK time"),
        (
            datetime(2026, 7, 31, 23, 30, tzinfo=UTC),  # already 1 August in London (BST)
            "2026-09-01T00:00:00+01:00",
            "1 September 2026, 00:00 UK time",
        ),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            "2027-01-01T00:00:00+00:00",
            "1 January 2027, 00:00 UK time",
        ),
    ],
)
def test_cap_reached_says_when_it_resets_and_that_it_cannot_be_raised(
    now: datetime, resets_at: str, resets_on: str
) -> None:
    month = f"{now.astimezone(RULES.zone):%Y-%m}"
    condition = evaluate(RouterFacts(router(), None, usage(CAP, month)), now, RULES)[0]
    assert condition.rule is Rule.DATA_CAP_REACHED
    assert condition.request is SupportRequestKind.DATA_CAP_REACHED
    assert condition.annotations["resets_at"] == resets_at
    assert condition.annotations["resets_on"] == resets_on
    assert condition.annotations["cannot_be_raised"] == "true"
    assert "Standard Definition (SD) video" in condition.annotations["advice"]
    assert condition.since is None  # no stable onset known: counted from first sight


def test_cap_reached_dates_from_the_health_transition() -> None:
    (condition,) = evaluate(RouterFacts(router(), health(Health.CAPPED, T0)), T0, RULES)
    assert condition.since == T0


def test_last_months_usage_does_not_count_against_this_months_cap() -> None:
    assert rules_of(RouterFacts(router(), health(Health.ONLINE), usage(CAP, "2026-10"))) == []


@pytest.mark.parametrize(
    ("ratio", "level"),
    [(0.5, None), (0.799, None), (0.8, "80%"), (0.85, "80%"), (0.9, "90%"), (0.999, "90%")],
)
def test_cap_warning_levels(ratio: float, level: str | None) -> None:
    conditions = evaluate(RouterFacts(router(), None, usage(int(CAP * ratio))), T0, RULES)
    assert [c.annotations.get("level") for c in conditions] == ([level] if level else [])


def projection(reached: datetime | None, confidence: str = "medium") -> Forecast:
    return Forecast(CAP, reached, confidence, "recent rate")


@pytest.mark.parametrize(
    ("forecast", "level"),
    [
        (projection(T0 + timedelta(days=1)), "forecast"),
        (projection(T0 + timedelta(days=1), "high"), "forecast"),
        (projection(T0 + timedelta(days=1), "low"), None),  # too little history to cry wolf
        (projection(T0 + timedelta(days=3)), None),  # next month: the cap will have reset
        (projection(None), None),
        (None, None),
    ],
)
def test_cap_warning_on_forecast(forecast: Forecast | None, level: str | None) -> None:
    facts = RouterFacts(router(), None, usage(CAP // 2), forecast)
    conditions = evaluate(facts, T0, RULES)
    assert [c.annotations.get("level") for c in conditions] == ([level] if level else [])
    if level:
        assert conditions[0].annotations["forecast_cap_reached_on"] == "2026-11-29"


def test_a_crossed_threshold_outranks_the_forecast_as_the_level() -> None:
    facts = RouterFacts(router(), None, usage(int(CAP * 0.9)), projection(T0 + MINUTE))
    notes = one(facts)
    assert notes["level"] == "90%"
    assert notes["forecast_cap_reached_on"] == "2026-11-28"


@pytest.mark.parametrize("status", [DeviceStatus.LOST, DeviceStatus.STOLEN])
def test_lost_or_stolen_router_only_asks_for_its_sim_to_be_deactivated(
    status: DeviceStatus,
) -> None:
    facts = RouterFacts(router(status), health(Health.UNREACHABLE), usage(CAP))
    (condition,) = evaluate(facts, T0, RULES)
    assert condition.rule is Rule.ROUTER_LOST_OR_STOLEN
    assert condition.request is SupportRequestKind.DEACTIVATE_SIM
    assert condition.fire_after == timedelta(0)
    assert condition.annotations["status"] == status.value


@pytest.mark.parametrize(
    "target",
    [
        router(DeviceStatus.IN_STOCK),
        router(DeviceStatus.FAULTY),
        router(DeviceStatus.REPLACED),
        router(monitored=False),
    ],
)
def test_routers_not_in_use_raise_nothing(target: Router) -> None:
    assert rules_of(RouterFacts(target, health(Health.UNREACHABLE), usage(CAP))) == []


@pytest.mark.parametrize(
    ("percent", "charging", "age", "fires"),
    [
        (10, False, 0, True),
        (15, None, 5, True),
        (16, False, 0, False),
        (10, True, 0, False),  # plugged in: it is recovering
        (10, False, 11, False),  # an old sample says nothing about now
        (None, False, 0, False),
    ],
)
def test_battery_low(percent: int | None, charging: bool | None, age: int, fires: bool) -> None:
    sample = Sample("r-1", T0 - age * MINUTE, battery_percent=percent, charging=charging)
    facts = RouterFacts(router(), health(Health.ONLINE), sample=sample)
    assert rules_of(facts) == ([Rule.BATTERY_LOW] if fires else [])


@given(
    state=st.sampled_from(Health),
    total=st.integers(min_value=0, max_value=2 * CAP),
    battery=st.none() | st.integers(min_value=0, max_value=100),
)
def test_capped_excludes_connectivity_and_conditions_are_distinct(
    state: Health, total: int, battery: int | None
) -> None:
    sample = Sample("r-1", T0, battery_percent=battery)
    facts = RouterFacts(router(), health(state), usage(total), sample=sample)
    conditions = evaluate(facts, T0, RULES)
    found = {c.rule for c in conditions}
    assert len(found) == len(conditions)
    if total >= CAP or state is Health.CAPPED:
        assert Rule.DATA_CAP_REACHED in found
        assert not found & {Rule.ROUTER_OFFLINE, Rule.ROUTER_WAN_DOWN, Rule.DATA_CAP_WARNING}
    assert all(c.since is None or c.since <= T0 for c in conditions)


def test_a_recovery_under_way_is_passed_on_as_clearing() -> None:
    state = HealthState("r-1", Health.UNREACHABLE, T0, pending=Health.ONLINE, pending_since=T0)
    (condition,) = evaluate(RouterFacts(router(), state), T0 + MINUTE, RULES)
    assert condition.clearing_since == T0
    (steady,) = evaluate(RouterFacts(router(), health(Health.UNREACHABLE)), T0, RULES)
    assert steady.clearing_since is None
