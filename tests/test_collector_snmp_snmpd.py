"""The SNMP collector against Debian's real net-snmp `snmpd` on a loopback high port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from snmpd import Snmpd, available, free_udp_port, running_snmpd

from monitor.collectors import snmp as snmp_module
from monitor.collectors.snmp import SnmpCollector
from monitor.model import (
    CounterType,
    Endpoint,
    FailureKind,
    LinkState,
    PollFailure,
    PollTarget,
    Protocol,
    Sample,
    SnmpCredentials,
    UptimeClock,
)
from monitor.profiles import load_profiles

pytestmark = pytest.mark.skipif(not available(), reason="net-snmp snmpd/snmpget not installed")
ROOT = Path(__file__).parent.parent
FIXED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DEADLINE = 2.0


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One snmpd for the module (its start-up, with MIB loading, takes a second)."""
    with running_snmpd(tmp_path_factory.mktemp("snmpd")) as running:
        yield running


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    """The shipped profiles, with if-mib's interface pattern overridden to match `lo`."""
    directory = tmp_path / "profiles"
    directory.mkdir()
    for source in (ROOT / "config" / "profiles").glob("*.yaml"):
        (directory / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    raw = yaml.safe_load((directory / "if-mib.yaml").read_text(encoding="utf-8"))
    raw["tables"]["wan"]["match"] = "^lo$"
    (directory / "if-mib.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return directory


@pytest.fixture
async def collector(profiles_dir: Path) -> SnmpCollector:
    """A collector on the profiles, with a fixed clock."""
    made = SnmpCollector(load_profiles(profiles_dir), clock=lambda: FIXED)
    yield made
    await made.aclose()


def v2c(agent: Snmpd, community: str | None = None, profile: str = "if-mib") -> PollTarget:
    endpoint = Endpoint(Protocol.SNMP, agent.host, agent.port, profile)
    return PollTarget("lo-router", endpoint, SnmpCredentials("2c", community or agent.community))


def v3(agent: Snmpd, user: str | None = None, auth_key: str | None = None) -> PollTarget:
    endpoint = Endpoint(Protocol.SNMP, agent.host, agent.port, "if-mib")
    creds = SnmpCredentials(
        "3",
        user=user or agent.user,
        auth_protocol="SHA-256",
        auth_key=auth_key or agent.auth_key,
        priv_protocol="AES",
        priv_key=agent.priv_key,
    )
    return PollTarget("lo-router", endpoint, creds)


def lo_rx_bytes() -> int:
    """Bytes received on `lo` so far, as the kernel reports in /proc/net/dev."""
    for line in Path("/proc/net/dev").read_text(encoding="utf-8").splitlines():
        name, _, numbers = line.partition(":")
        if name.strip() == "lo":
            return int(numbers.split()[0])
    raise AssertionError("no lo in /proc/net/dev")


def send_over_loopback(total: int) -> None:
    """Push `total` bytes through a TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            chunk = b"x" * 65536
            sent = received = 0
            while sent < total:
                sent += client.send(chunk[: total - sent])
                while received < sent:
                    received += len(peer.recv(1 << 20))


async def received_on_lo(collector: SnmpCollector, agent: Snmpd) -> int:
    """The agent's ifHCInOctets for `lo`, through the collector."""
    result = await collector.poll(v2c(agent), DEADLINE)
    assert isinstance(result, Sample), result
    assert result.traffic.received is not None
    assert result.traffic.received.type is CounterType.COUNTER64
    assert result.link is LinkState.CONNECTED
    assert result.uptime_clock is UptimeClock.SYS_UPTIME
    return result.traffic.received.value


async def test_v2c_if_mib_counter_follows_loopback_traffic(agent, collector):
    first = await received_on_lo(collector, agent)
    kernel_after_first = lo_rx_bytes()
    payload = 8 * 1024 * 1024
    send_over_loopback(payload)
    # snmpd caches the interface table for a few seconds: poll until the cache has caught up
    # with the payload (bounded in count; each wait is the probe's pace, not a guess).
    polls = 0
    second = first
    while polls < 40 and second - first < payload:
        if polls:
            await asyncio.sleep(0.25)
        second = await received_on_lo(collector, agent)
        polls += 1
    kernel_after_second = lo_rx_bytes()
    moved = second - first
    print(
        f"lo: sent {payload} B; agent counter moved {moved} B after {polls} poll(s); "
        f"/proc/net/dev moved {kernel_after_second - kernel_after_first} B over the window"
    )
    assert moved >= payload
    # The agent reads the kernel's counter (possibly a few seconds stale): never ahead of it.
    assert first <= kernel_after_first
    assert second <= kernel_after_second


async def test_v3_sha256_aes_correct_keys_give_a_sample(agent, collector):
    result = await collector.poll(v3(agent), DEADLINE)
    assert isinstance(result, Sample), result
    assert result.traffic.received is not None


async def test_v3_wrong_auth_key_is_auth_not_timeout(agent, collector):
    secret = "definitely-wrong-key"
    started = time.monotonic()
    result = await collector.poll(v3(agent, auth_key=secret), DEADLINE)
    print(f"wrong key: {result.kind if isinstance(result, PollFailure) else result} "
          f"after {time.monotonic() - started:.3f}s")  # fmt: skip
    assert isinstance(result, PollFailure)
    assert result.kind is FailureKind.AUTH
    assert secret not in result.detail
    assert agent.priv_key not in result.detail


async def test_v3_unknown_user_is_auth(agent, collector):
    result = await collector.poll(v3(agent, user="nobody-here"), DEADLINE)
    assert isinstance(result, PollFailure)
    assert result.kind is FailureKind.AUTH


async def test_v3_after_a_wrong_key_the_right_key_works_again(agent, collector):
    assert isinstance(
        await collector.poll(v3(agent, auth_key="wrong-key-123"), DEADLINE), PollFailure
    )
    assert isinstance(await collector.poll(v3(agent), DEADLINE), Sample)


async def test_v2c_wrong_community_is_a_timeout_without_the_secret(agent, collector, caplog):
    caplog.set_level("DEBUG")
    community = "not-the-community"
    result = await collector.poll(v2c(agent, community=community), 0.5)
    assert isinstance(result, PollFailure)
    # net-snmp drops a request with an unknown community: from outside that is silence.
    assert result.kind is FailureKind.TIMEOUT
    assert community not in result.detail
    assert community not in caplog.text
    assert agent.community not in caplog.text


async def test_closed_port_fails_within_the_deadline(collector):
    closed = Snmpd("127.0.0.1", free_udp_port())
    started = time.monotonic()
    result = await collector.poll(v2c(closed), 1.0)
    elapsed = time.monotonic() - started
    print(f"closed port: {result.kind if isinstance(result, PollFailure) else result} "
          f"after {elapsed:.3f}s (deadline 1.0s)")  # fmt: skip
    assert isinstance(result, PollFailure)
    assert result.kind in (FailureKind.TIMEOUT, FailureKind.REFUSED)


async def test_agent_without_the_profiles_oids_is_unsupported(agent, collector):
    result = await collector.poll(v2c(agent, profile="teltonika-rutos7"), DEADLINE)
    assert isinstance(result, PollFailure)
    assert result.kind is FailureKind.UNSUPPORTED


async def test_concurrent_polls_share_one_engine(agent, collector):
    results = await asyncio.gather(*(collector.poll(v2c(agent), DEADLINE) for _ in range(20)))
    assert all(isinstance(result, Sample) for result in results)


def test_the_collector_cannot_send_a_set():
    from monitor.collectors import snmp_codec

    for module in (snmp_module, snmp_codec):
        assert "set_cmd" not in vars(module)
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert "set_cmd" not in source
        assert "SetCommandGenerator" not in source
