"""Run Debian's net-snmp `snmpd` on a loopback high port for a test, and stop it afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SNMPD = shutil.which("snmpd") or "/usr/sbin/snmpd"
COMMUNITY = "rm-test-community"
V3_USER = "rmtest"
V3_AUTH_KEY = "auth-key-for-tests"
V3_PRIV_KEY = "priv-key-for-tests"


@dataclass(frozen=True)
class Snmpd:
    """A running agent: where it listens and the credentials it accepts."""

    host: str
    port: int
    community: str = COMMUNITY
    user: str = V3_USER
    auth_key: str = V3_AUTH_KEY
    priv_key: str = V3_PRIV_KEY


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 nobody is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def available() -> bool:
    """Whether snmpd and snmpget are installed."""
    return Path(SNMPD).exists() and shutil.which("snmpget") is not None


def _ready(port: int) -> bool:
    # snmpget waits for its own timeout: the probe paces itself, no sleep needed.
    probe = subprocess.run(
        ["snmpget", "-v2c", "-c", COMMUNITY, "-t", "0.2", "-r", "0", "-On",
         f"udp:127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
        capture_output=True, text=True, check=False, timeout=5,
    )  # fmt: skip
    return probe.returncode == 0 and "1.3.6.1.2.1.1.3.0" in probe.stdout


@contextmanager
def running_snmpd(workdir: Path, attempts: int = 100) -> Iterator[Snmpd]:
    """Start snmpd with a v2c community and a SHA-256/AES v3 user; kill it on exit."""
    port = free_udp_port()
    state = workdir / "snmpd-state"
    state.mkdir(parents=True, exist_ok=True)
    conf = workdir / "snmpd.conf"
    conf.write_text(
        f"[snmp] persistentDir {state}\n"
        f"rocommunity {COMMUNITY} 127.0.0.1\n"
        f'createUser {V3_USER} SHA-256 "{V3_AUTH_KEY}" AES "{V3_PRIV_KEY}"\n'
        f"rouser {V3_USER} authpriv\n",
        encoding="utf-8",
    )
    log = (workdir / "snmpd.log").open("w")
    process = subprocess.Popen(
        [SNMPD, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "snmpd.pid"),
         f"udp:127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env={"SNMP_PERSISTENT_DIR": str(state)},
    )  # fmt: skip
    try:
        for _ in range(attempts):
            if process.poll() is not None:
                raise RuntimeError(f"snmpd exited: {(workdir / 'snmpd.log').read_text()}")
            if _ready(port):
                break
        else:
            raise RuntimeError("snmpd did not answer snmpget")
        yield Snmpd("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
