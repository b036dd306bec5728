"""The composition root: builds the daemon from its settings and runs it until told to stop.

Only this module (and the CLI) touches process-wide things: sockets, signals, the database
engine. Everything it builds is handed its dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from monitor.alerts.servicenow import ServiceNowPortal
from monitor.alerts.support import SupportDispatcher
from monitor.api import StatusSources, create_api
from monitor.api.sources import Alerts, Held, LiveState, Reads, Tracked
from monitor.collectors.base import Collector
from monitor.collectors.hilink import HilinkCollector
from monitor.collectors.snmp import SnmpCollector
from monitor.config import Settings, password_key
from monitor.core.health import HealthRules
from monitor.core.lifecycle import OutageRules
from monitor.core.rules import AlertRules
from monitor.errors import ConfigError, Problem, StartupError
from monitor.metrics import DaemonMetrics, GcPauses
from monitor.model import PollTarget, Protocol, Router
from monitor.profiles import Profile, SnmpProfile, load_profiles
from monitor.profiles_hilink import HilinkProfile
from monitor.scheduler import Scheduler
from monitor.store.access import PasswordCipher
from monitor.tracking import Tracker, TrackingRules
from monitor.units import HostPort

log = logging.getLogger(__name__)

# Rules have for-durations of minutes: a fresh look every 30 s is ample and cheap.
ALERT_EVALUATION = timedelta(seconds=30)
DISPATCH_EVERY = timedelta(seconds=5)
# /readyz probes share one database schema check for this long.
READINESS_CACHE_SECONDS = 5.0


class UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def password_cipher(environ: Mapping[str, str]) -> PasswordCipher | None:
    """The device password cipher, if a key is given in the environment (config.password_key)."""
    found = password_key(environ)
    return PasswordCipher.from_text(*found) if found else None


def status_sources(
    settings: Settings, engine: Engine, live: LiveState, alerts: Alerts, read: Reads | None = None
) -> StatusSources:
    """What /api/v1 reads, over `engine`, as the config says (the daemon's own API and
    `monitor api` alike)."""
    return StatusSources.build(
        engine,
        live,
        alerts,
        settings.data_cap.bytes,
        settings.zone,
        password_cipher(os.environ),  # its key is never in the config file (docs/api.md)
        follow_up=settings.poll.interval + ALERT_EVALUATION,
        response_working_days=settings.alerts.response_working_days,
        holiday_region=settings.alerts.holiday_region,
        read=read,
    )


def metrics_token(settings: Settings) -> str | None:
    """The bearer token /metrics asks for, if the config sets one."""
    token = settings.http.metrics_token
    return token.get_secret_value() if token is not None else None


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


def configured_targets(settings: Settings) -> dict[str, PollTarget]:
    """The poll targets the config declares (its own endpoint and credentials), by router id."""
    return {router.id: router.to_target() for router in settings.routers}


def poll_targets(
    routers: Sequence[Router],
    configured: Mapping[str, PollTarget],
    settings: Settings,
    profiles: Mapping[str, Profile],
) -> tuple[list[PollTarget], list[str]]:
    """The routers that can be polled, with credentials (`configured`'s where the config
    declares the router, else the defaults'); and why the others cannot."""
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


def alert_rules(settings: Settings) -> tuple[AlertRules, OutageRules]:
    """The rule thresholds: the config's `alerts:` where set, the core's defaults elsewhere."""
    config = settings.alerts
    own = {"outage", "evaluation_interval"}  # not rule thresholds
    given = {key: value for key, value in config if value is not None and key not in own}
    rules = AlertRules(
        cap_bytes=settings.data_cap.bytes,
        zone=settings.zone,
        health=health_rules(settings),
        **given,
    )
    outage = {key: value for key, value in config.outage if value is not None}
    return rules, OutageRules(**outage)


def build_support(settings: Settings, engine: Engine, metrics: DaemonMetrics) -> SupportDispatcher:
    """The support-request dispatcher, sending to the configured portal (none: recorded only)."""
    config = settings.support_portal
    portal = None
    sent: tuple[str, ...] = ()
    lease = timedelta(minutes=2)
    resolve, close_code = True, "Resolved by caller"
    if config is not None:
        portal = ServiceNowPortal(
            config.url,
            username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            token=config.token.get_secret_value() if config.token else None,
            timeout=config.timeout.total_seconds(),
            caller_id=config.caller_id,
            assignment_groups={
                kind.value: group for kind, group in config.assignment_groups.items()
            },
        )
        sent = tuple(kind.value for kind in config.send)
        lease, resolve, close_code = config.lease, config.resolve, config.close_code
    return SupportDispatcher(
        store.AlertStore(engine),
        store.SupportRequests(engine),
        portal,
        send_kinds=sent,
        resolve=resolve,
        close_code=close_code,
        lease=lease,
        metrics=metrics,
    )


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


def listen_socket(address: HostPort, key: str = "http.listen") -> socket.socket:
    """Bind the HTTP listening socket now, so a taken port is a clear startup error naming the
    setting (`key`) that chose it."""
    try:
        return socket.create_server((address.host, address.port), backlog=512)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(f"{key} {address}: cannot listen: {reason}") from exc


def schema_check(engine: Engine) -> Callable[[], Awaitable[str]]:
    """The database part of /readyz: "ok" if the database answers at the newest schema, else
    why not. The check costs a connection and a query, so probes at any rate share one result
    for `READINESS_CACHE_SECONDS` (one check at a time)."""
    checked: dict[str, Any] = {"until": float("-inf"), "result": ""}
    checking = asyncio.Lock()

    async def check() -> str:
        loop = asyncio.get_running_loop()
        async with checking:
            if loop.time() < checked["until"]:
                return str(checked["result"])
            try:
                current, head = await asyncio.to_thread(store.schema_status, engine)
                result = "ok" if current == head else f"schema {current}, want {head}"
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with why
                result = f"unreachable: {type(exc).__name__}"
            checked.update(until=loop.time() + READINESS_CACHE_SECONDS, result=result)
            return result

    return check


async def run_daemon(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    profiles = load_checked_profiles(settings)
    engine = await asyncio.to_thread(prepare_database, settings)
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry)
    pauses = GcPauses(registry)
    try:
        inventory = store.Inventory(engine)
        tracker = Tracker(
            store.UsageStore(engine),
            store.HealthStore(engine),
            TrackingRules(settings.zone, settings.data_cap.bytes, health_rules(settings)),
        )
        await asyncio.to_thread(tracker.load)
        known_routers: list[Router] = []
        # Until the inventory is first read, the engine must not evaluate: an empty fleet would
        # resolve every alert carried over from before a restart (and raise them again later).
        routers_read = asyncio.Event()
        alert_engine = AlertEngine(
            store.AlertStore(engine),
            tracker,
            lambda: known_routers if routers_read.is_set() else None,
            *alert_rules(settings),
            metrics,
            store.SupportRequests(engine),
        )
        await asyncio.to_thread(alert_engine.load)
        dispatcher = NotificationDispatcher(store.AlertStore(engine), build_notifiers(settings))
        support = build_support(settings, engine, metrics)
        sock = listen_socket(settings.http.listen)
    except BaseException:
        engine.dispose()
        raise
    # The config's routers are in the database now (prepare_database): polling needs only
    # their targets.
    configured = configured_targets(settings)
    declared = len(settings.routers)
    settings = settings.without_routers()
    collectors = build_collectors(profiles)
    reported_skips: set[str] = set()

    # The inventory is read on a thread of its own: the default pool serves the API's database
    # calls, and a slow API request must not make the scheduler's refresh time out.
    inventory_reads = ThreadPoolExecutor(1, thread_name_prefix="inventory")

    async def targets() -> Sequence[PollTarget]:
        routers, organisations = await loop.run_in_executor(
            inventory_reads,
            lambda: (inventory.list_routers(True), inventory.list_organisations()),
        )
        known_routers[:] = routers
        routers_read.set()
        tracker.follow_inventory(routers, organisations)
        found, skipped = poll_targets(routers, configured, settings, profiles)
        for reason in sorted(set(skipped) - reported_skips):
            log.warning("not polling router %s", reason)
        reported_skips.clear()
        reported_skips.update(skipped)
        return found

    async def drain() -> None:
        """Polling stopped: store every queued result, then let the threads go."""
        try:
            await tracker.close()
        except Exception:
            log.exception("stopping: storing the queued poll results failed")
        finally:
            inventory_reads.shutdown(wait=False)

    scheduler = Scheduler(
        targets,
        collectors,
        tracker.handle,
        metrics,
        interval=settings.poll.interval,
        timeout=settings.poll.timeout,
        concurrency=settings.poll.concurrency,
        drain=drain,
    )

    database_check = schema_check(engine)

    async def readiness() -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {"database": await database_check()}
        checks["scheduler"] = "ok" if scheduler.cycles else "starting"
        return all(value == "ok" for value in checks.values()), checks

    api = create_api(
        readiness,
        registry,
        tracker.series.render_bytes,
        status_sources(
            settings, engine, Tracked(tracker), Held(lambda: alert_engine.alerts.values())
        ),
        metrics_token=metrics_token(settings),
    )
    config = uvicorn.Config(api, log_config=None, access_log=False, lifespan="off")
    server = UvicornServer(config)

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
    pauses.install()
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]), name="http"),
        asyncio.create_task(scheduler.run(stop), name="scheduler"),
        asyncio.create_task(
            alert_engine.run(stop, settings.alerts.evaluation_interval), name="alerts"
        ),
        asyncio.create_task(
            dispatcher.run(stop, lambda: list(alert_engine.alerts.values()), DISPATCH_EVERY),
            name="notifications",
        ),
        asyncio.create_task(support.run(stop, DISPATCH_EVERY), name="support requests"),
    ]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    listen = settings.http.listen
    log.info(
        "router-monitor %s running: %d routers configured; status %s/healthz, %s/readyz, "
        "metrics %s/metrics, API docs %s/api/v1/docs",
        __version__,
        declared,
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
        pauses.remove()
        stopper.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        loop.set_exception_handler(None)
        for collector in collectors.values():
            await collector.aclose()
        sock.close()
        engine.dispose()
        log.info("router-monitor stopped")
