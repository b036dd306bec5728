"""Per-router exposition: grouped by family as the text format requires, replaced per router."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import INFO_LABELS, GcPauses, RouterSeries


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    parsed: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return parsed


def test_routers_interleave_into_one_group_per_family() -> None:
    series = RouterSeries()
    series.update("r-1", [("router_up", "", 1), ("router_state", 'state="online"', 1)])
    series.update("r-2", [("router_up", "", 0), ("router_data_month_used_bytes", "", 2**40)])
    text = series.render()
    assert text.count("# TYPE router_up gauge") == 1
    parsed = families(text)
    assert parsed["router_up"] == {(("router", "r-1"),): 1.0, (("router", "r-2"),): 0.0}
    assert parsed["router_data_month_used_bytes"] == {(("router", "r-2"),): float(2**40)}
    assert "1099511627776" in text  # whole bytes, not 1.099e+12
    assert parsed["router_state"] == {(("router", "r-1"), ("state", "online")): 1.0}


def test_update_replaces_and_remove_forgets() -> None:
    series = RouterSeries()
    series.update("r-1", [("router_up", "", 1), ("router_signal_rssi_dbm", "", -67.5)])
    series.update("r-1", [("router_up", "", 0)])  # no signal any more: its line goes
    assert families(series.render()) == {"router_up": {(("router", "r-1"),): 0.0}}
    series.remove("r-1")
    assert series.render() == ""


def test_label_values_are_escaped() -> None:
    series = RouterSeries()
    series.update('odd"\\id', [("router_up", "", 1)])
    assert families(series.render())["router_up"] == {(("router", 'odd"\\id'),): 1.0}


def test_info_survives_state_updates_and_leaves_with_the_router() -> None:
    series = RouterSeries()
    series.set_info("r-1", {"imei": "356938035643809", "model": 'odd "model"\n'})
    series.update("r-1", [("router_up", "", 1)])
    series.update("r-1", [("router_up", "", 0)])  # a state update does not touch the info
    info = {
        (("firmware", ""), ("iccid", ""), ("imei", "356938035643809"),
         ("local_authority", ""), ("model", 'odd "model"\n'), ("organisation", ""),
         ("router", "r-1")): 1.0,
    }  # fmt: skip
    assert families(series.render())["router_info"] == info
    assert series.routers == {"r-1"}
    series.remove("r-1")
    assert series.render() == ""
    assert series.routers == set()


def test_router_info_is_not_a_state_line() -> None:
    with pytest.raises(ValueError, match="set_info"):
        RouterSeries().update("r-1", [("router_info", "", 1)])


# Operations on a few routers, in any order, with renders in between (which keep joined texts).
_ROUTER = st.sampled_from(["r-1", "r-2", "r-3", "r-4", "r-5"])
_SAMPLES = st.lists(
    st.tuples(
        st.sampled_from(["router_up", "router_uptime_seconds", "router_signal_rssi_dbm"]),
        st.integers(-3, 3),
    ),
    max_size=3,
    unique_by=lambda sample: sample[0],
)
_OPERATION = st.one_of(
    st.tuples(st.just("update"), _ROUTER, _SAMPLES),
    st.tuples(st.just("info"), _ROUTER, st.sampled_from(["e5576", "rut240"])),
    st.tuples(st.just("remove"), _ROUTER, st.none()),
    st.tuples(st.just("render"), st.none(), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(operations=st.lists(_OPERATION, max_size=60), piece=st.integers(1, 3))
def test_pieces_render_what_a_plain_table_would(
    operations: list[tuple[str, str | None, Any]], piece: int
) -> None:
    """Pieces, their moves and their kept texts are invisible: every render equals the series
    a plain table of every router's latest lines gives (the model, written separately)."""
    series = RouterSeries(piece=piece)
    state: dict[str, dict[str, float]] = {}  # router -> family -> value
    info: dict[str, str] = {}  # router -> model

    def check() -> None:
        text = series.render()
        expected: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for name, families_of in state.items():
            for family, value in families_of.items():
                expected.setdefault(family, {})[(("router", name),)] = value
        for name, model in info.items():
            labels = {label: "" for label in INFO_LABELS} | {"model": model, "router": name}
            expected.setdefault("router_info", {})[tuple(sorted(labels.items()))] = 1.0
        assert families(text) == expected
        shown = [
            (sample.name, tuple(sorted(sample.labels.items())))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
        assert len(shown) == len(set(shown))  # no series twice, whatever its value
        assert set(series.routers) == set(state) | set(info)
        assert series.pieces <= len(series.routers) + 1  # emptied pieces are dropped

    for operation, router, argument in operations:
        if operation == "update" and router is not None:
            series.update(router, [(family, "", value) for family, value in argument])
            state[router] = {family: float(value) for family, value in argument}
        elif operation == "info" and router is not None:
            series.set_info(router, {"model": argument})
            info[router] = argument
        elif operation == "remove" and router is not None:
            series.remove(router)
            state.pop(router, None)
            info.pop(router, None)
        else:
            check()  # a scrape, after any number of changes since the last
    check()


def test_gc_pauses_are_timed_while_installed_only() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)

    def full_collections() -> float:
        value = registry.get_sample_value(
            "router_monitor_gc_pause_seconds_count", {"generation": "2"}
        )
        return value or 0.0

    pauses.install()
    try:
        gc.collect()
        gc.collect()
    finally:
        pauses.remove()
    assert full_collections() == 2
    assert registry.get_sample_value("router_monitor_gc_pause_seconds_sum", {"generation": "2"})
    gc.collect()
    assert full_collections() == 2
    pauses.remove()  # twice is harmless
