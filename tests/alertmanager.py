"""Run Debian's real `prometheus-alertmanager` on a loopback high port for a test, then kill it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
MISSING = "prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)"

# One route to a receiver with no integrations: alerts are stored and grouped, never sent on.
CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
"""


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def running_alertmanager(workdir: Path, start_within: float = 20.0) -> Iterator[str]:
    """Start Alertmanager (no clustering, storage in `workdir`); yield its base URL."""
    if BINARY is None:
        raise RuntimeError(MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG, encoding="utf-8")
    port = free_tcp_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "alertmanager.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [BINARY, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             f"--web.external-url={url}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + start_within
            while not _ready(url):
                if process.poll() is not None:
                    raise RuntimeError(f"alertmanager exited: {log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"alertmanager not ready: {log_path.read_text()}")
                time.sleep(0.05)  # between probes: a refused connection returns at once
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
