"""`kill -9` at any point: usage continues with no byte lost and none counted twice.

An emulated HiLink fleet runs in its own process (`monitor emulate`); the daemon (`monitor run`)
is killed with SIGKILL three times mid-poll and restarted on the same SQLite file. HiLink device
totals run on across all of it, so what the stored months add up to can be checked against them:
exactly the bytes between the daemon's first and last readings, whatever the kills interrupted.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from test_daemon import daemon_env, free_port, wait_ready

from monitor.collectors.hilink import HilinkCollector
from monitor.config import RouterSettings
from monitor.model import Sample
from monitor.profiles import load_profiles
from monitor.profiles_hilink import HilinkProfile
from monitor.store import UsageStore, open_database

PROFILES = load_profiles(Path(__file__).resolve().parents[1] / "config" / "profiles")


async def device_totals(routers: list[dict[str, Any]]) -> dict[str, int]:
    """Each router's own byte totals (TotalDownload + TotalUpload), read directly."""
    hilink = {n: p for n, p in PROFILES.items() if isinstance(p, HilinkProfile)}
    collector = HilinkCollector(hilink)
    totals = {}
    try:
        for entry in routers:
            result = await collector.poll(RouterSettings.model_validate(entry).to_target(), 5.0)
            assert isinstance(result, Sample), result
            received, sent = result.traffic.received, result.traffic.sent
            assert received is not None
            assert sent is not None
            totals[entry["id"]] = received.value + sent.value
    finally:
        await collector.aclose()
    return totals


def start_emulator(tmp_path: Path) -> tuple[subprocess.Popen[str], list[dict[str, Any]]]:
    fragment = tmp_path / "fleet.yaml"
    command = [
        sys.executable, "-m", "monitor", "emulate", "--routers", "4", "--seed", "11",
        "--mix", "huawei-hilink=1", "--write-config", str(fragment),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        if fragment.exists() and (loaded := yaml.safe_load(fragment.read_text("utf-8"))):
            return process, loaded["routers"]
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the emulator did not describe its fleet in 30 s")


def test_kill_9_neither_loses_nor_double_counts(tmp_path: Path) -> None:
    emulator, routers = start_emulator(tmp_path)
    try:
        port = free_port()
        database = tmp_path / "monitor.db"
        config = tmp_path / "monitor.yaml"
        organisation = {"id": "emulated-la", "name": "Emulated LA", "kind": "local_authority"}
        config.write_text(
            yaml.safe_dump(
                {
                    "database": {"url": f"sqlite:///{database}"},
                    "http": {"listen": f"127.0.0.1:{port}"},
                    "poll": {"interval": "1s", "timeout": "800ms"},
                    "organisations": [organisation],
                    "routers": routers,
                }
            ),
            encoding="utf-8",
        )
        before = asyncio.run(device_totals(routers))
        started = time.monotonic()
        first_ready = 0.0
        rng = random.Random(3)
        command = [sys.executable, "-m", "monitor", "run", "--config", str(config)]
        for run in range(4):
            daemon = subprocess.Popen(
                command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=daemon_env()
            )
            wait_ready(daemon, f"http://127.0.0.1:{port}")
            first_ready = first_ready or time.monotonic()
            time.sleep(rng.uniform(1.5, 3.0))  # let it poll; the kill lands wherever it is
            daemon.send_signal(signal.SIGTERM if run == 3 else signal.SIGKILL)
            daemon.communicate(timeout=20)
        after = asyncio.run(device_totals(routers))
        finished = time.monotonic()
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.communicate(timeout=20)

    engine = open_database(f"sqlite:///{database}")
    try:
        usage = UsageStore(engine)
        states = usage.load_states()
        for entry in routers:
            router_id = entry["id"]
            state = states[router_id]
            assert state.received is not None
            assert state.sent is not None
            last = state.received.value + state.sent.value
            counted = sum(month.total for month in usage.months(router_id))
            # Never more than the device's own totals moved while the daemon watched...
            assert counted <= last - before[router_id], router_id
            # ...and nothing lost but the bytes before the daemon's first poll: the time to its
            # first readiness plus one interval (and a second's slack), at the router's rate.
            rate = (after[router_id] - before[router_id]) / (finished - started)
            allowed = rate * (first_ready - started + 2.0)
            assert counted >= last - before[router_id] - allowed, router_id
            assert last <= after[router_id]
    finally:
        engine.dispose()
