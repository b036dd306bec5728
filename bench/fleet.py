"""`make bench`: the real daemon against an emulated fleet, side by side with snmp_exporter.

Run: BENCH_ROUTERS=1000 BENCH_CYCLES=3 .venv/bin/python bench/fleet.py
Everything on loopback, bounded in count and time. CPU figures come from /proc (user+system
ticks of each process) and time.process_time, not wall time: the machine is shared.
Steps: serve the fleet (bench/fleet_server.py, its own process); run `monitor run` on it for
BENCH_CYCLES intervals while a client asks the status API ~200 times a second; scrape /metrics;
then, in this process, poll with each collector alone (CPU per router-poll by protocol), fold
samples into a Tracker on SQLite (database write cost), and scrape the same SNMP routers with
Debian's prometheus-snmp-exporter on a module asking the same OIDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import yaml

from monitor import store
from monitor.collectors.convert import Varbind
from monitor.collectors.hilink import HilinkCollector
from monitor.collectors.snmp import SnmpCollector
from monitor.collectors.snmp_codec import PysnmpCodec, SnmpCodec, Walk
from monitor.collectors.v2c import V2cCodec
from monitor.core.health import HealthRules
from monitor.model import (
    Counter,
    Endpoint,
    HttpLogin,
    PollTarget,
    Protocol,
    Sample,
    SnmpCredentials,
)  # fmt: skip
from monitor.profiles import SnmpProfile, load_profiles
from monitor.profiles_hilink import HilinkProfile
from monitor.tracking import Tracker, TrackingRules

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
TICK = os.sysconf("SC_CLK_TCK")
EXPORTER = "/usr/bin/prometheus-snmp-exporter"
API_RATE = 200  # status API requests per second during polling
SAMPLE_POLLS = 2000  # most polls of each collector alone, in this process
MEMORY_LIMIT = int(os.environ.get("BENCH_MEMORY_LIMIT_GIB", "12")) << 30  # daemon + emulator


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_wait_seconds(pid: int) -> float:
    """Time a process's threads have spent runnable but waiting for a CPU (run-queue wait,
    /proc/<pid>/task/*/schedstat: the kernel's schedstats), so far; 0 where the kernel keeps
    none."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread gone meanwhile
            waited += int((task / "schedstat").read_text().split()[1])
    return waited / 1e9


def stolen_seconds() -> float:
    """CPU time the hypervisor gave to others while this machine's CPUs wanted it (steal, the
    8th figure of /proc/stat's cpu line), all CPUs, so far; 0 on bare metal."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) / TICK if len(fields) > 8 else 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def kernel_counters() -> dict[str, int]:
    """UDP and TCP listen drop counters of this network namespace (/proc/net/snmp, netstat)."""
    found: dict[str, int] = {}
    for name, wanted in (
        ("/proc/net/snmp", {"Udp": ("InDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors")}),
        ("/proc/net/netstat", {"TcpExt": ("ListenOverflows", "ListenDrops")}),
    ):
        lines = Path(name).read_text().splitlines()
        for header, values in zip(lines[::2], lines[1::2], strict=False):
            kind, _, keys = header.partition(": ")
            if kind in wanted:
                table = dict(zip(keys.split(), values.partition(": ")[2].split(), strict=False))
                for key in wanted[kind]:
                    found[f"{kind}.{key}"] = int(table.get(key, 0))
    return found


def drops_since(before: dict[str, int]) -> str:
    now = kernel_counters()
    return ", ".join(f"{k} {now[k] - before[k]}" for k in before if not k.endswith("InDatagrams"))


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def udp_sockets(owners: dict[str, int]) -> list[str]:
    """Each UDP socket of the named processes: queued bytes and datagrams dropped (its own
    count, /proc/net/udp's last column)."""
    by_inode = {inode: name for name, pid in owners.items() for inode in socket_inodes(pid)}
    shown = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        owner = by_inode.get(fields[9])
        if owner is not None:
            rx_queue = int(fields[4].split(":")[1], 16)
            port = int(fields[1].split(":")[1], 16)
            shown.append(f"{owner} :{port} rx_queue {rx_queue} B, drops {fields[-1]}")
    return shown


# One /metrics scrape, timed where it is read: prints "seconds bytes" (fails past 120 s).
SCRAPE = """
import sys, time, urllib.request
t0 = time.perf_counter()
body = urllib.request.urlopen(sys.argv[1], timeout=120).read()
print(time.perf_counter() - t0, len(body))
"""


def counters(text: str) -> dict[str, float]:
    """The daemon's own counters, from its /metrics text."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(
            r"^(router_monitor_(?:polls_total|poll_overruns_total|gc_pause_seconds_\w+"
            r"|http_request_seconds_\w+)\S*) (\S+)$",
            line,
        )
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def gc_pauses(before: dict[str, float], after: dict[str, float]) -> str:
    """Garbage collections by generation over a window: how many, their total pause, and the
    bucket the longest fell in (router_monitor_gc_pause_seconds)."""
    shown = []
    for generation in ("0", "1", "2"):
        label = f'generation="{generation}"'

        def moved(name: str, extra: str = "", label: str = label) -> float:
            key = f"router_monitor_gc_pause_seconds_{name}{{{label}{extra}}}"
            return after.get(key, 0.0) - before.get(key, 0.0)

        count = moved("count")
        buckets = sorted(
            (float(key.split('le="')[1].split('"')[0]), after[key] - before.get(key, 0.0))
            for key in after
            if key.startswith("router_monitor_gc_pause_seconds_bucket{") and label in key
        )
        longest = next((le for le, n in buckets if n >= count), float("inf"))
        shown.append(
            f"gen {generation}: {count:.0f}, {moved('sum'):.2f} s in all, longest <= {longest:g} s"
        )
    return "; ".join(shown)


def served(before: dict[str, float], after: dict[str, float], route: str) -> str:
    """The API's own timing of one route's 200 answers over a window
    (router_monitor_http_request_seconds): how many, how many took over 50 ms, and the bucket
    its 99th percentile fell in. It starts when the request reaches the application, so the
    difference from the client's figures is time queued before that (or the client's own)."""
    wanted = {"route": route, "method": "GET", "code": "200"}

    def moved(kind: str) -> dict[str, float]:
        # {le (or "" for the count): requests in the window}; labels come in any order.
        found: dict[str, float] = {}
        for key, value in after.items():
            name, _, labels = key.partition("{")
            if name != f"router_monitor_http_request_seconds_{kind}":
                continue
            given = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if all(given.get(k) == v for k, v in wanted.items()):
                found[given.get("le", "")] = value - before.get(key, 0.0)
        return found

    count = moved("count").get("", 0.0)
    if not count:
        return "no request timed (an API without router_monitor_http_request_seconds?)"
    buckets = sorted((float(le), n) for le, n in moved("bucket").items())
    within = next((n for le, n in buckets if le == 0.05), 0.0)
    p99 = next((le for le, n in buckets if n >= 0.99 * count), float("inf"))
    return f"{count:.0f} timed, {count - within:.0f} over 50 ms, p99 <= {p99 * 1e3:g} ms"


def router_up(text: str, protocol_of: dict[str, str]) -> dict[str, tuple[int, int]]:
    """router_up at the last poll, by protocol: (up, shown)."""
    found: dict[str, list[int]] = {}
    for match in re.finditer(r'^router_up\{router="([^"]+)"\} (\S+)$', text, re.MULTILINE):
        counts = found.setdefault(protocol_of.get(match.group(1), "?"), [0, 0])
        counts[0] += float(match.group(2)) == 1.0
        counts[1] += 1
    return {k: (v[0], v[1]) for k, v in found.items()}


def polls_done(values: dict[str, float]) -> tuple[float, float]:
    """(all polls, successful polls)."""
    total = sum(v for k, v in values.items() if k.startswith("router_monitor_polls_total"))
    ok = values.get('router_monitor_polls_total{result="success"}', 0.0)
    return total, ok


def poll_results(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Polls by result (success, timeout, ...) between two scrapes."""
    return {
        k.split('"')[1]: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith("router_monitor_polls_total{")
    }


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def target_of(entry: dict[str, Any]) -> PollTarget:
    protocol = Protocol(entry["protocol"])
    endpoint = Endpoint(protocol, entry["host"], entry["port"], entry["profile"])
    snmp = SnmpCredentials("2c", community=entry["snmp"]["community"]) if "snmp" in entry else None
    http = HttpLogin(**entry["http"]) if "http" in entry else None
    return PollTarget(entry["id"], endpoint, snmp, http)


def write_config(
    path: Path, entries: list[dict[str, Any]], port: int, interval: float, api_port: int
) -> None:
    config = {
        "database": {"url": f"sqlite:///{path.parent / 'bench.db'}"},
        "http": {"listen": f"127.0.0.1:{port}", "api_listen": f"127.0.0.1:{api_port}"},
        "poll": {
            "interval": f"{interval:g}s",
            "timeout": f"{min(5.0, interval / 2):g}s",
            "concurrency": 2000,
        },
        "log": {"level": "warning"},
        "profiles": {"directory": str(ROOT / "config" / "profiles")},
        "organisations": [{"id": "bench-school", "name": "Bench School", "kind": "school"}],
        "routers": entries,
    }
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(config, handle, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def create_token(config: Path) -> str:
    """A programme-wide status API token, made the way an operator would."""
    made = subprocess.run(  # noqa: S603
        [str(ROOT / ".venv" / "bin" / "monitor"), "token", "create", "--role", "programme",
         "--name", "bench", "--config", str(config)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=120)) as response:
        return response.status, await response.read()


async def run_daemon_phase(
    entries: list[dict[str, Any]], work: Path, interval: float, cycles: int
) -> dict[str, Any]:
    port, api_port = free_port(), free_port()
    config = work / "monitor.yaml"
    write_config(config, entries, port, interval, api_port)
    base = f"http://127.0.0.1:{port}"
    # The status API under load: `monitor api` (its own process, reading the database: what a
    # large fleet runs), or with BENCH_API=daemon the daemon's own /api/v1.
    in_daemon = os.environ.get("BENCH_API", "process") == "daemon"
    api_base = base if in_daemon else f"http://127.0.0.1:{api_port}"
    auth = {"Authorization": f"Bearer {create_token(config)}"}
    api_seconds = float(os.environ.get("BENCH_API_SECONDS", min(interval, 60.0)))
    log = (work / "daemon.log").open("w")
    # BENCH_POLLER_NICE=5 runs the daemon as docs/api.md advises beside `monitor api`: at a
    # lower CPU priority, so that a request waits less for a core.
    nice = int(os.environ.get("BENCH_POLLER_NICE", "0"))
    daemon = subprocess.Popen(  # noqa: S603
        [*(["nice", "-n", str(nice)] if nice else []),
         str(ROOT / ".venv" / "bin" / "monitor"), "run", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out: dict[str, Any] = {"pid": daemon.pid, "api_in": "daemon" if in_daemon else "process"}
    api: subprocess.Popen[bytes] | None = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def ready(process: subprocess.Popen[bytes], url: str, name: str) -> float:
                started = time.monotonic()
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited; see {work / (name + '.log')}")
                    try:
                        status, _ = await fetch(session, url + "/readyz")
                        if status == 200:
                            return time.monotonic() - started
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() - started > 900:
                        raise RuntimeError(f"{name} not ready within 900 s")
                    await asyncio.sleep(0.5)

            out["startup_s"] = await ready(daemon, base, "daemon")
            if not in_daemon:
                api = subprocess.Popen(  # noqa: S603
                    [str(ROOT / ".venv" / "bin" / "monitor"), "api", "--config", str(config)],
                    stdout=(work / "api.log").open("w"), stderr=subprocess.STDOUT,
                )  # fmt: skip
                await ready(api, api_base, "api")
            api_pid = api.pid if api is not None else daemon.pid
            async with session.get(api_base + "/api/v1/routers", headers=auth) as answer:
                status = answer.status
            out["api_path"] = "/api/v1/routers" if status == 200 else "/readyz"
            emulator_pid = int(os.environ["BENCH_EMULATOR_PID"])
            peak = {"daemon": 0, "emulator": 0}

            async def wait(seconds: float) -> None:
                # Sleep, watching memory: stop the run before it takes the machine.
                end = time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    for name, pid in (("daemon", daemon.pid), ("emulator", emulator_pid)):
                        peak[name] = max(peak[name], rss_bytes(pid))
                    if peak["daemon"] + peak["emulator"] > MEMORY_LIMIT:
                        raise RuntimeError(f"RSS above {MEMORY_LIMIT >> 30} GiB: {peak}")
                    await asyncio.sleep(min(left, 5.0))

            async def scrape() -> tuple[float, int]:
                # (seconds, bytes) of one /metrics scrape; (seconds, 0) if it failed or took
                # over 120 s. From a process of its own, as Prometheus scrapes: read in this
                # one, the 124 MB at 100k took the event loop that times the API load.
                started = time.perf_counter()
                scraper = await asyncio.create_subprocess_exec(
                    PY, "-c", SCRAPE, base + "/metrics", stdout=asyncio.subprocess.PIPE
                )
                printed, _ = await scraper.communicate()
                if scraper.returncode != 0:
                    return time.perf_counter() - started, 0
                seconds, size = printed.split()
                return float(seconds), int(size)

            await wait(interval)  # one warm-up cycle: every router seen once
            _, text = await fetch(session, base + "/metrics")
            before, cpu0, wall0 = counters(text.decode()), cpu_seconds(daemon.pid), time.monotonic()
            emulator_cpu0 = cpu_seconds(emulator_pid)
            kernel0 = kernel_counters()
            await wait(interval * cycles)
            _, text = await fetch(session, base + "/metrics")
            after, cpu1, wall1 = counters(text.decode()), cpu_seconds(daemon.pid), time.monotonic()
            emulator_cpu1 = cpu_seconds(emulator_pid)
            kernel1 = kernel_counters()
            out["kernel"] = {k: kernel1[k] - kernel0[k] for k in kernel0}
            out["sockets"] = udp_sockets({"daemon": daemon.pid, "emulator": emulator_pid})
            out["up"] = router_up(text.decode(), {e["id"]: e["protocol"] for e in entries})
            # Then polling with the status API under load: first alone, then with a /metrics
            # scrape every 10 s (as Prometheus would), each for half of BENCH_API_SECONDS.
            load_cpu0 = cpu_seconds(daemon.pid)
            api_cpu0 = cpu_seconds(api_pid)
            # What the processes waited for a CPU under the load: the API's tail is mostly that.
            waiting = {"daemon": daemon.pid, "emulator": emulator_pid}
            if api is not None:
                waiting["monitor api"] = api.pid
            waited0 = {name: cpu_wait_seconds(pid) for name, pid in waiting.items()}
            stolen0 = stolen_seconds()
            kernel0 = kernel_counters()
            path = api_base + out["api_path"]
            # The support portal's own query: one router by IMEI, for routers spread over the
            # fleet (the first 1,000 of a shuffled list: a page-cache mix, not one hot row).
            rng = random.Random(7)
            picked = rng.sample(entries, min(1000, len(entries)))
            details = [f"{api_base}/api/v1/routers/{e['imei']}" for e in picked]
            # The API process's own collections over its load (its /metrics, when it has one).
            _, text = await fetch(session, api_base + "/metrics")
            api_gc0 = served0 = counters(text.decode())
            load_started = time.monotonic()
            for phase in ("api", "api_detail", "api_scraped"):
                urls = details if phase == "api_detail" else [path]
                # The load from a process of its own (bench/api_client.py, as the portal's
                # clients are); the URLs and the token on its stdin, not its command line.
                client = await asyncio.create_subprocess_exec(
                    PY, str(ROOT / "bench" / "api_client.py"), str(API_RATE),
                    str(api_seconds / 2), stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                asked = json.dumps({"urls": urls, "headers": auth}).encode()
                loaded = asyncio.create_task(client.communicate(asked))
                if phase != "api_scraped":
                    await wait(api_seconds / 2)
                else:
                    for _ in range(max(1, int(api_seconds / 2 / 10))):
                        await scrape()
                        await wait(10.0)
                printed, _ = await loaded
                if client.returncode != 0:
                    raise RuntimeError(f"the API load client failed ({client.returncode})")
                answered = json.loads(printed)
                out[phase], out[f"{phase}_failed"] = answered["latencies"], answered["failed"]
                out[f"{phase}_s"] = answered["seconds"]
                if in_daemon:
                    # Its /metrics is the whole fleet's (~124 MB at 100k): not read per phase.
                    out[f"{phase}_served"] = "not read per phase (BENCH_API=daemon)"
                    continue
                _, text = await fetch(session, api_base + "/metrics")
                route = "/api/v1/routers/{router}" if phase == "api_detail" else out["api_path"]
                served1 = counters(text.decode())
                out[f"{phase}_served"] = served(served0, served1, route)
                served0 = served1  # where the next phase starts
            out["load_wall_s"] = time.monotonic() - load_started
            # The polls meanwhile: from the end of the measured window (`after`, a few seconds
            # before the load began) to now.
            _, text = await fetch(session, base + "/metrics")
            out["load_polls"] = counters(text.decode())
            out["load_polls_s"] = time.monotonic() - wall1
            if in_daemon:
                _, text = await fetch(session, api_base + "/metrics")
                served0 = counters(text.decode())
            out["api_gc"] = gc_pauses(api_gc0, served0)
            out["load_cpu_s"] = cpu_seconds(daemon.pid) - load_cpu0
            out["api_cpu_s"] = cpu_seconds(api_pid) - api_cpu0
            out["load_waited"] = {
                name: cpu_wait_seconds(pid) - waited0[name] for name, pid in waiting.items()
            }
            out["load_stolen_s"] = stolen_seconds() - stolen0
            out["api_rss"] = rss_bytes(api_pid)
            out["load_kernel"] = drops_since(kernel0)
            out["load_sockets"] = udp_sockets({"daemon": daemon.pid, "emulator": emulator_pid})
            out["peak"] = peak
            scrapes = [await scrape() for _ in range(3)]
        total0, ok0 = polls_done(before)
        total1, ok1 = polls_done(after)
        overruns = "router_monitor_poll_overruns_total"
        out.update(
            before=before,
            after=after,
            window_s=wall1 - wall0,
            polls=total1 - total0,
            ok=ok1 - ok0,
            overruns=after.get(overruns, 0) - before.get(overruns, 0),
            results=poll_results(before, after),
            cpu_s=cpu1 - cpu0,
            emulator_cpu_s=emulator_cpu1 - emulator_cpu0,
            rss=rss_bytes(daemon.pid),
            metrics=scrapes,
        )
        return out
    finally:
        for process in (api, daemon):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


class RecordingCodec:
    """Wraps a codec, remembering the OIDs asked per profile (for the exporter's module)."""

    def __init__(self, inner: SnmpCodec) -> None:
        self.inner = inner
        self.asked: dict[str, tuple[set[str], set[str]]] = {}

    async def fetch(
        self, target: PollTarget, get: Sequence[str], walk: Sequence[Walk], budget: float
    ) -> list[Varbind]:
        gets, walks = self.asked.setdefault(target.endpoint.profile, (set(), set()))
        gets.update(get)
        walks.update(w.column for w in walk)
        return await self.inner.fetch(target, get, walk, budget)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def poll_all(
    collector: Any, targets: Sequence[PollTarget], concurrency: int
) -> tuple[float, list[Any]]:
    """CPU seconds of this process to poll every target once; the results."""
    gate = asyncio.Semaphore(concurrency)

    async def one(target: PollTarget) -> Any:
        async with gate:
            return await collector.poll(target, 5.0)

    cpu = time.process_time()
    results = await asyncio.gather(*(one(t) for t in targets))
    return time.process_time() - cpu, results


def exporter_module(
    asked: dict[str, tuple[set[str], set[str]]], kinds: dict[str, str]
) -> dict[str, Any]:
    """snmp.yml modules asking the same OIDs as our collector, one module per model."""
    modules: dict[str, Any] = {}
    for profile, (gets, walks) in asked.items():
        metrics = []
        for number, oid in enumerate(sorted(gets)):
            kind = kinds.get(oid, "OctetString")
            metrics.append(
                {
                    "name": f"m_get_{number}",
                    "oid": oid.rsplit(".", 1)[0] if oid.endswith(".0") else oid,
                    "type": _exporter_type(kind),
                }
            )
        for number, column in enumerate(sorted(walks)):
            kind = next((k for o, k in kinds.items() if o.startswith(column + ".")), "OctetString")
            metrics.append(
                {
                    "name": f"m_walk_{number}",
                    "oid": column,
                    "type": _exporter_type(kind),
                    "indexes": [{"labelname": "index", "type": "gauge"}],
                }
            )
        modules[profile] = {
            "version": 2, "auth": {"community": "bench-community"}, "max_repetitions": 25,
            "retries": 1, "timeout": "5s", "get": sorted(gets), "walk": sorted(walks),
            "metrics": metrics,
        }  # fmt: skip
    return modules


def _exporter_type(kind: str) -> str:
    if kind in ("Counter32", "Counter64"):
        return "counter"
    if kind in ("Integer32", "Gauge32", "TimeTicks"):
        return "gauge"
    return "DisplayString"


async def exporter_phase(
    work: Path, snmp_targets: Sequence[PollTarget], asked: Any, kinds: dict[str, str]
) -> dict[str, float]:
    config = work / "snmp.yml"
    config.write_text(yaml.safe_dump(exporter_module(asked, kinds)))
    port = free_port()
    log = (work / "exporter.log").open("w")
    exporter = subprocess.Popen(  # noqa: S603
        [EXPORTER, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for _ in range(100):
                try:
                    await fetch(session, f"http://127.0.0.1:{port}/")
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            gate = asyncio.Semaphore(50)
            failures = 0

            async def scrape(target: PollTarget) -> None:
                nonlocal failures
                url = (f"http://127.0.0.1:{port}/snmp?target={target.endpoint.host}:"
                       f"{target.endpoint.port}&module={target.endpoint.profile}")  # fmt: skip
                async with gate:
                    status, body = await fetch(session, url)
                if status != 200 or b"snmp_scrape_pdus_returned" not in body:
                    failures += 1

            await asyncio.gather(*(scrape(t) for t in snmp_targets[:50]))  # warm-up
            cpu0 = cpu_seconds(exporter.pid)
            await asyncio.gather(*(scrape(t) for t in snmp_targets))
            cpu = cpu_seconds(exporter.pid) - cpu0
        return {"cpu_ms": cpu * 1e3 / len(snmp_targets), "failures": failures}
    finally:
        exporter.terminate()
        exporter.wait(10)
        log.close()


def _a_minute_on(sample: Sample) -> Sample:
    """The sample a minute later, with 1 MB more each way (and uptime to match)."""

    def more(counter: Counter | None) -> Counter | None:
        return None if counter is None else replace(counter, value=counter.value + 10**6)

    traffic = sample.traffic
    uptime = sample.uptime_seconds + 60 if sample.uptime_seconds is not None else None
    return replace(
        sample,
        at=sample.at + timedelta(seconds=60),
        traffic=replace(traffic, received=more(traffic.received), sent=more(traffic.sent)),
        uptime_seconds=uptime,
    )


async def tracking_phase(
    work: Path, samples: Sequence[tuple[PollTarget, Sample]]
) -> tuple[float, float, int]:
    """CPU ms per poll to fold samples into a Tracker (queueing), and to store them (the batch
    writes to SQLite, on the writer thread); and how many batches that took."""
    # A copy of the daemon's database: its inventory rows are what the usage rows refer to.
    shutil.copy(work / "bench.db", work / "tracking.db")
    engine = store.open_database(f"sqlite:///{work / 'tracking.db'}")
    tracker = Tracker(
        store.UsageStore(engine), store.HealthStore(engine),
        TrackingRules(ZoneInfo("Europe/London"), 20 * 10**9, HealthRules()),
    )  # fmt: skip
    tracker.load()
    for target, sample in samples:  # warm: every router's state and month row exist
        await tracker.handle(target, sample)
    await tracker.flush()
    later = [(t, _a_minute_on(s)) for t, s in samples]
    batches = tracker.writes.batches
    cpu = time.process_time()
    for target, sample in later:
        await tracker.handle(target, sample)
    handled = time.process_time()
    await tracker.flush()
    stored = time.process_time()
    batches = tracker.writes.batches - batches
    await tracker.close()
    engine.dispose()
    polls = max(1, len(samples))
    return (handled - cpu) * 1e3 / polls, (stored - handled) * 1e3 / polls, batches


def print_by_protocol(
    daemon_ms: float,
    snmp_share: float,
    snmp_ms: float,
    hilink_ms: float,
    shared_ms: float,
) -> None:
    """The daemon's CPU per router-poll split by protocol. One process polls both, so the
    split is attributed, not measured: each protocol's collector alone, plus the tracking and
    batched writes every poll costs, plus an even share of the rest of the daemon's measured
    CPU `daemon_ms` (scheduling, the event loop, /metrics blocks, alerts, GC, and whatever the
    collectors and writes cost in the daemon beyond what they cost alone), printed too."""
    rest = daemon_ms - (snmp_share * snmp_ms + (1 - snmp_share) * hilink_ms + shared_ms)
    print(f"daemon CPU per router-poll by protocol (attributed, not measured apart): SNMP "
          f"{snmp_ms + shared_ms + rest:.3f} ms, HiLink {hilink_ms + shared_ms + rest:.3f} ms = "
          f"its collector alone + tracking and writes {shared_ms:.3f} ms + the rest of the "
          f"daemon's {daemon_ms:.3f} ms, {rest:.3f} ms a poll, shared evenly")  # fmt: skip


async def main() -> None:
    # The side-by-side comparison needs the exporter, and it runs last: say so now, not after
    # the daemon's phase has taken its minutes.
    if not os.access(EXPORTER, os.X_OK):
        raise SystemExit(
            f"bench: {EXPORTER} not found; it is Debian's prometheus-snmp-exporter "
            "(apt-get install prometheus-snmp-exporter), which the bench compares us with"
        )
    count = int(os.environ.get("BENCH_ROUTERS", "1000"))
    cycles = int(os.environ.get("BENCH_CYCLES", "3"))
    interval = float(os.environ.get("BENCH_INTERVAL", max(5.0, count / 333)))
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    snmp_port, hilink_port = free_port(socket.SOCK_DGRAM), free_port()
    nice = os.environ.get("BENCH_POLLER_NICE", "0")
    print(f"bench: {count} routers, interval {interval:g}s x {cycles} cycles, daemon at nice "
          f"{nice}, work dir {work}")  # fmt: skip
    emulator = subprocess.Popen(  # noqa: S603
        [PY, str(ROOT / "bench" / "fleet_server.py"), str(count), str(snmp_port),
         str(hilink_port), str(work / "fleet.json")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.environ["BENCH_EMULATOR_PID"] = str(emulator.pid)
    try:
        assert emulator.stdout is not None
        if emulator.stdout.readline().strip() != "ready":
            raise RuntimeError("the emulated fleet did not start")
        entries = json.loads((work / "fleet.json").read_text())
        targets = [target_of(e) for e in entries]
        snmp = [t for t in targets if t.endpoint.protocol is Protocol.SNMP]
        hilink = [t for t in targets if t.endpoint.protocol is Protocol.HILINK]
        print(
            f"fleet: {len(snmp)} SNMP v2c + {len(hilink)} HiLink routers, "
            f"emulator pid {emulator.pid}"
        )

        d = await run_daemon_phase(entries, work, interval, cycles)
        scheduled = count / interval * d["window_s"]
        print(f"\n== daemon ({cycles} cycles of {interval:g}s; startup {d['startup_s']:.1f}s) ==")
        print(f"router-polls/s sustained: {d['polls'] / d['window_s']:.1f} "
              f"(scheduled {count / interval:.1f}/s); achieved {d['polls']:.0f} of {scheduled:.0f} "
              f"scheduled ({100 * d['polls'] / scheduled:.1f}%), "
              f"{d['ok']:.0f} successful")  # fmt: skip
        print(f"overruns: {d['overruns']:.0f}")
        print("daemon GC pauses over the window: " + gc_pauses(d["before"], d["after"]))
        daemon_ms = d["cpu_s"] * 1e3 / max(1.0, d["polls"])  # CPU per router-poll
        print(f"daemon CPU: {d['cpu_s']:.1f}s over {d['window_s']:.1f}s = "
              f"{d['cpu_s'] / d['window_s']:.2f} cores; {daemon_ms:.3f} ms per "
              "router-poll (all work: collectors, tracking, DB; no API load)")  # fmt: skip
        print(f"emulator CPU: {d['emulator_cpu_s'] * 1e3 / max(1.0, d['ok']):.3f} ms per answered "
              f"poll ({d['emulator_cpu_s'] / d['window_s']:.2f} cores)")  # fmt: skip
        print(f"daemon RSS: {d['rss'] / 2**20:.0f} MiB total, {d['rss'] / count / 1024:.1f} KiB "
              "per router")  # fmt: skip
        print("poll results: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(d["results"].items())))
        print("router_up at the end, by protocol: " + ", ".join(
            f"{k} {up} of {shown}" for k, (up, shown) in sorted(d["up"].items())))  # fmt: skip
        print("kernel, over the measured window: " + ", ".join(
            f"{k} {v}" for k, v in d["kernel"].items()))  # fmt: skip
        for line in d["sockets"]:
            print(f"  UDP socket {line}")
        print(f"peak RSS: daemon {d['peak']['daemon'] / 2**20:.0f} MiB, emulator "
              f"{d['peak']['emulator'] / 2**20:.0f} MiB")  # fmt: skip
        for phase, path, what in (
            ("api", d["api_path"], "alone"),
            ("api_detail", "/api/v1/routers/{imei}", "alone (1,000 routers in turn)"),
            ("api_scraped", d["api_path"], "with /metrics every 10 s"),
        ):
            api, took = d[phase], d[phase + "_s"]
            p50, p99 = pct(api, 0.5) * 1e3, pct(api, 0.99) * 1e3
            print(f"status API {path} during polling, {what}: {API_RATE} req/s offered, "
                  f"{len(api) / took:.0f} answered 200 ({d[phase + '_failed']} not), "
                  f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
            print(f"  as the API timed them: {d[phase + '_served']}")
        load_s = d["load_wall_s"]
        print(f"status API served by: {d['api_in']}" + (
            f" (`monitor api`): {d['api_cpu_s'] / load_s:.2f} cores under load, RSS "
            f"{d['api_rss'] / 2**20:.0f} MiB" if d["api_in"] == "process" else ""))  # fmt: skip
        print(f"status API ({d['api_in']}) GC pauses under that load: {d['api_gc']}")
        during = poll_results(d["after"], d["load_polls"])
        load_polls = sum(during.values())
        failed = ", ".join(f"{k} {v:.0f}" for k, v in sorted(during.items())
                           if k != "success" and v)  # fmt: skip
        print(f"polls from the window's end to the API load's ({d['load_polls_s']:.0f} s): "
              f"{load_polls / d['load_polls_s']:.1f}/s, {during.get('success', 0.0):.0f} of "
              f"{load_polls:.0f} successful"
              + (f" (failed: {failed})" if failed else ""))  # fmt: skip
        print(f"daemon under API load: {d['load_cpu_s'] / load_s:.2f} cores; kernel meanwhile: "
              f"{d['load_kernel']}; " + "; ".join(d["load_sockets"]))  # fmt: skip
        waited = ", ".join(f"{name} {seconds / load_s:.2f} s a second"
                           for name, seconds in d["load_waited"].items())  # fmt: skip
        print(f"waited for a CPU under the API load (runnable, not running): {waited}; "
              f"stolen (hypervisor): {d['load_stolen_s'] / load_s:.2f} s a second")  # fmt: skip
        best = min(d["metrics"])
        print(f"/metrics at {count} routers: {best[0] * 1e3:.0f} ms (best of 3), {best[1]} bytes; "
              "all: " + ", ".join(f"{t * 1e3:.0f} ms" for t, _ in d["metrics"]))  # fmt: skip

        print("\n== collectors alone, in the bench process (CPU per router-poll) ==")
        profiles = load_profiles(ROOT / "config" / "profiles")
        snmp_profiles = {n: p for n, p in profiles.items() if isinstance(p, SnmpProfile)}
        recording = RecordingCodec(V2cCodec())
        lean = SnmpCollector(snmp_profiles, codec=recording)
        sample_snmp = snmp[:SAMPLE_POLLS]
        kernel0 = kernel_counters()
        await poll_all(lean, sample_snmp[:50], 50)  # warm-up: sockets, caches
        cpu, results = await poll_all(lean, sample_snmp, 100)
        ok = [r for r in results if isinstance(r, Sample)]
        lean_ms = cpu * 1e3 / len(sample_snmp)
        print(f"SNMP v2c, lean codec: {lean_ms:.3f} ms ({len(ok)}/{len(sample_snmp)} samples)")
        print(f"  kernel meanwhile: {drops_since(kernel0)}")
        kernel0 = kernel_counters()
        pysnmp_collector = SnmpCollector(snmp_profiles, codec=PysnmpCodec())
        few = sample_snmp[:200]
        cpu, results = await poll_all(pysnmp_collector, few, 50)
        print(f"SNMP v2c, pysnmp codec: {cpu * 1e3 / len(few):.3f} ms "
              f"({sum(isinstance(r, Sample) for r in results)}/{len(few)} samples)")  # fmt: skip
        await pysnmp_collector.aclose()
        print(f"  kernel meanwhile: {drops_since(kernel0)}")
        hl = HilinkCollector({n: p for n, p in profiles.items() if isinstance(p, HilinkProfile)})
        sample_hl = hilink[:SAMPLE_POLLS]
        await poll_all(hl, sample_hl[:50], 50)
        cpu, results = await poll_all(hl, sample_hl, 100)
        hilink_ms = cpu * 1e3 / max(1, len(sample_hl))
        print(f"HiLink: {hilink_ms:.3f} ms "
              f"({sum(isinstance(r, Sample) for r in results)}/{len(sample_hl)} "
              "samples)")  # fmt: skip
        await hl.aclose()

        kinds: dict[str, str] = {}
        for target in snmp[:50]:
            for vb in await recording.inner.fetch(
                target,
                sorted(recording.asked[target.endpoint.profile][0]),
                [Walk(c) for c in recording.asked[target.endpoint.profile][1]],
                5.0,
            ):
                kinds[vb.oid] = vb.kind
        await lean.aclose()

        by_id = {t.router_id: t for t in sample_snmp}
        tracked = [(by_id[s.router_id], s) for s in ok]
        handle_ms, store_ms, batches = await tracking_phase(work, tracked)
        print(f"tracking (Tracker.handle, queueing): {handle_ms:.3f} ms CPU per poll; "
              f"SQLite batch writes: {store_ms:.3f} ms CPU per poll "
              f"({len(tracked)} polls in {batches} batches)")  # fmt: skip

        print("\n== prometheus-snmp-exporter on the same SNMP routers and OIDs ==")
        kernel0 = kernel_counters()
        exported = await exporter_phase(work, sample_snmp, recording.asked, kinds)
        print(f"  kernel meanwhile: {drops_since(kernel0)}")
        print(f"exporter: {exported['cpu_ms']:.3f} ms CPU per router-poll "
              f"({exported['failures']:.0f} failed scrapes of {len(sample_snmp)})")  # fmt: skip
        print(f"ratio ours/exporter (SNMP CPU per router-poll): {lean_ms / exported['cpu_ms']:.2f}")
        print_by_protocol(daemon_ms, len(snmp) / count, lean_ms, hilink_ms, handle_ms + store_ms)
    finally:
        if emulator.stdin is not None:
            emulator.stdin.close()
        try:
            emulator.wait(30)
        except subprocess.TimeoutExpired:
            emulator.kill()


if __name__ == "__main__":
    asyncio.run(main())
