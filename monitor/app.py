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
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor import __version__, store
from monitor.alerts.dispatch import NotificationDispatcher
from monitor.alerts.engine import AlertEngine
from monitor.alerts.notify import AlertmanagerNotifier, EmailNotifier, Notifier, WebhookNotifier
from monitor.api import create_api
from monitor.collectors.base import Collector
from monitor.collectors.hilink import HilinkCollector
from monitor.collectors.snmp import SnmpCollector
from monitor.config import Settings
from monitor.core.health import HealthRules
from monitor.core.lifecycle import OutageRules
from monitor.core.rules import AlertRules
from monitor.errors import ConfigError, Problem, StartupError
from monitor.metrics import DaemonMetrics
from monitor.model import PollTarget, Protocol, Router
from monitor.profiles import Profile, SnmpProfile, load_profiles
from monitor.profiles_hilink import HilinkProfile
from monitor.scheduler import Scheduler
from monitor.tracking import Tracker, TrackingRules
from monitor.units import HostPort

log = logging.getLogger(__name__)

# Rules have for-durations of minutes: a fresh look every 30 s is ample and cheap.
ALERT_EVALUATION = timedelta(seconds=30)
DISPATCH_EVERY = timedelta(seconds=5)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def load_checked_profiles(settings: Settings) -> dict[str, Profile]:
    """Load the model profiles and check that every configured router names a fitting one."""
    directory = Path(settings.profiles.directory)
    profiles = load_profiles(directory)
    problems = []
    for index, router in enumerate(settings.routers):
        where = f"routers[{index}].profile (id {router.id})"
        profile = profiles.get(router.profile)
        if profile is None:
            known = ", ".join(sorted(profiles)) or "none"
            reason = f"no profile {router.profile!r} in {directory} (known: {known})"
            problems.append(Problem(where, reason))
        elif profile.protocol != router.protocol.value:
            reason = f"profile {router.profile!r} is for {profile.protocol}, not {router.protocol}"
            problems.append(Problem(where, reason))
    if problems:
        raise ConfigError("configuration", problems)
    return profiles


def poll_targets(
    routers: Sequence[Router], settings: Settings, profiles: Mapping[str, Profile]
) -> tuple[list[PollTarget], list[str]]:
    """The routers that can be polled, with credentials; and why the others cannot."""
    configured = {router.id: router.to_target() for router in settings.routers}
    defaults = settings.router_defaults
    snmp = defaults.snmp.to_credentials() if defaults.snmp else None
    http = defaults.http.to_login() if defaults.http else None
    targets, skipped = [], []
    for router in routers:
        if router.id in configured:
            targets.append(configured[router.id])
        elif router.endpoint is None:
            skipped.append(f"{router.id}: no management endpoint")
        elif router.endpoint.profile not in profiles:
            skipped.append(f"{router.id}: unknown profile {router.endpoint.profile!r}")
        elif router.endpoint.protocol is Protocol.SNMP and snmp is None:
            skipped.append(f"{router.id}: no SNMP credentials (set router_defaults.snmp)")
        else:
            targets.append(PollTarget(router.id, router.endpoint, snmp, http))
    return targets, skipped


def health_rules(settings: Settings) -> HealthRules:
    """The health for-durations: the config's where set, the core's defaults elsewhere."""
    given = {key: value for key, value in settings.health if value is not None}
    return HealthRules(**given)


def build_notifiers(settings: Settings) -> list[Notifier]:
    """One notifier per configured Alertmanager, webhook and mail server."""
    config = settings.notifications
    timeout = config.timeout.total_seconds()
    generator = settings.http.listen.url + "/metrics"
    notifiers: list[Notifier] = [
        AlertmanagerNotifier(target.url, timeout, generator_url=generator)
        for target in config.alertmanager
    ]
    notifiers += [
        WebhookNotifier(hook.url, hook.secret.get_secret_value(), timeout)
        for hook in config.webhooks
    ]
    if config.email is not None:
        mail = config.email
        password = mail.password.get_secret_value() if mail.password else None
        server = (mail.host, mail.port, mail.sender, mail.recipients, mail.starttls)
        notifiers.append(
            EmailNotifier(*server, username=mail.username, password=password, timeout=timeout)
        )
    return notifiers


def build_collectors(profiles: Mapping[str, Profile]) -> dict[Protocol, Collector]:
    """One collector per management protocol, sharing its sockets across routers."""
    hilink = {name: p for name, p in profiles.items() if isinstance(p, HilinkProfile)}
    snmp = {name: p for name, p in profiles.items() if isinstance(p, SnmpProfile)}
    return {Protocol.SNMP: SnmpCollector(snmp), Protocol.HILINK: HilinkCollector(hilink)}


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


def _quiet_pysnmp_garbage(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """pysnmp lets a datagram it cannot decode raise in its receive callback; the poll then
    times out. A router answering garbage must not fill the log with tracebacks."""
    if "TransportDispatcher" in repr(context.get("handle")):
        log.debug("undecodable SNMP datagram dropped: %r", context.get("exception"))
        return
    loop.default_exception_handler(context)


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
    profiles = load_checked_profiles(settings)
    engine = await asyncio.to_thread(prepare_database, settings)
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry)
    try:
        inventory = store.Inventory(engine)
        tracker = Tracker(
            store.UsageStore(engine),
            store.HealthStore(engine),
            TrackingRules(settings.zone, settings.data_cap.bytes, health_rules(settings)),
        )
        await asyncio.to_thread(tracker.load)
        known_routers: list[Router] = []
        alert_engine = AlertEngine(
            store.AlertStore(engine),
            tracker,
            lambda: known_routers,
            AlertRules(settings.data_cap.bytes, settings.zone, health_rules(settings)),
            OutageRules(),
            metrics,
        )
        await asyncio.to_thread(alert_engine.load)
        dispatcher = NotificationDispatcher(store.AlertStore(engine), build_notifiers(settings))
        sock = listen_socket(settings.http.listen)
    except BaseException:
        engine.dispose()
        raise
    collectors = build_collectors(profiles)
    reported_skips: set[str] = set()

    async def targets() -> Sequence[PollTarget]:
        routers = await asyncio.to_thread(inventory.list_routers, True)
        known_routers[:] = routers
        found, skipped = poll_targets(routers, settings, profiles)
        for reason in sorted(set(skipped) - reported_skips):
            log.warning("not polling router %s", reason)
        reported_skips.clear()
        reported_skips.update(skipped)
        return found

    scheduler = Scheduler(
        targets,
        collectors,
        tracker.handle,
        metrics,
        interval=settings.poll.interval,
        timeout=settings.poll.timeout,
        concurrency=settings.poll.concurrency,
    )

    async def readiness() -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            current, head = await asyncio.to_thread(store.schema_status, engine)
            checks["database"] = "ok" if current == head else f"schema {current}, want {head}"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["scheduler"] = "ok" if scheduler.cycles else "starting"
        return all(value == "ok" for value in checks.values()), checks

    api = create_api(readiness, registry, tracker.series.render)
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
    loop.set_exception_handler(_quiet_pysnmp_garbage)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]), name="http"),
        asyncio.create_task(scheduler.run(stop), name="scheduler"),
        asyncio.create_task(alert_engine.run(stop, ALERT_EVALUATION), name="alerts"),
        asyncio.create_task(
            dispatcher.run(stop, lambda: list(alert_engine.alerts.values()), DISPATCH_EVERY),
            name="notifications",
        ),
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
        loop.set_exception_handler(None)
        for collector in collectors.values():
            await collector.aclose()
        sock.close()
        engine.dispose()
        log.info("router-monitor stopped")
