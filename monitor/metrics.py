"""The daemon's own metrics, on a registry it is handed (never the global one).

Per-router series are a projection of the tracked state, rendered per router when that state
changes (`RouterSeries`, see DESIGN.md); the daemon's own metrics use prometheus-client.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

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
        self.alerts_firing = Gauge(
            "router_monitor_alerts_firing",
            "Alerts firing now, by rule.",
            ["rule"],
            registry=registry,
        )
        self.seen_rules: set[str] = set()  # rules ever published, so a cleared one shows 0
        self.inventory_errors = Counter(
            "router_monitor_inventory_errors",
            "Times the scheduler could not read the inventory from the database.",
            registry=registry,
        )
        self.support_requests = Gauge(
            "router_monitor_support_requests",
            "Support requests to the portal, by kind and by state of their delivery.",
            ["kind", "state"],
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "router_monitor_outbox_pending",
            "Outbox rows (notifications, support requests) written but not yet delivered.",
            registry=registry,
        )


# Per-router series: name -> (type, help). Every one is labelled `router` only (plus `state` for
# the one-hot health); static facts join through `router_info` (the info-metric pattern).
INFO_FAMILY = "router_info"
INFO_LABELS = ("imei", "iccid", "model", "firmware", "organisation", "local_authority")
ROUTER_FAMILIES: dict[str, tuple[str, str]] = {
    INFO_FAMILY: (
        "gauge",
        "Always 1; labels carry the router's inventory facts, to join on `router`.",
    ),
    "router_up": ("gauge", "1 if the router's management interface answered the last poll."),
    "router_connected": ("gauge", "1 if the mobile link was connected at the last answer."),
    "router_sim_present": ("gauge", "1 if the router reported a SIM at the last answer."),
    "router_state": ("gauge", "The router's health state, one-hot by `state`."),
    "router_state_since_timestamp_seconds": ("gauge", "When the router entered its state."),
    "router_data_month_used_bytes": (
        "gauge",
        "Bytes both ways counted for the router's SIM this calendar month (Europe/London).",
    ),
    "router_data_month_partial": (
        "gauge",
        "1 if counting began mid-month with nothing to seed it: the usage is a lower bound.",
    ),
    "router_data_month_forecast_bytes": ("gauge", "Projected bytes by the end of the month."),
    "router_data_cap_bytes": ("gauge", "The SIM's monthly data cap; it cannot be raised."),
    "router_signal_rssi_dbm": ("gauge", "Received signal strength (RSSI), dBm."),
    "router_signal_rsrp_dbm": ("gauge", "LTE reference signal received power (RSRP), dBm."),
    "router_signal_rsrq_db": ("gauge", "LTE reference signal received quality (RSRQ), dB."),
    "router_signal_sinr_db": ("gauge", "Signal to interference plus noise ratio (SINR), dB."),
    "router_battery_ratio": ("gauge", "Battery charge, 0 to 1."),
    "router_uptime_seconds": ("gauge", "The router's uptime as it reported it."),
    "router_last_poll_success_timestamp_seconds": ("gauge", "When the router last answered."),
}

# (family, extra labels such as 'state="online"', value): one line of a router's exposition.
RouterSample = tuple[str, str, float]
_RENDER_SLICE = 2048  # routers' lines joined at once by render


class RouterSeries:
    """Per-router exposition lines, replaced when a router's state changes, joined per scrape.

    Rebuilding 100k routers' metric families at every scrape costs seconds (DESIGN.md); here a
    poll re-renders one router's few lines and a scrape only concatenates them, family by
    family, as the text format requires.

    `render` may run on another thread (the /metrics route renders off the event loop) while
    polls call `update`, `set_info` and `remove`: those change the line tables only under a
    lock, and `render` copies one family's lines under it, then joins them without it.
    """

    def __init__(self) -> None:
        self._lines: dict[str, dict[str, str]] = {name: {} for name in ROUTER_FAMILIES}
        self._shown: set[str] = set()
        self._lock = threading.Lock()

    @property
    def routers(self) -> AbstractSet[str]:
        """The routers that have any line shown (a live view: copy it before removing)."""
        return self._shown

    def update(self, router_id: str, samples: Iterable[RouterSample]) -> None:
        """Replace everything shown of `router_id`'s state (not its info) with `samples`."""
        fresh: dict[str, list[str]] = {}
        label = f'router="{_escape(router_id)}"'
        for family, extra, value in samples:
            labels = f"{label},{extra}" if extra else label
            fresh.setdefault(family, []).append(f"{family}{{{labels}}} {_number(value)}\n")
        if INFO_FAMILY in fresh:
            raise ValueError(f"{INFO_FAMILY} is set through set_info")
        joined = {family: "".join(lines) for family, lines in fresh.items()}
        with self._lock:
            for family, lines in self._lines.items():
                if family in joined:
                    lines[router_id] = joined[family]
                elif family != INFO_FAMILY:
                    lines.pop(router_id, None)
            self._shown.add(router_id)

    def set_info(self, router_id: str, info: Mapping[str, str]) -> None:
        """Show `router_info` for `router_id` with `info`'s labels (missing ones empty)."""
        labels = "".join(f',{name}="{_escape(info.get(name, ""))}"' for name in INFO_LABELS)
        line = f'{INFO_FAMILY}{{router="{_escape(router_id)}"{labels}}} 1\n'
        with self._lock:
            self._lines[INFO_FAMILY][router_id] = line
            self._shown.add(router_id)

    def remove(self, router_id: str) -> None:
        """Stop showing a router that left the inventory."""
        with self._lock:
            for lines in self._lines.values():
                lines.pop(router_id, None)
            self._shown.discard(router_id)

    def render(self) -> str:
        """The text exposition of every router's series; safe on any thread.

        Each family's lines are copied under the lock (a C-level copy of references), then
        joined in slices of `_RENDER_SLICE` lines, so that a thread rendering 100k routers hands
        the interpreter back to the event loop between slices rather than holding it for one
        join of ~100 MB.
        """
        parts: list[str] = []
        for family in ROUTER_FAMILIES:
            with self._lock:
                lines = list(self._lines[family].values())
            if not lines:
                continue
            kind, text = ROUTER_FAMILIES[family]
            parts.append(f"# HELP {family} {text}\n# TYPE {family} {kind}\n")
            for start in range(0, len(lines), _RENDER_SLICE):
                parts.append("".join(lines[start : start + _RENDER_SLICE]))
        return "".join(parts)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)
