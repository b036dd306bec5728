"""The daemon end to end: `python -m monitor run` in a subprocess, real HTTP, a real database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from monitor import store

ROUTER = {
    "id": "r-1",
    "imei": "867098031000017",
    "serial": "S-1",
    "order_number": "ORD-1",
    "organisation": "la-1",
    "protocol": "snmp",
    "host": "127.0.0.1",
    "port": 16101,
    "profile": "teltonika-rutos7",
    "snmp": {"version": "2c", "community": "s3cret-community"},
}
ORGANISATION = {"id": "la-1", "name": "LA One", "kind": "local_authority"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(tmp_path: Path, url: str, port: int, **extra: Any) -> Path:
    config = {
        "database": {"url": url},
        "http": {"listen": f"127.0.0.1:{port}"},
        "poll": {"interval": "2s", "timeout": "1s"},
        "organisations": [ORGANISATION],
        "routers": [ROUTER],
        **extra,
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def daemon_env() -> dict[str, str]:
    """This process's environment without MONITOR_* settings, which would override the file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}


@contextlib.contextmanager
def daemon(config: Path, cwd: Path, command: str = "run") -> Iterator[subprocess.Popen[str]]:
    """`monitor run` (or another long-running `command`: `api`) as a process, killed after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", command, "--config", str(config)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon_env(),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def wait_ready(process: subprocess.Popen[str], base: str, deadline: float = 30.0) -> None:
    """Readiness probe: /readyz answers 200, or the test fails with the daemon's stderr."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"daemon exited with {process.returncode}: {process.communicate()[1]}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"daemon not ready after {deadline}s: {process.communicate()[1]}")


def stop(process: subprocess.Popen[str], signum: signal.Signals) -> tuple[int, str]:
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_daemon_serves_and_stops_cleanly(
    tmp_path: Path, database_url: str, signum: signal.Signals
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with daemon(write_config(tmp_path, database_url, port), tmp_path) as process:
        wait_ready(process, base)
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        ready = requests.get(f"{base}/readyz", timeout=5).json()
        assert ready == {"status": "ready", "checks": {"database": "ok", "scheduler": "ok"}}
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'router_monitor_build_info{version="' in metrics.text
        assert "router_monitor_inventory_routers 1.0" in metrics.text
        assert 'router_monitor_gc_pause_seconds_count{generation="0"}' in metrics.text
        openapi = requests.get(f"{base}/api/v1/openapi.json", timeout=5).json()
        assert "/healthz" in openapi["paths"]
        code, stderr = stop(process, signum)
    assert code == 0, stderr
    assert f"{signum.name} received: stopping" in stderr
    assert "router-monitor stopped" in stderr
    assert "Traceback" not in stderr
    assert "s3cret-community" not in stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)


def test_daemon_loads_config_inventory_and_restarts_on_a_migrated_database(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    config = write_config(tmp_path, database_url, port)
    for _ in range(2):  # the second start finds the schema and the rows already there
        with daemon(config, tmp_path) as process:
            wait_ready(process, f"http://127.0.0.1:{port}")
            code, stderr = stop(process, signal.SIGTERM)
        assert code == 0, stderr
    engine = store.open_database(database_url)
    try:
        router = store.Inventory(engine).get_router("r-1")
    finally:
        engine.dispose()
    assert router.device.imei == ROUTER["imei"]
    assert router.endpoint is not None
    assert router.endpoint.port == 16101


def test_taken_port_is_a_clear_startup_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", port)
        with daemon(config, tmp_path) as process:
            _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"http.listen 127.0.0.1:{port}: cannot listen: Address already in use" in stderr
    assert "Traceback" not in stderr


def test_bad_config_exits_2_before_starting(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///m.db", free_port(), poll={"interval": "often"})
    with daemon(config, tmp_path) as process:
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "poll.interval: must be a duration like 60s" in stderr
    assert not (tmp_path / "m.db").exists()


def test_default_sqlite_file_is_created_under_var(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, "sqlite:///var/monitor.db", port)
    with daemon(config, tmp_path) as process:
        wait_ready(process, f"http://127.0.0.1:{port}")
        code, stderr = stop(process, signal.SIGTERM)
    assert code == 0, stderr
    assert (tmp_path / "var" / "monitor.db").is_file()
