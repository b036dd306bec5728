"""The daemon's own metrics, on a registry it is handed (never the global one).

Per-router series are a projection of stored state, rendered per router when that state changes
(see DESIGN.md); they arrive with the collectors. What lives here is about the daemon itself.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor import __version__


class DaemonMetrics:
    """Counters and gauges about the monitor process, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        build_info = Gauge(
            "router_monitor_build_info",
            "Always 1; labels say which build of router-monitor is running.",
            ["version"],
            registry=registry,
        )
        build_info.labels(version=__version__).set(1)
        self.inventory_routers = Gauge(
            "router_monitor_inventory_routers",
            "Routers in the inventory that are scheduled for polling.",
            registry=registry,
        )
        self.polls = Counter(
            "router_monitor_polls",
            "Router polls by result: success, or the failure kind (timeout, refused, auth, ...).",
            ["result"],
            registry=registry,
        )
        self.poll_duration = Histogram(
            "router_monitor_poll_duration_seconds",
            "Time from a poll's start to its result, including retries.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.poll_overruns = Counter(
            "router_monitor_poll_overruns",
            "Turns skipped because the router's previous poll was still running.",
            registry=registry,
        )
        self.inventory_errors = Counter(
            "router_monitor_inventory_errors",
            "Times the scheduler could not read the inventory from the database.",
            registry=registry,
        )
