"""The daemon raises a support request in the portal, and a `kill -9` mid-dispatch makes no second.

`monitor run` in a subprocess polls a router that never answers (a closed loopback port), so
`router_offline` fires within seconds (short durations in the config) and a
`connectivity_support` request is sent to the emulated portal, running in this process. The
portal takes the create and never answers it; the daemon is killed with SIGKILL while it waits,
then started again on the same database. The restarted daemon must find the incident by its
correlation id and record it, never create a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon import daemon_env, free_port, write_config

from monitor import store
from monitor.emulator.portal import PortalServer
from monitor.model import SupportRequestState

PASSWORD = "portal-secret-pw"


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed: every poll times out


@contextlib.contextmanager
def running(config: Path, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    log = (cwd / "daemon.log").open("a", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        cwd=cwd,
        stdout=log,
        stderr=log,
        text=True,
        env=daemon_env(),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


async def wait_for(check: object, what: str, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(log.read_text)
    pytest.fail(f"{what} not seen within {seconds}s; daemon log:\n{text[-3000:]}")


async def test_kill_9_mid_dispatch_and_restart_raise_exactly_one_incident(
    tmp_path: Path, database_url: str
) -> None:
    async with PortalServer(username="monitor", password=PASSWORD) as portal:
        router = {
            "id": "r-1",
            "imei": "867098031000017",
            "serial": "S-1",
            "order_number": "ORD-1",
            "organisation": "school-1",
            "protocol": "snmp",
            "host": "127.0.0.1",
            "port": closed_udp_port(),
            "profile": "teltonika-rutos7",
            "snmp": {"version": "2c", "community": "public"},
        }
        config = write_config(
            tmp_path,
            database_url,
            free_port(),
            organisations=[
                {"id": "la-1", "name": "LA One", "kind": "local_authority"},
                {"id": "school-1", "name": "School", "kind": "school", "parent": "la-1"},
            ],
            routers=[router],
            poll={"interval": "1s", "timeout": "500ms"},
            health={"unreachable_after": "1s"},
            alerts={"offline_after": "2s", "evaluation_interval": "1s"},
            support_portal={
                "url": portal.url,
                "username": "monitor",
                "password": PASSWORD,
                "timeout": "5s",
                "lease": "25s",
            },
        )
        log = tmp_path / "daemon.log"
        engine = store.open_database(database_url)
        requests = store.SupportRequests(engine)
        try:
            portal.set_mode("lost_reply", calls=1, methods=["POST"])
            with running(config, tmp_path) as first:
                await wait_for(lambda: portal.incidents(), "an incident", 60, log)
                first.send_signal(signal.SIGKILL)  # the create landed; its reply never will
                first.wait(timeout=10)
            [incident] = portal.incidents()
            [request] = requests.find()
            assert request.state is SupportRequestState.QUEUED  # the daemon died first
            assert request.correlation_id == incident.correlation_id
            assert request.on_behalf_of == "la-1"
            assert "Order number: ORD-1" in incident.description
            assert "IMEI: 867098031000017" in incident.description

            # The dead daemon's claim lasts its lease; the restarted one then looks it up.
            with running(config, tmp_path) as second:
                await wait_for(
                    lambda: requests.find()[0].state is SupportRequestState.OPEN,
                    "the request recorded open",
                    150,
                    log,
                )
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=20)
            assert portal.count(incident.correlation_id) == 1
            assert requests.find()[0].portal_number == incident.number
            assert [r.method for r in portal.requests].count("POST") == 1
            assert PASSWORD not in log.read_text()
        finally:
            engine.dispose()
