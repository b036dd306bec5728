"""`monitor api`: the status API in a process of its own, reading what `monitor run` writes.

An emulated HiLink fleet (`monitor emulate`), the daemon and the API process all run as real
processes on loopback, against one real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_crash import start_emulator
from test_daemon import daemon, daemon_env, free_port, stop, wait_ready

from monitor.store import open_database
from monitor.store.access import AccessStore

ORGANISATION = {"id": "emulated-la", "name": "Emulated LA", "kind": "local_authority"}


def api_process(
    config: Path, cwd: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    return daemon(config, cwd, "api")


def write_config(tmp_path: Path, url: str, routers: list[dict[str, Any]]) -> tuple[Path, str, str]:
    daemon_port, api_port = free_port(), free_port()
    config = {
        "database": {"url": url},
        "http": {"listen": f"127.0.0.1:{daemon_port}", "api_listen": f"127.0.0.1:{api_port}"},
        "poll": {"interval": "2s", "timeout": "1s"},
        "organisations": [ORGANISATION],
        "routers": routers,
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, f"http://127.0.0.1:{daemon_port}", f"http://127.0.0.1:{api_port}"


def token(url: str) -> dict[str, str]:
    engine = open_database(url)
    try:
        _, secret = AccessStore(engine).create_token("portal", "programme", None)
    finally:
        engine.dispose()
    return {"Authorization": f"Bearer {secret}"}


def detail(base: str, router_id: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = requests.get(f"{base}/api/v1/routers/{router_id}", headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def request_counts(exposition: str) -> dict[tuple[str, str, str], float]:
    """Requests answered by (route, method, code), from `router_monitor_http_request_seconds`."""
    counts = {}
    for family in text_string_to_metric_families(exposition):
        if family.name == "router_monitor_http_request_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    labels = sample.labels
                    counts[(labels["route"], labels["method"], labels["code"])] = sample.value
    return counts


def test_the_api_process_serves_what_the_daemon_polls(tmp_path: Path, database_url: str) -> None:
    emulator, routers = start_emulator(tmp_path)
    ids = [entry["id"] for entry in routers]
    try:
        config, daemon_base, api_base = write_config(tmp_path, database_url, routers)
        with daemon(config, tmp_path) as poller, api_process(config, tmp_path) as api:
            wait_ready(poller, daemon_base)
            wait_ready(api, api_base)
            headers = token(database_url)
            deadline = time.monotonic() + 30
            shown: dict[str, dict[str, Any]] = {}
            while time.monotonic() < deadline and len(shown) < len(ids):
                for router_id in ids:
                    body = detail(api_base, router_id, headers)
                    if body["poll"]["last_result"] == "sample" and body["usage"]["used_bytes"]:
                        shown[router_id] = body
                time.sleep(0.3)
            assert sorted(shown) == sorted(ids), "the API process never showed every router polled"

            # It follows the polls (every 2 s), as the daemon's own API does.
            time.sleep(2.5)
            for router_id, before in shown.items():
                later = detail(api_base, router_id, headers)
                assert later["poll"]["last_attempt_at"] > before["poll"]["last_attempt_at"]
                assert later["usage"]["used_bytes"] >= before["usage"]["used_bytes"]
                own = detail(daemon_base, router_id, headers)
                for part in ("id", "imei", "order_number", "sim", "signal", "alerts", "advice"):
                    assert later[part] == own[part], (router_id, part)
                assert later["health"]["state"] == own["health"]["state"]
                assert later["signal"]["rssi_dbm"] is not None

            listing = requests.get(f"{api_base}/api/v1/routers", headers=headers, timeout=5)
            assert listing.json()["total"] == len(ids)
            unauthorised = requests.get(f"{api_base}/api/v1/routers", timeout=5)
            assert unauthorised.status_code == 401
            assert requests.get(f"{api_base}/api/v1/nowhere", timeout=5).status_code == 404
            assert requests.get(f"{api_base}/api/v1/openapi.json", timeout=5).status_code == 200
            odd = requests.request("PROPFIND", f"{api_base}/api/v1/routers", timeout=5)
            assert odd.status_code == 405
            metrics = requests.get(f"{api_base}/metrics", timeout=5).text
            assert "process_cpu_seconds_total" in metrics
            assert "router_up" not in metrics  # the routers' series are the daemon's
            # Every request timed, by the route template it matched.
            answered = request_counts(metrics)
            assert answered[("/api/v1/routers", "GET", "200")] == 1
            assert answered[("/api/v1/routers", "GET", "401")] == 1
            assert answered[("unmatched", "GET", "404")] == 1
            assert answered[("/api/v1/openapi.json", "GET", "200")] == 1
            # A method no route has is one label whatever it is: clients cannot add series.
            assert answered[("/api/v1/routers", "other", "405")] == 1
            assert answered[("/api/v1/routers/{router}", "GET", "200")] >= 2 * len(ids)
            assert answered[("/readyz", "GET", "200")] >= 1

            code, stderr = stop(api, signal.SIGTERM)
            assert code == 0, stderr
            assert "status API running (reading the database)" in stderr
            assert "status API stopped" in stderr
            assert "Traceback" not in stderr
            code, stderr = stop(poller, signal.SIGTERM)
            assert code == 0, stderr
            for entry in routers:
                assert entry["http"]["password"] not in stderr
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.communicate(timeout=20)


def test_before_the_daemon_migrates_it_is_not_ready_and_says_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    config, _, api_base = write_config(tmp_path, url, [])
    with api_process(config, tmp_path) as api:
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline and answer is None:
            assert api.poll() is None, api.communicate()[1]
            with contextlib.suppress(requests.ConnectionError):
                answer = requests.get(f"{api_base}/readyz", timeout=2)
            time.sleep(0.1)
        assert answer is not None
        assert answer.status_code == 503
        assert answer.json()["checks"]["database"].startswith("schema None, want ")
        code, stderr = stop(api, signal.SIGINT)
        assert code == 0, stderr


def test_a_bad_listen_address_and_a_taken_port_are_clear_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config, _, _ = write_config(tmp_path, url, [])
    command = [sys.executable, "-m", "monitor", "api", "--config", str(config)]
    bad = subprocess.run(
        [*command, "--listen", "nowhere"], capture_output=True, text=True, env=daemon_env()
    )
    assert bad.returncode == 2
    assert "--listen: must be host:port" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [*command, "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, env=daemon_env(), timeout=30,
        )  # fmt: skip
    assert busy.returncode == 1
    assert f"--listen 127.0.0.1:{port}: cannot listen" in busy.stderr
