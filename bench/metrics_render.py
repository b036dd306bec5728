"""Cost of the per-router exposition at fleet scale (issue 6): 100k routers x every family.

Run: .venv/bin/python bench/metrics_render.py [routers]
Prints wall time (time.perf_counter) for: rendering every router's state lines once (what polls
do, spread over an interval), every router's `router_info`, one scrape's concatenation, and the
tracker's per-cycle inventory comparison with nothing changed and with 1% of routers changed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from monitor import store
from monitor.core.health import HealthRules
from monitor.metrics import RouterSample, RouterSeries
from monitor.model import (
    Device,
    DeviceKind,
    Endpoint,
    Health,
    Organisation,
    OrganisationKind,
    Protocol,
    Router,
)
from monitor.tracking import Tracker, TrackingRules

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()


def state_lines(number: int) -> list[RouterSample]:
    """Every per-router family but router_info, with values that vary by router."""
    lines: list[RouterSample] = [
        ("router_up", "", 1),
        ("router_connected", "", 1),
        ("router_sim_present", "", 1),
        ("router_state_since_timestamp_seconds", "", NOW - number),
        ("router_data_month_used_bytes", "", 1_234_567_890 + number),
        ("router_data_month_partial", "", 0),
        ("router_data_month_forecast_bytes", "", 9_876_543_210.5 + number),
        ("router_data_cap_bytes", "", 20 * 10**9),
        ("router_signal_rssi_dbm", "", -60 - number % 40),
        ("router_signal_rsrp_dbm", "", -90 - number % 30),
        ("router_signal_rsrq_db", "", -7 - number % 10),
        ("router_signal_sinr_db", "", 12.5),
        ("router_battery_ratio", "", (number % 100) / 100),
        ("router_uptime_seconds", "", 86_400 + number),
        ("router_last_poll_success_timestamp_seconds", "", NOW + number % 60),
    ]
    lines += [
        ("router_state", f'state="{state.value}"', 1 if state is Health.ONLINE else 0)
        for state in Health
    ]
    return lines


def inventory(count: int) -> tuple[list[Router], list[Organisation]]:
    """`count` routers in schools of 50 LAs and 50 trusts, 4 routers a school."""
    organisations = [
        Organisation(f"la-{n}", f"LA {n}", OrganisationKind.LOCAL_AUTHORITY) for n in range(50)
    ] + [
        Organisation(f"trust-{n}", f"Trust {n}", OrganisationKind.ACADEMY_TRUST) for n in range(50)
    ]
    schools = count // 4 + 1
    organisations += [
        Organisation(
            f"school-{n}", f"School {n}", OrganisationKind.SCHOOL, organisations[n % 100].id
        )
        for n in range(schools)
    ]
    routers = []
    for n in range(count):
        device = Device(
            f"S{n:07d}", DeviceKind.ROUTER, f"school-{n // 4}", f"ORD-{n}", imei=f"35{n:013d}"
        )
        endpoint = Endpoint(Protocol.SNMP, "10.0.0.1", 161 + n % 1000, "teltonika-rutos7")
        routers.append(Router(f"r-{n:06d}", device, f"894411{n:013d}", endpoint))
    return routers, organisations


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def timed(label: str, action: Callable[[], object]) -> object:
    """Run `action` once and print its wall time."""
    start = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - start:.3f} s")
    return result


def main(count: int = 100_000) -> None:
    """Run the measurements."""
    series = RouterSeries()
    ids = [f"r-{n:06d}" for n in range(count)]
    lines = [state_lines(n) for n in range(count)]
    rss_before = rss_mb()

    def update_all() -> None:
        for router_id, samples in zip(ids, lines, strict=True):
            series.update(router_id, samples)

    timed(f"update() of {count} routers x {len(lines[0])} lines (once per poll each)", update_all)
    held = rss_mb() - rss_before

    engine = store.open_database("sqlite://")  # the tracker's stores are not touched here
    rules = TrackingRules(ZoneInfo("Europe/London"), 20 * 10**9, HealthRules())
    tracker = Tracker(store.UsageStore(engine), store.HealthStore(engine), rules, series)
    routers, organisations = inventory(count)
    rss_before = rss_mb()
    timed(
        "follow_inventory(), first cycle: every router_info rendered",
        lambda: tracker.follow_inventory(routers, organisations),
    )
    timed(
        "follow_inventory(), next cycle, nothing changed",
        lambda: tracker.follow_inventory(routers, organisations),
    )
    changed = list(routers)
    for n in range(0, count, 100):  # 1%: a SIM swapped
        router = changed[n]
        changed[n] = Router(router.id, router.device, f"894499{n:013d}", router.endpoint)
    timed(
        "follow_inventory(), 1% of routers changed",
        lambda: tracker.follow_inventory(changed, organisations),
    )

    held += rss_mb() - rss_before
    text = timed("render() (one scrape)", series.render)
    assert isinstance(text, str)
    samples = text.count("\n") - 2 * text.count("# TYPE ")
    print(
        f"exposition: {len(text) / 1e6:.1f} MB, {samples} samples, {samples / count:.0f} per router"
    )
    print(f"RSS held by the rendered blocks and the tracker's facts: about {held:.0f} MB")
    rss_before = rss_mb()
    timed("render_bytes(), nothing changed since the last", series.render_bytes)
    # Steady state: a scrape every 15 s while a 300 s cycle polls the fleet in offset order,
    # so 5% of the routers (the next ones in poll order) changed since the scrape before.
    share = max(1, count // 20)
    for scrape in range(3):
        for n in range(scrape * share, (scrape + 1) * share):
            series.update(ids[n], [(f, extra, v + 1) for f, extra, v in lines[n]])
        timed(f"render_bytes(), {share} routers (5%) polled since the last", series.render_bytes)
    print(f"pieces: {series.pieces}; RSS added by the kept texts: {rss_mb() - rss_before:.0f} MB")
    engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
