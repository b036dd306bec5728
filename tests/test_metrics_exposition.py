"""`/metrics` end to end: the daemon polling an emulated fleet, checked by promtool and against
the fleet's ground truth; `router_info` facts follow the inventory.

The in-process daemon polls routers whose emulated clock the test holds still and then moves on
by a known step, so every value the routers report (uptime, signal, battery, bytes) is known
exactly when the exposition is read.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from test_daemon import daemon_env, free_port, wait_ready

from monitor import store
from monitor.app import run_daemon
from monitor.config import RouterSettings, load_settings
from monitor.core.health import HealthRules
from monitor.emulator.fleet import DEFAULT_MIX, EmulatedFleet, EmulatedRouter, plan_fleet
from monitor.metrics import INFO_LABELS, ROUTER_FAMILIES, RouterSeries
from monitor.model import (
    Device,
    DeviceKind,
    Endpoint,
    Health,
    Identity,
    Organisation,
    OrganisationKind,
    PollTarget,
    Protocol,
    Router,
    Sample,
)
from monitor.profiles import load_profiles
from monitor.store import HealthStore, UsageStore
from monitor.tracking import Tracker, TrackingRules, local_authorities

PROFILES = load_profiles(Path(__file__).resolve().parents[1] / "config" / "profiles")
T0 = float(int(time.time()))  # the emulated routers' clock starts now, then jumps by STEP
STEP = 600.0
ORGANISATIONS = [
    {"id": "la-1", "name": "LA One", "kind": "local_authority"},
    {"id": "trust-1", "name": "Trust One", "kind": "academy_trust"},
    {"id": "school-la", "name": "School under the LA", "kind": "school", "parent": "la-1"},
    {"id": "school-trust", "name": "School under the trust", "kind": "school", "parent": "trust-1"},
]
LOCAL_AUTHORITY = {"la-1": "la-1", "trust-1": "", "school-la": "la-1", "school-trust": ""}
# Per-router families and the profile field that feeds each: a model whose profile reads the
# field must show the family, one whose profile does not must leave it out.
FIELD_OF = {
    "router_connected": "link",
    "router_sim_present": "sim",
    "router_signal_rssi_dbm": "rssi_dbm",
    "router_signal_rsrp_dbm": "rsrp_dbm",
    "router_signal_rsrq_db": "rsrq_db",
    "router_signal_sinr_db": "sinr_db",
    "router_battery_ratio": "battery_percent",
    "router_uptime_seconds": "uptime",
}
ISSUE_ROUTER_FAMILIES = {
    "router_info", "router_up", "router_connected", "router_sim_present", "router_state",
    "router_data_month_used_bytes", "router_data_month_forecast_bytes", "router_data_cap_bytes",
    "router_signal_rssi_dbm", "router_signal_rsrp_dbm", "router_signal_rsrq_db",
    "router_signal_sinr_db", "router_battery_ratio", "router_uptime_seconds",
    "router_last_poll_success_timestamp_seconds",
}  # fmt: skip
DAEMON_FAMILIES = {
    "router_monitor_polls_total": "counter",
    "router_monitor_poll_duration_seconds": "histogram",
    "router_monitor_poll_overruns_total": "counter",
    "router_monitor_alerts_firing": "gauge",
    "router_monitor_support_requests": "gauge",
    "router_monitor_outbox_pending": "gauge",
    "router_monitor_build_info": "gauge",
}

Labels = frozenset[tuple[str, str]]
Exposition = dict[str, dict[Labels, float]]


def parse(text: str) -> Exposition:
    """Sample name -> label set -> value."""
    parsed: Exposition = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return parsed


def by_router(exposition: Exposition, name: str) -> dict[str, float]:
    """A family labelled `router` only, as router -> value."""
    found = {}
    for labels, value in exposition.get(name, {}).items():
        keys = dict(labels)
        assert set(keys) == {"router"}, (name, keys)  # labelled `router` only
        found[keys["router"]] = value
    return found


def infos(exposition: Exposition) -> dict[str, dict[str, str]]:
    """router -> its router_info labels (without `router`)."""
    found: dict[str, dict[str, str]] = {}
    for labels, value in exposition.get("router_info", {}).items():
        keys = dict(labels)
        assert value == 1
        assert set(keys) == {"router", *INFO_LABELS}
        router = keys.pop("router")
        assert router not in found, f"two router_info series for {router}"
        found[router] = keys
    return found


def promtool() -> str:
    """The promtool binary; skips (fails under CI) without it."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found; CI must install Debian's prometheus package")
        pytest.skip("promtool not found: install Debian's prometheus package to run this")
    return found


def promtool_check(binary: str, text: str) -> None:
    """`promtool check metrics` must report nothing at all."""
    done = subprocess.run(
        [binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), text[:3000]


# --- the real daemon polling an emulated fleet -------------------------------------------------


class FrozenClock:
    """The emulated routers' clock: still unless the test moves it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Running:
    """A daemon in this event loop, its emulated fleet and how to read its exposition."""

    routers: list[EmulatedRouter]
    clock: FrozenClock
    settings_entries: list[dict[str, Any]]
    database_url: str
    base: str
    task: asyncio.Task[None]
    session: aiohttp.ClientSession

    async def text(self) -> str:
        async with self.session.get(f"{self.base}/metrics") as response:
            assert response.status == 200
            return await response.text()

    async def until(
        self, what: str, done: Callable[[Exposition], bool], deadline: float = 30.0
    ) -> Exposition:
        """Scrape until `done` holds (bounded), failing with what was last seen."""
        end = time.monotonic() + deadline
        while True:
            if self.task.done():
                pytest.fail(f"daemon stopped: {self.task.exception()!r}")
            text = await self.text()
            exposition = parse(text)
            if done(exposition):
                return exposition
            if time.monotonic() > end:
                pytest.fail(f"not within {deadline}s: {what}; last scrape:\n{text[-4000:]}")
            await asyncio.sleep(0.2)


def plan_known_fleet() -> list[EmulatedRouter]:
    """One router of every model, with distinct values that no model rounds away."""
    mix = dict.fromkeys(DEFAULT_MIX, 1)
    routers = plan_fleet(len(mix), ["la-1", "school-la", "school-trust"], now=T0, seed=7, mix=mix)
    for number, router in enumerate(routers):
        life = router.life
        life.signal_rsrp, life.signal_rsrq, life.signal_sinr = (
            -90 - number,
            -7 - number,
            8.0 + number,
        )
        life.battery_percent, life.battery_drain_per_hour = 57.0, 0.0
        if router.profile == "huawei-hilink":
            router.variant = "e5577"  # reports the battery to 1 %
        elif router.profile == "teltonika-legacy":
            life.remove_sim(T0)
        elif router.profile == "cisco-cellular":
            life.set_link(T0, False)
    return routers


def expected_state(router: EmulatedRouter) -> Health:
    life = router.life
    if not life.sim_present:
        return Health.SIM_ABSENT
    return Health.ONLINE if life.connected else Health.WAN_DOWN


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    clock = FrozenClock(T0)
    port = free_port()
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    async with EmulatedFleet(clock=clock) as fleet:
        await fleet.start(plan_known_fleet())
        entries = [router.config_entry() for router in fleet.routers]
        instant = "0s"  # every health state follows the first poll that shows it
        config = {
            "database": {"url": url},
            "http": {"listen": f"127.0.0.1:{port}"},
            "poll": {"interval": "1s", "timeout": "900ms"},
            "health": dict.fromkeys(
                ("unreachable_after", "wan_down_after", "sim_absent_after", "recovery_after"),
                instant,
            ),
            "organisations": ORGANISATIONS,
            "routers": entries,
        }
        path = tmp_path / "monitor.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        stop = asyncio.Event()
        # No reference kept here: the daemon is to let go of the config's routers.
        task = asyncio.create_task(run_daemon(load_settings(path, {}), stop))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            base = f"http://127.0.0.1:{port}"
            try:
                await _wait_ready(session, base, task)
                yield Running(fleet.routers, clock, entries, url, base, task, session)
            finally:
                stop.set()
                await asyncio.wait_for(task, timeout=30)


async def _wait_ready(session: aiohttp.ClientSession, base: str, task: asyncio.Task[None]) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if task.done():
            pytest.fail(f"daemon stopped: {task.exception()!r}")
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail("daemon not ready within 30s")


async def test_the_daemon_lets_go_of_the_configs_routers(running: Running) -> None:
    """Polling needs only their targets: the parsed entries (about 7 tracked objects per
    router) would otherwise stay in memory and in every full garbage collection."""
    ids = {router.life.router_id for router in running.routers}
    await running.until("every router answered", lambda e: by_router(e, "router_up").keys() >= ids)
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, RouterSettings) and o.id in ids]
    assert kept == []


async def test_exposed_values_match_the_emulated_fleet(running: Running) -> None:
    ids = [router.life.router_id for router in running.routers]
    await running.until(
        "every router answered", lambda e: by_router(e, "router_up").keys() >= set(ids)
    )
    running.clock.now = T0 + STEP  # traffic flows for STEP seconds; uptime becomes STEP
    before = datetime.now(UTC).timestamp()
    exposition = await running.until(
        "every router polled after the clock moved",
        lambda e: all(by_router(e, "router_uptime_seconds").get(i) == STEP for i in ids),
    )
    text = await running.text()

    for name, kind in DAEMON_FAMILIES.items():
        assert f"# TYPE {name} {kind}\n" in text, name
    assert exposition["router_monitor_polls_total"][frozenset({("result", "success")})] >= 2 * len(
        ids
    )
    typed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert typed >= ISSUE_ROUTER_FAMILIES

    up = by_router(exposition, "router_up")
    cap = by_router(exposition, "router_data_cap_bytes")
    used = by_router(exposition, "router_data_month_used_bytes")
    forecast = by_router(exposition, "router_data_month_forecast_bytes")
    last_success = by_router(exposition, "router_last_poll_success_timestamp_seconds")
    states: dict[str, dict[str, float]] = {}
    for labels, value in exposition["router_state"].items():
        keys = dict(labels)
        assert set(keys) == {"router", "state"}
        states.setdefault(keys["router"], {})[keys["state"]] = value
    for router in running.routers:
        life, rid = router.life, router.life.router_id
        life.advance(running.clock.now)
        truth = {
            "router_connected": 1.0 if life.connected else 0.0,
            "router_sim_present": 1.0 if life.sim_present else 0.0,
            "router_signal_rssi_dbm": life.signal_rssi,
            "router_signal_rsrp_dbm": life.signal_rsrp,
            "router_signal_rsrq_db": life.signal_rsrq,
            "router_signal_sinr_db": life.signal_sinr,
            "router_battery_ratio": life.battery_percent / 100,
            "router_uptime_seconds": life.uptime(running.clock.now),
        }
        fields = PROFILES[router.profile].fields
        for family, field in FIELD_OF.items():
            shown = by_router(exposition, family).get(rid)
            if not life.sim_present and family.startswith("router_signal"):
                continue  # what a modem without a SIM says of the radio varies by model
            if field in fields:
                assert shown == pytest.approx(truth[family]), (rid, router.profile, family)
            else:
                assert shown is None, (rid, router.profile, family)
        assert up[rid] == 1
        assert cap[rid] == 20 * 10**9
        assert used[rid] == sum(life.truth.values()), (rid, router.profile)
        assert forecast[rid] >= used[rid]
        assert before - 60 <= last_success[rid] <= datetime.now(UTC).timestamp()
        hot = {state for state, value in states[rid].items() if value == 1}
        assert set(states[rid]) == {state.value for state in Health}
        assert hot == {expected_state(router).value}, rid
    moving = [r for r in running.routers if r.life.connected]
    assert all(used[r.life.router_id] > 0 for r in moving)  # the step's traffic was counted

    # router_info: inventory facts, the firmware reported, the organisation's local authority.
    shown_info = infos(exposition)
    assert set(shown_info) == set(ids)
    for router in running.routers:
        info, life = shown_info[router.life.router_id], router.life
        assert info["imei"] == life.imei
        assert info["iccid"] == life.iccid
        assert info["model"] == router.profile
        assert info["organisation"] == router.organisation
        assert info["local_authority"] == LOCAL_AUTHORITY[router.organisation]
        if "firmware" in PROFILES[router.profile].fields:
            assert life.firmware in info["firmware"], router.profile
        else:
            assert info["firmware"] == ""
    assert {info["local_authority"] for info in shown_info.values()} == {"la-1", ""}


async def test_inventory_changes_reach_router_info_and_removals_leave(running: Running) -> None:
    ids = [router.life.router_id for router in running.routers]
    exposition = await running.until(
        "every router shown", lambda e: by_router(e, "router_up").keys() >= set(ids)
    )
    moved = next(r for r in running.routers if r.organisation == "school-la")
    gone = next(r for r in running.routers if r is not moved)
    assert infos(exposition)[moved.life.router_id]["local_authority"] == "la-1"
    entries = []
    for entry in running.settings_entries:
        if entry["id"] == gone.life.router_id:
            continue
        if entry["id"] == moved.life.router_id:
            entry = {**entry, "organisation": "school-trust"}  # the school's router moved
        entries.append(entry)
    engine = store.open_database(running.database_url)
    try:
        await asyncio.to_thread(
            store.Inventory(engine).sync_config,
            [
                Organisation(o["id"], o["name"], OrganisationKind(o["kind"]), o.get("parent"))
                for o in ORGANISATIONS
            ],
            [RouterSettings.model_validate(entry).to_model() for entry in entries],
        )
    finally:
        engine.dispose()

    def settled(e: Exposition) -> bool:
        info = infos(e)
        return (
            gone.life.router_id not in info
            and info[moved.life.router_id]["organisation"] == "school-trust"
        )

    await running.until("the inventory change shown", settled)
    await asyncio.sleep(2.5)  # two more poll intervals: a removed router must not come back
    exposition = parse(await running.text())
    for name, series in exposition.items():
        routers = {dict(labels).get("router") for labels in series}
        assert gone.life.router_id not in routers, name
    info = infos(exposition)
    assert info[moved.life.router_id]["local_authority"] == ""
    assert set(info) == set(ids) - {gone.life.router_id}
    assert set(by_router(exposition, "router_up")) == set(ids) - {gone.life.router_id}


# --- `monitor demo`: promtool on the live exposition -------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    config = tmp_path / "monitor.yaml"
    settings = {
        "database": {"url": f"sqlite:///{tmp_path}/demo.db"},
        "http": {"listen": f"127.0.0.1:{port}"},
        "poll": {"interval": "2s", "timeout": "1500ms"},
        "organisations": ORGANISATIONS,
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    command = [sys.executable, "-m", "monitor", "demo", "--config", str(config), "--routers", "8"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=daemon_env()
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_promtool_finds_no_problem_in_the_demo_exposition(
    demo: tuple[subprocess.Popen[str], str],
) -> None:
    binary = promtool()
    process, base = demo
    wait_ready(process, base)
    deadline = time.monotonic() + 30
    while True:
        text = requests.get(f"{base}/metrics", timeout=5).text
        exposition = parse(text)
        if len(by_router(exposition, "router_up")) == 8 and len(infos(exposition)) == 8:
            break
        assert time.monotonic() < deadline, f"not every router shown within 30s:\n{text[-3000:]}"
        time.sleep(0.5)
    promtool_check(binary, text)
    for info in infos(exposition).values():  # the demo places its routers in the schools
        assert info["local_authority"] == LOCAL_AUTHORITY[info["organisation"]]
    assert {info["organisation"] for info in infos(exposition).values()} == {
        "school-la",
        "school-trust",
    }


# --- the tracker's router_info, without a daemon ----------------------------------------------


def organisation(id: str, kind: OrganisationKind, parent: str | None = None) -> Organisation:
    return Organisation(id, id.title(), kind, parent)


LA, TRUST, SCHOOL, COLLEGE = (
    OrganisationKind.LOCAL_AUTHORITY,
    OrganisationKind.ACADEMY_TRUST,
    OrganisationKind.SCHOOL,
    OrganisationKind.COLLEGE,
)
TREE = [
    organisation("la-1", LA),
    organisation("trust-1", TRUST),
    organisation("school-la", SCHOOL, "la-1"),
    organisation("school-trust", SCHOOL, "trust-1"),
    organisation("college-alone", COLLEGE),
    organisation("school-lost", SCHOOL, "nowhere"),
]


def test_local_authority_is_the_la_itself_or_above_or_none() -> None:
    assert local_authorities(TREE) == {
        "la-1": "la-1",
        "trust-1": "",
        "school-la": "la-1",
        "school-trust": "",
        "college-alone": "",
        "school-lost": "",
    }


def test_a_cycle_of_parents_does_not_hang() -> None:
    loop = [organisation("a", SCHOOL, "b"), organisation("b", SCHOOL, "a")]
    assert local_authorities(loop) == {"a": "", "b": ""}


def router(id: str, org: str, imei: str = "356938035643809", iccid: str | None = None) -> Router:
    device = Device(f"S-{id}", DeviceKind.ROUTER, org, f"ORD-{id}", imei=imei)
    return Router(id, device, iccid, Endpoint(Protocol.SNMP, "127.0.0.1", 161, "if-mib"))


class CountingSeries(RouterSeries):
    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[str] = []

    def set_info(self, router_id: str, info: Any) -> None:
        self.rendered.append(router_id)
        super().set_info(router_id, info)


def make_tracker(engine: Engine) -> tuple[Tracker, CountingSeries]:
    series = CountingSeries()
    rules = TrackingRules(ZoneInfo("Europe/London"), 20 * 10**9, HealthRules())
    return Tracker(UsageStore(engine), HealthStore(engine), rules, series), series


def test_only_changed_routers_are_rendered_again(migrated: Engine) -> None:
    tracker, series = make_tracker(migrated)
    routers = [router("r-1", "school-la"), router("r-2", "school-trust"), router("r-3", "la-1")]
    tracker.follow_inventory(routers, TREE)
    assert series.rendered == ["r-1", "r-2", "r-3"]
    series.rendered.clear()
    tracker.follow_inventory(routers, TREE)  # the next cycle: nothing changed
    assert series.rendered == []
    routers[1] = router("r-2", "school-la", iccid="8944110000000000017")
    tracker.follow_inventory(routers, TREE)
    assert series.rendered == ["r-2"]
    info = infos(parse(series.render()))
    assert info["r-2"]["iccid"] == "8944110000000000017"
    assert info["r-2"]["local_authority"] == "la-1"
    assert info["r-3"] == {
        "imei": "356938035643809", "iccid": "", "model": "if-mib", "firmware": "",
        "organisation": "la-1", "local_authority": "la-1",
    }  # fmt: skip
    tracker.follow_inventory(routers[:2], TREE)
    assert set(infos(parse(series.render()))) == {"r-1", "r-2"}


def target(router_id: str) -> PollTarget:
    return PollTarget(router_id, Endpoint(Protocol.SNMP, "127.0.0.1", 161, "if-mib"))


def sample(router_id: str, identity: Identity) -> Sample:
    return Sample(router_id, datetime(2026, 3, 2, 12, tzinfo=UTC), identity=identity)


async def test_firmware_from_samples_and_no_return_after_removal(migrated: Engine) -> None:
    tracker, series = make_tracker(migrated)
    store.Inventory(migrated).sync_config(TREE[:3], [router("r-1", "school-la")])
    tracker.follow_inventory([router("r-1", "school-la")], TREE)
    await tracker.handle(target("r-1"), sample("r-1", Identity(firmware="RUT9_R_00.07.06")))
    assert infos(parse(series.render()))["r-1"]["firmware"] == "RUT9_R_00.07.06"
    series.rendered.clear()
    await tracker.handle(target("r-1"), sample("r-1", Identity(firmware="RUT9_R_00.07.06")))
    await tracker.handle(target("r-1"), sample("r-1", Identity()))  # not reported this time
    assert series.rendered == []
    await tracker.handle(target("r-1"), sample("r-1", Identity(firmware="RUT9_R_00.07.07")))
    assert infos(parse(series.render()))["r-1"]["firmware"] == "RUT9_R_00.07.07"

    tracker.follow_inventory([], TREE)  # r-1 left the inventory...
    assert series.render() == ""
    await tracker.handle(target("r-1"), sample("r-1", Identity()))  # ...with a poll in flight
    assert series.render() == ""


def test_every_issue_family_is_declared() -> None:
    assert set(ROUTER_FAMILIES) >= ISSUE_ROUTER_FAMILIES
