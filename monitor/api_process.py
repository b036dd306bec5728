"""The composition root of `monitor api`: the status API in a process of its own.

The daemon serves `/api/v1` itself, which is all a small fleet needs. A large one answers the
portal from here instead: one interpreter lock and one event loop cannot both poll 100,000
routers and answer 200 requests a second quickly (docs/performance.md). This process only
reads, from the database the pollers write: the inventory, tokens and support requests as
ever, each router's live view as the pollers publish it with every batch of results
(`monitor.store.live`, one batch of writes behind), and the alerts their engines store. So it
also answers for every shard of a sharded fleet at once.

It never migrates the schema (the daemon does): until the database is at the newest one,
`/readyz` answers 503 saying which schema it found.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

import uvicorn
from prometheus_client import CollectorRegistry, ProcessCollector

from monitor import __version__, store
from monitor.api import create_api
from monitor.api.sources import Reads, Stored, StoredAlerts
from monitor.app import (
    UvicornServer,
    listen_socket,
    metrics_token,
    schema_check,
    status_sources,
)
from monitor.config import Settings
from monitor.errors import StartupError
from monitor.metrics import GcPauses
from monitor.units import HostPort

log = logging.getLogger(__name__)


async def run_api(
    settings: Settings, listen: HostPort | None = None, stop: asyncio.Event | None = None
) -> None:
    """Serve the status API on `listen` (default `http.api_listen`) until SIGINT/SIGTERM (or
    `stop` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    address = listen or settings.http.api_listen
    # The routers the config declares are the daemon's to load and poll; none is read here.
    settings = settings.without_routers()
    gc.collect()
    engine = await asyncio.to_thread(store.open_database, settings.database.url)
    try:
        sock = listen_socket(address, "http.api_listen" if listen is None else "--listen")
    except BaseException:
        engine.dispose()
        raise
    database_check = schema_check(engine)

    async def readiness() -> tuple[bool, dict[str, str]]:
        checks = {"database": await database_check()}
        return checks["database"] == "ok", checks

    read = Reads(inline=engine.dialect.name == "sqlite")
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # this process's CPU and memory, on its own /metrics
    pauses = GcPauses(registry)
    api = create_api(
        readiness,
        registry,
        sources=status_sources(
            settings,
            engine,
            Stored(engine, settings.data_cap.bytes, settings.zone, read),
            StoredAlerts(store.AlertStore(engine), read=read),
            read,
        ),
        metrics_token=metrics_token(settings),
    )
    server = UvicornServer(uvicorn.Config(api, log_config=None, access_log=False, lifespan="off"))

    def on_signal(signum: int) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        if stop.is_set():
            server.force_exit = True
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    pauses.install()
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    stopper = asyncio.create_task(stop.wait(), name="stop")
    log.info(
        "router-monitor %s status API running (reading the database): %s/api/v1/docs",
        __version__,
        address.url,
    )
    try:
        done, _ = await asyncio.wait([serving, stopper], return_when=asyncio.FIRST_COMPLETED)
        unexpected = serving in done and not stop.is_set()
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        if unexpected:
            raise StartupError(f"http server on {address} stopped unexpectedly") from (
                serving.exception()
            )
    finally:
        pauses.remove()
        stopper.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        sock.close()
        engine.dispose()
        log.info("router-monitor status API stopped")
