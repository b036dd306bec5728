"""/metrics renders `RouterSeries` on a worker thread while polls keep updating it (issue 7):
rendering must never raise and must always give a well-formed exposition."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.api import create_api
from monitor.metrics import RouterSeries

ROUNDS = 300  # bounded: updates per router id in the writer loop
ROUTERS = 400


@pytest.fixture(autouse=True)
def switch_often() -> Iterator[None]:
    """Let the interpreter switch threads every microsecond, so that a render iterating a
    table in Python while another thread changes it would be caught here."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def churn(series: RouterSeries, stop: threading.Event) -> None:
    """Add, change and remove routers (families appear and vanish) until told to stop."""
    for round_ in range(ROUNDS):
        if stop.is_set():
            return
        for number in range(ROUTERS):
            router = f"r-{number}"
            if (number + round_) % 7 == 0:
                series.remove(router)
                continue
            samples = [("router_up", "", number % 2)]
            if (number + round_) % 3:
                samples.append(("router_signal_rssi_dbm", "", -60.5 - number % 20))
                samples.append(("router_state", 'state="online"', 1))
            series.update(router, samples)
            if number % 5 == round_ % 5:
                series.set_info(router, {"imei": str(number), "model": "e5576"})


def test_render_on_another_thread_while_routers_change() -> None:
    series = RouterSeries(piece=8)  # small pieces: routers move between them all the time
    for number in range(ROUTERS):
        series.update(f"r-{number}", [("router_up", "", 1)])
    stop = threading.Event()
    errors: list[BaseException] = []
    rendered: list[str] = []

    def render_repeatedly() -> None:
        try:
            while not stop.is_set() and len(rendered) < 500:
                rendered.append(series.render())
        except BaseException as exc:  # noqa: BLE001 - the test reports what the thread raised
            errors.append(exc)

    renderer = threading.Thread(target=render_repeatedly)
    renderer.start()
    try:
        churn(series, stop)
    finally:
        stop.set()
        renderer.join(timeout=60)
    assert not renderer.is_alive()
    assert errors == []
    assert rendered
    for text in rendered[:: max(1, len(rendered) // 20)] + rendered[-1:]:
        assert text == "" or text.endswith("\n")
        parsed = list(text_string_to_metric_families(text))
        names = [family.name for family in parsed]
        assert len(names) == len(set(names))  # one group per family, as the format requires
        shown = [
            (sample.name, tuple(sorted(sample.labels.items())))
            for family in parsed
            for sample in family.samples
        ]
        assert len(shown) == len(set(shown))  # a router moving between pieces shows once


def test_the_metrics_route_serves_what_render_gives_while_it_changes() -> None:
    series = RouterSeries()
    series.update("r-1", [("router_up", "", 1)])

    async def ready() -> tuple[bool, dict[str, str]]:
        return True, {}

    stop = threading.Event()
    writer = threading.Thread(target=churn, args=(series, stop))
    with TestClient(create_api(ready, CollectorRegistry(), series.render)) as api:
        writer.start()
        try:
            for _ in range(20):
                answer = api.get("/metrics")
                assert answer.status_code == 200
                families = {
                    f.name
                    for f in text_string_to_metric_families(answer.text)
                    # The application's own request times (and their `_created`) aside:
                    if not f.name.startswith("router_monitor_http_request_seconds")
                }
                assert families <= {"router_up", "router_signal_rssi_dbm", "router_state",
                                    "router_info"}  # fmt: skip
        finally:
            stop.set()
            writer.join(timeout=60)
    assert not writer.is_alive()
