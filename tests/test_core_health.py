"""Health state machine: transitions and reasons, for-durations, flap damping, persistence."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.health import (
    Health,
    HealthRules,
    HealthState,
    Transition,
    format_duration,
    observe,
    time_in_state,
)
from monitor.model import FailureKind, LinkState, PollFailure, PollResult, Sample, SimState

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = HealthRules()
MINUTE = timedelta(minutes=1)
Make = Callable[[datetime], PollResult]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def up(when: datetime, link: LinkState = LinkState.CONNECTED) -> Sample:
    return Sample("r-1", when, sim=SimState.READY, link=link)


def down(when: datetime, sim: SimState = SimState.READY) -> Sample:
    return Sample("r-1", when, sim=sim, link=LinkState.DISCONNECTED)


def no_sim(when: datetime) -> Sample:
    return Sample("r-1", when, sim=SimState.ABSENT, link=LinkState.DISCONNECTED)


def failed(when: datetime, kind: FailureKind = FailureKind.TIMEOUT) -> PollFailure:
    return PollFailure("r-1", when, kind, "no answer within 10s")


def settled(state: Health) -> HealthState:
    """A router that has been in `state` for an hour, last polled a minute before T0."""
    return HealthState("r-1", state, T0 - timedelta(hours=1), last_at=T0 - MINUTE)


def run(
    start: HealthState | None,
    results: Iterable[PollResult],
    capped: bool = False,
    rules: HealthRules = RULES,
) -> tuple[HealthState | None, list[Transition]]:
    state, transitions = start, []
    for result in results:
        state, transition = observe(state, result, capped, rules)
        if transition is not None:
            transitions.append(transition)
    return state, transitions


def every_minute(make: Make, minutes: int) -> list[PollResult]:
    return [make(at(m)) for m in range(minutes + 1)]


@pytest.mark.parametrize(
    ("start", "make", "capped", "after", "to", "reason"),
    [
        (Health.ONLINE, failed, False, 5, Health.UNREACHABLE, "no answer for 5m (timeout)"),
        (
            Health.ONLINE,
            lambda t: failed(t, FailureKind.REFUSED),
            False,
            5,
            Health.UNREACHABLE,
            "no answer for 5m (refused)",
        ),
        *[
            (
                Health.ONLINE,
                lambda t, k=kind: failed(t, k),
                False,
                10,
                Health.UNREADABLE,
                f"answers but cannot be read for 10m ({kind})",
            )
            for kind in (FailureKind.AUTH, FailureKind.BAD_REPLY, FailureKind.UNSUPPORTED)
        ],
        (Health.ONLINE, down, False, 3, Health.WAN_DOWN, "mobile link down for 3m"),
        (
            Health.ONLINE,
            lambda t: up(t, LinkState.CONNECTING),
            False,
            3,
            Health.WAN_DOWN,
            "mobile link down for 3m",
        ),
        (
            Health.ONLINE,
            lambda t: down(t, SimState.PIN_LOCKED),
            False,
            3,
            Health.WAN_DOWN,
            "mobile link down for 3m (SIM pin_locked)",
        ),
        (Health.ONLINE, no_sim, False, 1, Health.SIM_ABSENT, "SIM removed"),
        (Health.ONLINE, up, True, 0, Health.CAPPED, "data cap reached"),
        (Health.WAN_DOWN, down, True, 0, Health.CAPPED, "data cap reached"),
        (Health.UNREACHABLE, failed, True, 0, Health.CAPPED, "data cap reached"),
        (Health.CAPPED, no_sim, True, 1, Health.SIM_ABSENT, "SIM removed"),
        (Health.UNREACHABLE, up, False, 2, Health.ONLINE, "answers again, link up for 2m"),
        (Health.UNREADABLE, up, False, 2, Health.ONLINE, "answers again, link up for 2m"),
        (Health.WAN_DOWN, up, False, 2, Health.ONLINE, "mobile link back, link up for 2m"),
        (Health.SIM_ABSENT, up, False, 2, Health.ONLINE, "SIM back, link up for 2m"),
        (Health.CAPPED, up, False, 2, Health.ONLINE, "no longer capped, link up for 2m"),
        # A profile that does not read the link: the router answers and shows no fault.
        (
            Health.UNREACHABLE,
            lambda t: up(t, LinkState.UNKNOWN),
            False,
            2,
            Health.ONLINE,
            "answers again, link up for 2m",
        ),
        (Health.UNREACHABLE, down, False, 3, Health.WAN_DOWN, "mobile link down for 3m"),
    ],
)
def test_each_transition_and_its_reason(
    start: Health, make: Make, capped: bool, after: int, to: Health, reason: str
) -> None:
    state, transitions = run(settled(start), every_minute(make, 30), capped)
    assert transitions == [Transition("r-1", at(after), start, to, reason)]
    assert state == HealthState("r-1", to, at(after), last_at=at(30))


def test_new_router_waits_for_evidence_like_any_other() -> None:
    first, transition = observe(None, up(T0), False, RULES)
    assert transition is None
    assert first == HealthState("r-1", Health.UNKNOWN, T0, Health.ONLINE, T0, T0)
    state, transitions = run(first, every_minute(up, 5)[1:])
    assert transitions == [
        Transition("r-1", at(2), Health.UNKNOWN, Health.ONLINE, "answers, link up for 2m")
    ]
    assert state is not None
    assert state.state is Health.ONLINE


def test_new_capped_router_is_capped_at_once() -> None:
    state, transition = observe(None, up(T0), True, RULES)
    assert state.state is Health.CAPPED
    assert transition == Transition("r-1", T0, Health.UNKNOWN, Health.CAPPED, "data cap reached")


RULE_FIELDS = [f.name for f in dataclasses.fields(HealthRules) if f.name != "recovery_hold"]
CONDITIONS: dict[str, tuple[Health, Make, bool]] = {
    "unreachable_after": (Health.ONLINE, failed, False),
    "unreadable_after": (Health.ONLINE, lambda t: failed(t, FailureKind.AUTH), False),
    "wan_down_after": (Health.ONLINE, down, False),
    "sim_absent_after": (Health.ONLINE, no_sim, False),
    "capped_after": (Health.ONLINE, up, True),
    "recovery_after": (Health.UNREACHABLE, up, False),
}


@pytest.mark.parametrize("field", RULE_FIELDS)
def test_for_duration_is_respected_exactly_at_the_boundary(field: str) -> None:
    start, make, capped = CONDITIONS[field]
    after = timedelta(seconds=90)
    rules = dataclasses.replace(RULES, **{field: after})
    state, _ = observe(settled(start), make(T0), capped, rules)
    state, transition = observe(state, make(T0 + after - timedelta(microseconds=1)), capped, rules)
    assert transition is None
    assert state.state is start
    state, transition = observe(state, make(T0 + after), capped, rules)
    assert transition is not None
    assert transition.at == T0 + after
    assert state.state is not start


def test_condition_that_clears_in_time_leaves_state_unchanged() -> None:
    state, transitions = run(settled(Health.ONLINE), [failed(at(0)), failed(at(4)), up(at(5))])
    assert transitions == []
    assert state == dataclasses.replace(settled(Health.ONLINE), last_at=at(5))


def test_a_different_fault_restarts_the_count() -> None:
    results: list[PollResult] = [down(at(0)), down(at(2)), failed(at(3)), down(at(4)), down(at(6))]
    state, transitions = run(settled(Health.ONLINE), results)
    assert transitions == []
    assert state is not None
    assert (state.pending, state.pending_since) == (Health.WAN_DOWN, at(4))


@pytest.mark.parametrize(("good", "bad"), [(up, down), (up, failed), (down, failed)])
def test_flapping_link_never_leaves_its_state(good: Make, bad: Make) -> None:
    results = [(good if m % 2 else bad)(at(m)) for m in range(61)]
    start = settled(Health.ONLINE if good is up else Health.WAN_DOWN)
    state, transitions = run(start, results)
    assert transitions == []
    assert state is not None
    assert state.state is start.state


def test_sustained_outage_transitions_once_and_recovers_once() -> None:
    outage = [failed(at(m)) for m in range(60)]
    state, transitions = run(settled(Health.ONLINE), [*outage, *[up(at(m)) for m in range(60, 70)]])
    assert [(t.at, t.to_state) for t in transitions] == [
        (at(5), Health.UNREACHABLE),
        (at(62), Health.ONLINE),
    ]
    assert state is not None
    assert time_in_state(state, at(70)) == timedelta(minutes=8)


def test_restart_with_persisted_state_raises_no_fresh_transition() -> None:
    before = HealthState("r-1", Health.UNREACHABLE, at(-30), last_at=at(-10))
    state, transitions = run(before, every_minute(failed, 10))
    assert transitions == []
    assert state == dataclasses.replace(before, last_at=at(10))


def test_late_or_repeated_result_is_ignored() -> None:
    state, _ = observe(settled(Health.ONLINE), failed(T0), False, RULES)
    assert observe(state, failed(T0), False, RULES) == (state, None)
    assert observe(state, up(T0), False, RULES) == (state, None)
    assert observe(state, up(T0 - MINUTE), False, RULES) == (state, None)


def test_result_of_another_router_is_refused() -> None:
    other = PollFailure("r-2", T0, FailureKind.TIMEOUT, "no answer")
    with pytest.raises(ValueError, match="r-1 fed a result of r-2"):
        observe(settled(Health.ONLINE), other, False, RULES)


def test_recovery_hold_delays_the_next_fault_until_it_ends() -> None:
    rules = HealthRules(recovery_hold=timedelta(minutes=10))
    results = [*[up(at(m)) for m in range(3)], *[down(at(m)) for m in range(3, 20)]]
    _, transitions = run(settled(Health.WAN_DOWN), results, rules=rules)
    # Online at 2m; the link drops at 3m and has been down 3m by 6m, but the hold runs to 12m.
    assert [(t.at, t.to_state, t.reason) for t in transitions] == [
        (at(2), Health.ONLINE, "mobile link back, link up for 2m"),
        (at(12), Health.WAN_DOWN, "mobile link down for 9m"),
    ]


def test_time_in_state_is_never_negative() -> None:
    state = settled(Health.ONLINE)
    assert time_in_state(state, state.since + MINUTE) == MINUTE
    assert time_in_state(state, state.since - MINUTE) == timedelta(0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (-5, "0s"), (59.9, "59s"), (300, "5m"), (90, "1m30s"), (7500, "2h5m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


# --- properties ---------------------------------------------------------------------------

FAILURES = {kind.value for kind in FailureKind}
KINDS = ["up", "link_unknown", "down", "no_sim", *sorted(FAILURES)]


def make_result(kind: str, when: datetime) -> PollResult:
    if kind in FAILURES:
        return failed(when, FailureKind(kind))
    return {
        "up": up,
        "link_unknown": lambda t: up(t, LinkState.UNKNOWN),
        "down": down,
        "no_sim": no_sim,
    }[kind](when)


def expected_condition(kind: str, capped: bool) -> Health:
    """The test's own reading of the precedence rules, independent of the module's."""
    if kind == "no_sim":
        return Health.SIM_ABSENT
    if capped:
        return Health.CAPPED
    if kind in (FailureKind.TIMEOUT, FailureKind.REFUSED):
        return Health.UNREACHABLE
    if kind in FAILURES:
        return Health.UNREADABLE
    return Health.WAN_DOWN if kind == "down" else Health.ONLINE


# Runs: (seconds since the previous poll, what the poll shows, capped), often repeated.
observations = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=400),
        st.sampled_from(KINDS),
        st.booleans(),
    ).flatmap(lambda o: st.lists(st.just(o), min_size=1, max_size=8)),
    max_size=30,
).map(lambda runs: [o for run_ in runs for o in run_])
rule_sets = st.builds(
    HealthRules,
    **{
        name: st.integers(min_value=0, max_value=900).map(lambda s: timedelta(seconds=s))
        for name in RULE_FIELDS
    },
)


def timeline(obs: list[tuple[int, str, bool]]) -> list[tuple[PollResult, bool]]:
    when, out = T0, []
    for gap, kind, capped in obs:
        when += timedelta(seconds=gap)
        out.append((make_result(kind, when), capped))
    return out


@given(observations, rule_sets)
def test_states_change_only_after_consistent_evidence(
    obs: list[tuple[int, str, bool]], rules: HealthRules
) -> None:
    state: HealthState | None = None
    seen: list[tuple[datetime, Health]] = []
    for result, capped in timeline(obs):
        before = state
        state, transition = observe(state, result, capped, rules)
        condition = expected_condition(
            result.kind if isinstance(result, PollFailure) else kind_of(result), capped
        )
        seen.append((result.at, condition))
        assert state.since <= result.at
        assert state.last_at == result.at
        if transition is None:
            assert before is None or state.state is before.state
            # Liveness: a condition that has lasted its for-duration has been acted on.
            if state.state is not condition:
                assert result.at - run_start(seen) < rules.after(condition)
            continue
        assert transition.to_state is condition is state.state
        assert (transition.at, state.since) == (result.at, result.at)
        assert transition.from_state is (Health.UNKNOWN if before is None else before.state)
        # Safety: every observation over the for-duration showed the new condition.
        assert result.at - run_start(seen) >= rules.after(condition)


def kind_of(sample: Sample) -> str:
    if sample.sim is SimState.ABSENT:
        return "no_sim"
    return "down" if sample.link is LinkState.DISCONNECTED else "up"


def run_start(seen: list[tuple[datetime, Health]]) -> datetime:
    """When the latest unbroken run of one condition began."""
    start, last = seen[-1]
    for when, condition in reversed(seen):
        if condition is not last:
            break
        start = when
    return start


def to_row(state: HealthState) -> dict[str, str | datetime | None]:
    """What a DB row would hold: plain strings and datetimes."""
    return {
        name: str(value) if isinstance(value, Health) else value
        for name, value in dataclasses.asdict(state).items()
    }


def from_row(row: dict[str, str | datetime | None]) -> HealthState:
    def when(name: str) -> datetime | None:
        value = row[name]
        assert value is None or isinstance(value, datetime)
        return value

    since = when("since")
    assert since is not None
    return HealthState(
        router_id=str(row["router_id"]),
        state=Health(str(row["state"])),
        since=since,
        pending=None if row["pending"] is None else Health(str(row["pending"])),
        pending_since=when("pending_since"),
        last_at=when("last_at"),
    )


@given(observations, rule_sets)
def test_persistence_round_trip_changes_nothing(
    obs: list[tuple[int, str, bool]], rules: HealthRules
) -> None:
    plain: HealthState | None = None
    stored: HealthState | None = None
    for result, capped in timeline(obs):
        plain, expected = observe(plain, result, capped, rules)
        reloaded = None if stored is None else from_row(to_row(stored))
        assert reloaded == stored
        stored, transition = observe(reloaded, result, capped, rules)
        assert (stored, transition) == (plain, expected)
