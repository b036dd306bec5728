"""Per-router exposition: grouped by family as the text format requires, replaced per router."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import RouterSeries


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
