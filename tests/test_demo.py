"""`monitor demo` and `monitor emulate` end to end: real processes, real sockets on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from test_daemon import daemon_env, free_port, wait_ready

from monitor.cli import main


def metric(base: str, line_start: str) -> float:
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_demo_polls_its_emulated_fleet(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "monitor.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path}/demo.db"},
                "http": {"listen": f"127.0.0.1:{port}"},
                "poll": {"interval": "2s", "timeout": "1500ms"},
            }
        ),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "monitor", "demo", "--config", str(config), "--routers", "12"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=daemon_env()
    )
    try:
        wait_ready(process, base)
        deadline = time.monotonic() + 30
        success = 'router_monitor_polls_total{result="success"}'
        while metric(base, success) < 24 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert metric(base, success) >= 24  # every router answered at least twice
        assert metric(base, "router_monitor_inventory_routers") == 12
        assert metric(base, "router_monitor_poll_overruns_total") == 0
        assert metric(base, 'router_data_cap_bytes{router="emu-00001"}') == 20 * 10**9
        assert metric(base, 'router_up{router="emu-00001"}') == 1
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "emulated fleet up on loopback: 12 routers" in stderr
    assert "Traceback" not in stderr
    assert "demo-community" not in stderr
    assert "demo-password" not in stderr


def test_emulate_describes_its_fleet_for_config_and_import(tmp_path: Path) -> None:
    fragment, devices = tmp_path / "fleet.yaml", tmp_path / "fleet.csv"
    command = [
        sys.executable, "-m", "monitor", "emulate", "--routers", "6", "--seed", "3",
        "--mix", "teltonika-rutos7=1,huawei-hilink=1",
        "--write-config", str(fragment), "--write-csv", str(devices),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        # Readiness: both files are written, whole, once every router is being served.
        while not _complete(devices, 7) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.2)
        routers = yaml.safe_load(fragment.read_text(encoding="utf-8"))["routers"]
        assert {r["profile"] for r in routers} == {"teltonika-rutos7", "huawei-hilink"}
        organisation = {"id": "emulated-la", "name": "Emulated LA", "kind": "local_authority"}
        config = tmp_path / "monitor.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "database": {"url": f"sqlite:///{tmp_path}/m.db"},
                    "organisations": [organisation],
                    "routers": routers,
                }
            ),
            encoding="utf-8",
        )
        assert main(["check-config", str(config)]) == 0
        orgs = tmp_path / "orgs.csv"
        orgs.write_text("id,name,kind,parent\nemulated-la,LA,local_authority,\n", "utf-8")
        assert main(["import", "organisations", str(orgs), "--config", str(config)]) == 0
        assert main(["import", "devices", str(devices), "--config", str(config)]) == 0
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0


def _complete(path: Path, lines: int) -> bool:
    return path.exists() and len(path.read_text(encoding="utf-8").splitlines()) == lines
