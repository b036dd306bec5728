"""Composition for the emulated fleet: `monitor demo` (daemon + fleet) and `monitor emulate`.

Kept apart from `monitor.app` so that the daemon proper never imports the emulator; like `app`,
this module may wire anything together.
"""

from __future__ import annotations

import asyncio
import csv
import ipaddress
import logging
import secrets
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import yaml
from pydantic import SecretStr

from monitor.app import run_daemon
from monitor.config import OrganisationSettings, RouterSettings, Settings
from monitor.config_alerts import SupportPortalSettings
from monitor.emulator.fleet import EmulatedFleet, EmulatedRouter, animate, plan_fleet
from monitor.emulator.life import RouterLife
from monitor.emulator.portal import PortalServer, RequestRecord
from monitor.model import OrganisationKind, Protocol

log = logging.getLogger(__name__)

DEMO_ORGANISATION = OrganisationSettings(
    id="emulated-la", name="Emulated Local Authority", kind=OrganisationKind.LOCAL_AUTHORITY
)
# The demo's pace: problems become alerts and support requests within a minute or two, so that
# `make run` shows the whole chain (the real defaults wait 5-15 minutes). --real-pace keeps them.
DEMO_HEALTH = {
    "unreachable_after": timedelta(seconds=30),
    "wan_down_after": timedelta(seconds=30),
    "sim_absent_after": timedelta(seconds=20),
    "recovery_after": timedelta(seconds=40),
}
DEMO_INTERVAL = timedelta(seconds=15)
DEMO_ALERTS = {
    "offline_after": timedelta(minutes=1),
    "wan_down_after": timedelta(minutes=1),
    "sim_removed_after": timedelta(seconds=30),
}
CSV_COLUMNS = (
    "serial", "kind", "organisation", "order_number", "imei", "iccid", "router_id", "protocol",
    "host", "port", "profile",
)  # fmt: skip


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (only such routers may be emulated)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def emulate_configured(settings: Settings, now: float) -> list[EmulatedRouter]:
    """Emulated twins of the config's routers that live on loopback, on their own ports."""
    twins = []
    for router in settings.routers:
        if not is_loopback(router.host):
            continue
        life = RouterLife.born(
            now, router_id=router.id, model=router.profile, imei=router.imei,
            serial=router.serial, iccid=router.iccid,
        )  # fmt: skip
        target = router.to_target()
        twin = EmulatedRouter(
            life, router.profile, router.organisation, router.order_number,
            snmp=target.snmp, http=target.http, host=router.host, port=target.endpoint.port,
        )  # fmt: skip
        twins.append(twin)
    return twins


async def run_demo(settings: Settings, count: int, seed: int = 1, real_pace: bool = False) -> None:
    """Serve an emulated fleet on loopback and run the daemon against it until stopped.

    The config's own loopback routers get emulated twins on their ports; generated routers make
    up the rest of `count`, on free ports, and join the config as `routers:` entries. Without a
    `support_portal:` in the config, an emulated portal on a free loopback port receives the
    support requests, and every call it gets is logged.
    """
    now = time.time()
    organisations = settings.organisations or (DEMO_ORGANISATION,)
    schools = [o.id for o in organisations if o.kind in _SCHOOL_KINDS]
    twins = emulate_configured(settings, now)
    extra = plan_fleet(
        max(0, count - len(twins)), schools or [o.id for o in organisations], now=now, seed=seed
    )
    password = secrets.token_urlsafe(16)
    async with (
        EmulatedFleet() as fleet,
        PortalServer(username="demo", password=password, on_request=_portal_log) as portal,
    ):
        await fleet.start(twins + extra)
        generated = tuple(RouterSettings.model_validate(r.config_entry()) for r in extra)
        update: dict[str, object] = {
            "routers": settings.routers + generated,
            "organisations": organisations,
        }
        if settings.support_portal is None:
            update["support_portal"] = SupportPortalSettings(
                url=portal.url, username="demo", password=SecretStr(password)
            )
            log.info("emulated support portal on %s: requests appear below", portal.url)
        if not real_pace:
            update["health"] = settings.health.model_copy(update=DEMO_HEALTH)
            update["alerts"] = settings.alerts.model_copy(update=DEMO_ALERTS)
            poll = settings.poll
            if poll.interval > DEMO_INTERVAL:
                timeout = min(poll.timeout, DEMO_INTERVAL / 2)
                update["poll"] = poll.model_copy(
                    update={"interval": DEMO_INTERVAL, "timeout": timeout}
                )
            log.info(
                "demo pace: polls every 15s, alerts in a minute or two (--real-pace: the config's)"
            )
        demo = settings.model_copy(update=update)
        snmp = sum(1 for r in fleet.routers if r.protocol is Protocol.SNMP)
        log.info(
            "emulated fleet up on loopback: %d routers (%d SNMP, %d HiLink)",
            len(fleet.routers), snmp, len(fleet.routers) - snmp,
        )  # fmt: skip
        stop = asyncio.Event()
        mishaps = asyncio.create_task(animate(fleet.routers, stop, seed=seed))
        try:
            await run_daemon(demo, stop)
        finally:
            stop.set()
            await mishaps


def _portal_log(record: RequestRecord) -> None:
    at = datetime.fromtimestamp(record.at, UTC).strftime("%H:%M:%S")
    answer = "no answer" if record.status is None else str(record.status)
    log.info("support portal (emulated) %s: %s %s -> %s", at, record.method, record.path, answer)


async def run_emulator(
    count: int,
    organisations: Sequence[str],
    mix: dict[str, int],
    seed: int,
    config_out: TextIO | None,
    csv_out: TextIO | None,
) -> None:
    """Serve a fleet until SIGINT/SIGTERM, first describing it as a config fragment and/or CSV."""
    routers = plan_fleet(count, organisations, now=time.time(), seed=seed, mix=mix)
    async with EmulatedFleet() as fleet:
        await fleet.start(routers)
        if config_out is not None:
            entries = [router.config_entry() for router in routers]
            yaml.safe_dump({"routers": entries}, config_out, sort_keys=False)
            config_out.flush()
        if csv_out is not None:
            write_csv(routers, csv_out)
        log.info("emulating %d routers on loopback; Ctrl-C stops", len(routers))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await animate(fleet.routers, stop, seed=seed)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    log.info("emulator stopped")


def write_csv(routers: Sequence[EmulatedRouter], out: TextIO) -> None:
    """The routers as a `monitor import devices` file (credentials go in router_defaults)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in routers:
        life = r.life
        writer.writerow([
            life.serial, "router", r.organisation, r.order_number, life.imei, life.iccid or "",
            life.router_id, r.protocol.value, r.host, r.port, r.profile,
        ])  # fmt: skip
    out.flush()


def open_output(path: Path | None) -> TextIO | None:
    """Open an output file for `monitor emulate`, or None."""
    return path.open("w", encoding="utf-8", newline="") if path is not None else None


_SCHOOL_KINDS = (OrganisationKind.SCHOOL, OrganisationKind.COLLEGE)
