"""The emulated fleet of `make bench`, served from its own process (so its CPU is its own).

Run: .venv/bin/python bench/fleet_server.py ROUTERS SNMP_PORT HILINK_PORT OUT.json
SNMP routers share one UDP socket and HiLink routers one TCP listener (the emulator's fast
path); each router has its own loopback address 127.a.b.c. Writes the routers' config entries
to OUT.json, prints "ready", and serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from monitor.emulator.fleet import DEFAULT_MIX, plan_fleet
from monitor.emulator.hilink_server import HilinkFleet
from monitor.emulator.snmp_shared import SharedSnmpServer
from monitor.model import Protocol, SnmpCredentials

COMMUNITY = "bench-community"


def loopback(number: int) -> str:
    """A distinct loopback address per router number (1 .. 2.5M)."""
    return f"127.{10 + number // 62_500}.{(number // 250) % 250}.{number % 250 + 1}"


async def serve(count: int, snmp_port: int, hilink_port: int, out: str) -> None:
    """Serve the fleet until stdin closes."""
    routers = plan_fleet(count, ["bench-school"], now=time.time(), mix=DEFAULT_MIX, seed=7)
    snmp = SharedSnmpServer(snmp_port)
    hilink = HilinkFleet()
    entries = []
    for number, router in enumerate(routers, 1):
        router.host = loopback(number)
        if router.protocol is Protocol.SNMP:
            # v2c throughout: v3 (USM) stays on pysnmp and is measured on its own.
            router.snmp = SnmpCredentials("2c", community=COMMUNITY)
            router.port = snmp_port
            snmp.add(router.life, model=router.profile, credentials=router.snmp, host=router.host)
        else:
            router.port = hilink_port
            await hilink.add_shared(
                router.life, router.variant, router.http, router.host, router.port
            )
        entries.append(router.config_entry())
    snmp.start()
    print(f"SNMP socket buffers (receive, send): {snmp.buffers}", file=sys.stderr, flush=True)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the bench closes stdin to stop us
    snmp.close()
    await hilink.aclose()
    print(f"answered {snmp.answered} SNMP requests", flush=True)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
