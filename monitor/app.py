"""The composition root: builds the daemon from its settings and runs it until told to stop.

Only this module (and the CLI) touches process-wide things: sockets, signals, the database
engine. Everything it builds is handed its dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor import __version__, store
from monitor.api import create_api
from monitor.config import Settings
from monitor.errors import StartupError
from monitor.metrics import DaemonMetrics
from monitor.model import Router
from monitor.scheduler import Scheduler
from monitor.units import HostPort

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def prepare_database(settings: Settings) -> Engine:
    """Open the database, bring its schema to head and load the config's inventory into it."""
    engine = store.open_database(settings.database.url)
    try:
        before, head = store.schema_status(engine)
        if before != head:
            log.info("upgrading the database schema from %s to %s", before or "(empty)", head)
            store.upgrade(engine)
        result = store.Inventory(engine).sync_config(
            [org.to_model() for org in settings.organisations],
            [router.to_model() for router in settings.routers],
        )
    except BaseException:
        engine.dispose()
        raise
    log.info("inventory from config: %s", result)
    return engine


def listen_socket(address: HostPort) -> socket.socket:
    """Bind the HTTP listening socket now, so a taken port is a clear startup error."""
    try:
        return socket.create_server((address.host, address.port), backlog=512)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(f"http.listen {address}: cannot listen: {reason}") from exc


async def run_daemon(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    engine = await asyncio.to_thread(prepare_database, settings)
    inventory = store.Inventory(engine)
    try:
        sock = listen_socket(settings.http.listen)
    except StartupError:
        engine.dispose()
        raise

    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry)

    async def monitored_routers() -> Sequence[Router]:
        return await asyncio.to_thread(inventory.list_routers, True)

    scheduler = Scheduler(monitored_routers, settings.poll.interval, metrics)

    async def readiness() -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            current, head = await asyncio.to_thread(store.schema_status, engine)
            checks["database"] = "ok" if current == head else f"schema {current}, want {head}"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["scheduler"] = "ok" if scheduler.cycles else "starting"
        return all(value == "ok" for value in checks.values()), checks

    api = create_api(readiness, registry)
    config = uvicorn.Config(api, log_config=None, access_log=False, lifespan="off")
    server = _Server(config)

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            server.force_exit = True
        else:
            log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]), name="http"),
        asyncio.create_task(scheduler.run(stop), name="scheduler"),
    ]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    listen = settings.http.listen
    log.info(
        "router-monitor %s running: %d routers configured; status %s/healthz, %s/readyz, "
        "metrics %s/metrics, API docs %s/api/v1/docs",
        __version__,
        len(settings.routers),
        listen.url,
        listen.url,
        listen.url,
        listen.url,
    )
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        failed = [task for task in done if task is not stopper]
        stop.set()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in failed:
            if task.exception() is not None:
                raise StartupError(f"{task.get_name()} stopped unexpectedly") from task.exception()
            if task.get_name() == "http" and not server.started:
                raise StartupError(f"http server on {listen} did not start")
    finally:
        stopper.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        sock.close()
        engine.dispose()
        log.info("router-monitor stopped")
