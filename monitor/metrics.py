"""The daemon's own metrics, on a registry it is handed (never the global one).

Per-router series are a projection of the tracked state, rendered per router when that state
changes (`RouterSeries`, see DESIGN.md); the daemon's own metrics use prometheus-client.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor import __version__


class GcPauses:
    """Times the interpreter's garbage collections (`router_monitor_gc_pause_seconds`, by
    generation): a collection stops every thread of the process, event loop included, and a
    full one walks every tracked object (at 100k routers, seconds: docs/performance.md).

    `install` hooks `gc.callbacks`; `remove` unhooks (the composition root does both)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._pauses = Histogram(
            "router_monitor_gc_pause_seconds",
            "Time the process stood still for a garbage collection, by generation (2: full).",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        # Every generation's series from the start: the youngest is collected only every
        # 20,000 allocations (monitor/cli.py), and an absent series reads as no data.
        for generation in range(3):
            self._pauses.labels(generation=str(generation))
        self._started = 0.0

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._started
            self._pauses.labels(generation=str(info["generation"])).observe(pause)

    def install(self) -> None:
        """Start timing collections."""
        gc.callbacks.append(self._observe)

    def remove(self) -> None:
        """Stop timing collections."""
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)


class RequestTimes:
    """Times every HTTP request a process answers (`router_monitor_http_request_seconds`, by
    route template, method and status code): from the request reaching the application to the
    last byte of its answer handed to the server. Time spent queued before that (a busy event
    loop, the kernel's accept queue) is the client's to see, not this histogram's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._seconds = Histogram(
            "router_monitor_http_request_seconds",
            "Time to answer an HTTP request, by route template, method and status code.",
            ["route", "method", "code"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        """Count one answered request."""
        self._seconds.labels(route=route, method=method, code=str(code)).observe(seconds)


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
PIECE_ROUTERS = 1024  # routers per piece of the exposition (see RouterSeries)


class _Piece:
    """Up to PIECE_ROUTERS routers' lines per family, and each family's text as last joined."""

    __slots__ = ("changes", "joined", "lines", "members", "placed", "texts")

    def __init__(self) -> None:
        self.lines: dict[str, dict[str, str]] = {family: {} for family in ROUTER_FAMILIES}
        self.texts: dict[str, bytes] = {}  # family -> its lines joined, as of `joined`
        self.changes = dict.fromkeys(ROUTER_FAMILIES, 0)  # family -> changes so far
        self.joined: dict[str, int] = {}  # family -> `changes` when its text was joined
        self.placed = 0  # routers placed here, including those that have moved on since
        self.members = 0  # routers here now (some may have no line)


class RouterSeries:
    """Per-router exposition lines, replaced when a router's state changes, joined per scrape.

    Rebuilding 100k routers' metric families at every scrape costs seconds (DESIGN.md); here a
    poll re-renders one router's few lines, and a scrape joins only what changed since the last.
    The lines live in pieces of up to `piece` routers, each family's part of a piece joined
    once and kept until one of its lines changes. A router's state update moves it to the
    newest piece, so the pieces fill and empty in poll order: routers are polled at steady
    offsets, so between two scrapes the routers polled are those of a few recent pieces (and
    the few old pieces they left), and a scrape re-joins about that share of the text instead
    of all of it (bench/metrics_render.py). A piece left empty is dropped.

    `render` may run on another thread (the /metrics route renders off the event loop) while
    polls call `update`, `set_info` and `remove`: those change the pieces only under a lock, and
    `render` copies a piece's lines under it, then joins them without it.
    """

    def __init__(self, piece: int = PIECE_ROUTERS) -> None:
        self._piece_size = piece
        self._pieces: dict[int, _Piece] = {}  # in order of creation: the exposition's order
        self._newest = -1
        self._where: dict[str, int] = {}  # router id -> the piece holding its lines
        self._lock = threading.Lock()

    @property
    def routers(self) -> AbstractSet[str]:
        """The routers that have any line shown (a live view: copy it before removing)."""
        return self._where.keys()

    @property
    def pieces(self) -> int:
        """How many pieces hold lines (each but the newest holds at least one router's)."""
        return len(self._pieces)

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
            where = self._where.get(router_id)
            if where is not None and where == self._newest:
                piece = self._pieces[where]
            else:  # move to the newest piece, with its info line
                info = self._leave(router_id)
                piece = self._place(router_id, fresh=True)
                if info is not None:
                    self._set(piece, INFO_FAMILY, router_id, info)
            for family, lines in piece.lines.items():
                if family in joined:
                    self._set(piece, family, router_id, joined[family])
                elif family != INFO_FAMILY and lines.pop(router_id, None) is not None:
                    piece.changes[family] += 1

    def set_info(self, router_id: str, info: Mapping[str, str]) -> None:
        """Show `router_info` for `router_id` with `info`'s labels (missing ones empty)."""
        labels = "".join(f',{name}="{_escape(info.get(name, ""))}"' for name in INFO_LABELS)
        line = f'{INFO_FAMILY}{{router="{_escape(router_id)}"{labels}}} 1\n'
        with self._lock:
            piece = self._place(router_id, fresh=False)
            self._set(piece, INFO_FAMILY, router_id, line)

    def remove(self, router_id: str) -> None:
        """Stop showing a router that left the inventory."""
        with self._lock:
            self._leave(router_id)

    def render(self) -> str:
        """The text exposition of every router's series; safe on any thread."""
        return self.render_bytes().decode()

    def render_bytes(self) -> bytes:
        """The text exposition of every router's series, UTF-8; safe on any thread.

        Each family is taken in one go under the lock (so a router moving between pieces shows
        once, never twice nor not at all): a piece's text as last joined if none of its lines
        changed since, else a copy of its lines (a C-level copy of references), joined after
        the lock is let go and kept for the next scrape unless they changed meanwhile."""
        parts: list[bytes] = []
        for family in ROUTER_FAMILIES:
            taken: list[tuple[_Piece, int, bytes | None, list[str]]] = []
            with self._lock:
                for piece in self._pieces.values():
                    changes = piece.changes[family]
                    if piece.joined.get(family) == changes:
                        taken.append((piece, changes, piece.texts[family], []))
                    elif piece.lines[family]:
                        taken.append((piece, changes, None, list(piece.lines[family].values())))
            texts: list[bytes] = []
            joined: list[tuple[_Piece, int, bytes]] = []
            for piece, changes, text, lines in taken:
                if text is None:
                    text = "".join(lines).encode()
                    joined.append((piece, changes, text))
                if text:
                    texts.append(text)
            if joined:
                with self._lock:
                    for piece, changes, text in joined:
                        if piece.changes[family] == changes:  # unchanged while joining: keep
                            piece.texts[family] = text
                            piece.joined[family] = changes
            if texts:
                kind, help_text = ROUTER_FAMILIES[family]
                parts.append(f"# HELP {family} {help_text}\n# TYPE {family} {kind}\n".encode())
                parts += texts
        return b"".join(parts)

    def _place(self, router_id: str, fresh: bool) -> _Piece:
        """The piece holding the router: the newest if `fresh` (or it has none yet)."""
        where = self._where.get(router_id)
        if where is not None and not fresh:
            return self._pieces[where]
        piece = self._pieces.get(self._newest)
        if piece is None or piece.placed >= self._piece_size:
            if piece is not None and not piece.members:  # emptied while it was the newest
                del self._pieces[self._newest]
            self._newest += 1
            piece = self._pieces[self._newest] = _Piece()
        piece.placed += 1
        piece.members += 1
        self._where[router_id] = self._newest
        return piece

    def _leave(self, router_id: str) -> str | None:
        """Take the router's lines out of its piece; return its info line, if it had one."""
        where = self._where.pop(router_id, None)
        if where is None:
            return None
        piece = self._pieces[where]
        info = None
        for family, lines in piece.lines.items():
            line = lines.pop(router_id, None)
            if line is not None:
                piece.changes[family] += 1
                if family == INFO_FAMILY:
                    info = line
        piece.members -= 1
        if where != self._newest and not piece.members:
            del self._pieces[where]
        return info

    @staticmethod
    def _set(piece: _Piece, family: str, router_id: str, line: str) -> None:
        lines = piece.lines[family]
        if lines.get(router_id) != line:
            lines[router_id] = line
            piece.changes[family] += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)
