"""The emulated SNMP fleet against net-snmp's command-line tools, an independent implementation."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.emulator import ber, usm
from monitor.emulator.life import RouterLife
from monitor.emulator.mibs import MODELS, ViewOptions, build_view
from monitor.emulator.snmp_agent import SnmpFleet
from monitor.emulator.snmp_responder import Responder
from monitor.model import SnmpCredentials

T0 = 1_700_000_000.0  # 2023-11-14, a fixed start for the fake clock
COMMUNITY = "c0mmunity-s3cret"
AUTH_PASS, PRIV_PASS = "auth-pass-phrase", "priv-pass-phrase"
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
M_RECEIVED = (1, 3, 6, 1, 4, 1, 48690, 2, 2, 1, 23, 1)


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Fleet:
    """A running fleet, its fake clock and a scratch dir for net-snmp's config."""

    fleet: SnmpFleet
    clock: FakeClock
    home: Path


def make_life(router_id: str = "r1", **fields: object) -> RouterLife:
    """A router booted at T0."""
    defaults: dict[str, object] = {
        "router_id": router_id,
        "model": "test",
        "imei": "356938035643809",
        "serial": "1100000001",
        "iccid": "8944110000000000001",
    }
    return RouterLife.born(T0, **(defaults | fields))


def v2c(community: str = COMMUNITY) -> SnmpCredentials:
    """v2c credentials."""
    return SnmpCredentials("2c", community=community)


def v3(auth: str | None = "SHA", priv: str | None = None) -> SnmpCredentials:
    """A v3 user `ops` with the test pass phrases."""
    return SnmpCredentials(
        "3", user="ops", auth_protocol=auth, auth_key=AUTH_PASS, priv_protocol=priv,
        priv_key=PRIV_PASS,
    )  # fmt: skip


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet on a fake clock."""
    clock = FakeClock()
    async with SnmpFleet(clock=clock) as fleet:
        yield Fleet(fleet, clock, tmp_path)


async def net_snmp(env: Fleet, tool: str, *args: str, seconds: float = 0.5) -> tuple[int, str]:
    """Run a net-snmp tool (asynchronously: the agent shares this event loop); code, output."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (Debian package 'snmp')")
    # No MIBs (numeric output) and no user config or persistent state leaking in or out.
    isolated = {"PATH": os.environ["PATH"], "HOME": str(env.home), "MIBS": ""}
    isolated |= {"SNMPCONFPATH": str(env.home), "SNMP_PERSISTENT_DIR": str(env.home)}
    process = await asyncio.create_subprocess_exec(
        tool, "-On", "-t", str(seconds), "-r", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=isolated,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return await process.wait(), output.decode()


def v2c_args(address: tuple[str, int], community: str = COMMUNITY) -> list[str]:
    """net-snmp arguments for a v2c request."""
    return ["-v2c", "-c", community, f"{address[0]}:{address[1]}"]


def v3_args(
    address: tuple[str, int], auth: str = "SHA", priv: str | None = None, auth_pass: str = AUTH_PASS
) -> list[str]:
    """net-snmp arguments for a v3 request as user ops."""
    args = ["-v3", "-u", "ops", "-a", auth, "-A", auth_pass]
    args += ["-l", "authPriv", "-x", priv, "-X", PRIV_PASS] if priv else ["-l", "authNoPriv"]
    return [*args, f"{address[0]}:{address[1]}"]


def dotted(oid: ber.Oid) -> str:
    """The numeric form net-snmp prints with -On."""
    return "." + ".".join(map(str, oid))


def walked_oids(output: str) -> list[str]:
    """The OIDs of snmpwalk output lines with a value (not the closing endOfMibView)."""
    return re.findall(r"^(\.[\d.]+) = (?!No more variables)", output, flags=re.MULTILINE)


def value_lines(output: str) -> list[str]:
    """The output lines carrying a value."""
    return [line for line in output.splitlines() if re.match(r"^\.[\d.]+ = (?!No more)", line)]


# --- v2c -----------------------------------------------------------------------------------


async def test_snmpget_reads_values_from_the_life(env: Fleet) -> None:
    life = make_life()
    address = await env.fleet.add(life, model="teltonika-rutos7", credentials=v2c())
    env.clock.now = T0 + 1234.5
    life.advance(env.clock.now)
    life.received_since_boot = 2**31 + 5  # past Integer32: real firmware goes negative
    code, out = await net_snmp(
        env, "snmpget", *v2c_args(address), dotted(SYS_NAME), dotted(SYS_UPTIME), dotted(M_RECEIVED)
    )
    print(out)
    assert code == 0
    assert f'{dotted(SYS_NAME)} = STRING: "r1"' in out
    assert f"{dotted(SYS_UPTIME)} = Timeticks: (123450)" in out
    # The fake clock stands still, so no byte flowed between the assignment and the answer.
    assert f"{dotted(M_RECEIVED)} = INTEGER: {2**31 + 5 - 2**32}" in out


async def test_snmpgetnext_and_missing_instances(env: Fleet) -> None:
    address = await env.fleet.add(make_life(), model="if-mib", credentials=v2c())
    code, out = await net_snmp(env, "snmpgetnext", *v2c_args(address), ".1.3.6.1.2.1.1.4.0")
    assert code == 0
    assert f'{dotted(SYS_NAME)} = STRING: "r1"' in out
    _, out = await net_snmp(env, "snmpget", *v2c_args(address), ".1.3.6.1.2.1.1.5.7", ".1.3.9.9")
    assert "No Such Instance" in out
    assert "No Such Object" in out


@pytest.mark.parametrize(
    ("model", "options"),
    [(model, ViewOptions()) for model in MODELS]
    + [
        ("teltonika-rutos7", ViewOptions(short_modem_table=True)),
        ("cisco-cellular", ViewOptions(without_byte_counters=True)),
    ],
)
async def test_every_view_walks_completely_in_order(
    env: Fleet, model: str, options: ViewOptions
) -> None:
    address = await env.fleet.add(make_life(), model=model, credentials=v2c(), options=options)
    # Without -Cc snmpbulkwalk stops with "OID not increasing" on any ordering fault.
    code, out = await net_snmp(env, "snmpbulkwalk", "-Cr7", *v2c_args(address), ".1")
    assert code == 0, out
    assert "not increasing" not in out
    assert walked_oids(out) == [dotted(oid) for oid in build_view(model, options).oids]
    v1_args = ["-v1", "-c", COMMUNITY, f"{address[0]}:{address[1]}"]
    code, out_v1 = await net_snmp(env, "snmpwalk", *v1_args, ".1")
    assert code == 0, out_v1
    expected_v1 = [line for line in value_lines(out) if "Counter64" not in line]
    assert value_lines(out_v1) == expected_v1


async def test_snmpset_is_refused_with_not_writable_and_changes_nothing(env: Fleet) -> None:
    address = await env.fleet.add(make_life(), model="if-mib", credentials=v2c())
    code, out = await net_snmp(env, "snmpset", *v2c_args(address), dotted(SYS_NAME), "s", "pwned")
    print(out)
    assert code != 0
    assert "notWritable" in out
    _, out = await net_snmp(env, "snmpget", *v2c_args(address), dotted(SYS_NAME))
    assert 'STRING: "r1"' in out
    sets = [record for record in env.fleet.requests("r1") if record.is_set]
    assert [(record.pdu_type, record.oids) for record in sets] == [("set", (SYS_NAME,))]


async def test_wrong_community_times_out_and_is_logged_without_the_secret(env: Fleet) -> None:
    address = await env.fleet.add(make_life(), model="if-mib", credentials=v2c())
    code, out = await net_snmp(env, "snmpget", *v2c_args(address, "guess"), dotted(SYS_NAME))
    assert code != 0
    assert "Timeout" in out
    records = env.fleet.requests("r1")
    assert [record.outcome for record in records] == ["dropped: wrong community"]
    assert records[0].version == "2c"
    assert records[0].oids == (SYS_NAME,)
    assert "guess" not in repr(records)
    assert COMMUNITY not in repr(records)


# --- v3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "priv"),
    [
        ("SHA", None),
        ("MD5", None),
        ("SHA-256", "AES"),
        ("SHA-512", "AES-256"),
        ("SHA", "AES-256"),  # 20-byte key extended to 32: the Blumenthal extension
        ("MD5", "AES-192"),
        ("SHA-224", "AES-192"),
        ("SHA-384", "AES"),
    ],
)
async def test_v3_get_and_bulkwalk(env: Fleet, auth: str, priv: str | None) -> None:
    address = await env.fleet.add(make_life(), model="cisco-cellular", credentials=v3(auth, priv))
    code, out = await net_snmp(env, "snmpget", *v3_args(address, auth, priv), dotted(SYS_NAME))
    assert code == 0, out
    assert f'{dotted(SYS_NAME)} = STRING: "r1"' in out
    code, out = await net_snmp(env, "snmpbulkwalk", *v3_args(address, auth, priv), ".1")
    assert code == 0, out
    assert walked_oids(out) == [dotted(oid) for oid in build_view("cisco-cellular").oids]
    outcomes = {record.outcome for record in env.fleet.requests("r1")}
    assert outcomes == {"report: unknown engine ID (discovery)", "answered"}


async def test_v3_reeder_key_extension_does_not_interoperate_with_net_snmp(env: Fleet) -> None:
    # pysnmp's default AES-256 key extension (Reeder) differs from net-snmp's (Blumenthal).
    address = await env.fleet.add(
        make_life(), model="if-mib", credentials=v3("SHA", "AES-256"), aes_key_extension="reeder"
    )
    code, out = await net_snmp(
        env, "snmpget", *v3_args(address, "SHA", "AES-256"), dotted(SYS_NAME)
    )
    print(out)
    assert code != 0
    assert "report: decryption error" in {record.outcome for record in env.fleet.requests("r1")}


async def test_v3_wrong_auth_key_is_an_authentication_failure_not_a_timeout(env: Fleet) -> None:
    address = await env.fleet.add(make_life(), model="if-mib", credentials=v3("SHA-256", "AES"))
    args = v3_args(address, "SHA-256", "AES", auth_pass="not-the-pass-phrase")
    code, out = await net_snmp(env, "snmpget", *args, dotted(SYS_NAME))
    print(out)
    assert code != 0
    assert "Authentication failure" in out
    assert "Timeout" not in out
    assert env.fleet.requests("r1")[-1].outcome == "report: wrong digest"
    assert "not-the-pass-phrase" not in repr(env.fleet.requests("r1"))


async def test_v3_unknown_user_and_unsupported_level(env: Fleet) -> None:
    address = await env.fleet.add(make_life(), model="if-mib", credentials=v3("SHA", None))
    code, out = await net_snmp(
        env, "snmpget", "-v3", "-u", "mallory", "-l", "noAuthNoPriv",
        f"{address[0]}:{address[1]}", dotted(SYS_NAME),
    )  # fmt: skip
    assert code != 0
    assert "Unknown user name" in out
    code, out = await net_snmp(env, "snmpget", *v3_args(address, "SHA", "AES"), dotted(SYS_NAME))
    assert code != 0
    assert "Unsupported security level" in out


async def test_v3_after_reboot_engine_boots_advance(env: Fleet) -> None:
    life = make_life()
    address = await env.fleet.add(life, model="if-mib", credentials=v3("SHA", "AES"))
    code, _ = await net_snmp(env, "snmpget", *v3_args(address, "SHA", "AES"), dotted(SYS_NAME))
    assert code == 0
    env.clock.now = T0 + 600
    life.reboot(env.clock.now)
    env.clock.now += 5
    code, out = await net_snmp(env, "snmpget", *v3_args(address, "SHA", "AES"), dotted(SYS_UPTIME))
    assert code == 0, out
    assert "Timeticks: (500)" in out
    assert env.fleet.responder("r1").boots == 2


def _signed_request(responder: Responder, user: usm.UsmUser, boots: int, engine_time: int) -> bytes:
    """A GET for sysName as an authenticated client with the given view of the agent's clock."""
    pdu = ber.Pdu(ber.GET, 77, 0, 0, [(SYS_NAME, ber.NULL, None)])
    scoped = ber.ScopedPdu(responder.engine_id, b"", pdu)
    flags = usm.FLAG_AUTH | usm.FLAG_REPORTABLE
    # The client signs exactly as the agent does: borrow the engine's sealing with our flags.
    return responder.usm.seal(1, scoped, flags, user, boots, engine_time)


def test_v3_not_in_time_window_reports_are_authenticated() -> None:
    life = make_life()
    credentials = v3("SHA-256", None)
    responder = Responder(life, build_view("if-mib"), credentials)
    user = usm.UsmUser.from_credentials(credentials, responder.engine_id)
    now = T0 + 1000
    good = responder.answer(_signed_request(responder, user, 1, 1000), now)
    assert good is not None
    reply = ber.decode_message(good)
    assert isinstance(reply, ber.V3Message)
    assert isinstance(reply.data, ber.ScopedPdu)
    assert reply.data.pdu.varbinds == [(SYS_NAME, ber.OCTET_STRING, b"r1")]
    late = responder.answer(_signed_request(responder, user, 1, 1000 - 151), now)
    assert late is not None
    report = ber.decode_message(late)
    assert isinstance(report, ber.V3Message)
    assert isinstance(report.data, ber.ScopedPdu)
    assert report.flags & usm.FLAG_AUTH
    assert report.data.pdu.tag == ber.REPORT
    assert report.data.pdu.varbinds[0][0] == usm.NOT_IN_TIME_WINDOWS
    stale_boots = responder.answer(_signed_request(responder, user, 0, 1000), now)
    assert stale_boots is not None
    assert responder.log[-1].outcome == "report: not in time window"


# --- faults --------------------------------------------------------------------------------


async def test_powered_off_router_is_silent_and_logs_nothing(env: Fleet) -> None:
    life = make_life()
    address = await env.fleet.add(life, model="if-mib", credentials=v2c())
    life.power(T0, on=False)
    code, out = await net_snmp(env, "snmpget", *v2c_args(address), dotted(SYS_NAME))
    assert code != 0
    assert "Timeout" in out
    assert env.fleet.requests("r1") == []


async def test_delay_answers_late_without_holding_up_other_routers(env: Fleet) -> None:
    slow = make_life("slow")
    slow.faults.delay = 1.0
    slow_address = await env.fleet.add(slow, model="if-mib", credentials=v2c())
    fast_address = await env.fleet.add(make_life("fast"), model="if-mib", credentials=v2c())
    finished: list[str] = []

    async def get(name: str, address: tuple[str, int]) -> int:
        code, _ = await net_snmp(env, "snmpget", *v2c_args(address), dotted(SYS_NAME), seconds=3)
        finished.append(name)
        return code

    codes = await asyncio.gather(get("slow", slow_address), get("fast", fast_address))
    assert codes == [0, 0]
    assert finished == ["fast", "slow"]
    _, out = await net_snmp(env, "snmpget", *v2c_args(slow_address), dotted(SYS_NAME), seconds=0.3)
    assert "Timeout" in out


async def test_garbage_answers_are_not_snmp(env: Fleet) -> None:
    life = make_life()
    life.faults.garbage = True
    host, port = await env.fleet.add(life, model="if-mib", credentials=v2c())
    pdu = ber.Pdu(ber.GET, 1, 0, 0, [(SYS_NAME, ber.NULL, None)])
    request = ber.encode_message(ber.CommunityMessage(ber.V2C, COMMUNITY.encode(), pdu))
    loop = asyncio.get_running_loop()
    received: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        transport.sendto(request)
        reply = await asyncio.wait_for(received, timeout=5)
    finally:
        transport.close()
    with pytest.raises(ValueError):  # noqa: PT011 (random bytes fail in any of several ways)
        ber.decode_message(reply)
    code, _ = await net_snmp(env, "snmpget", *v2c_args((host, port)), dotted(SYS_NAME))
    assert code != 0
    assert [record.outcome for record in env.fleet.requests("r1")] == ["garbage", "garbage"]


async def test_wrong_credentials_fault(env: Fleet) -> None:
    one = make_life("one")
    one.faults.wrong_credentials = True
    two = make_life("two")
    two.faults.wrong_credentials = True
    address_one = await env.fleet.add(one, model="if-mib", credentials=v2c())
    address_two = await env.fleet.add(two, model="if-mib", credentials=v3("SHA", "AES"))
    code, out = await net_snmp(env, "snmpget", *v2c_args(address_one), dotted(SYS_NAME))
    assert "Timeout" in out
    code, out = await net_snmp(
        env, "snmpget", *v3_args(address_two, "SHA", "AES"), dotted(SYS_NAME)
    )
    assert code != 0
    assert "Authentication failure" in out
    two.faults.wrong_credentials = False
    code, out = await net_snmp(
        env, "snmpget", *v3_args(address_two, "SHA", "AES"), dotted(SYS_NAME)
    )
    assert code == 0, out


async def test_request_log_records_every_message(env: Fleet) -> None:
    address = await env.fleet.add(make_life(), model="if-mib", credentials=v2c())
    await net_snmp(env, "snmpget", *v2c_args(address), dotted(SYS_NAME), dotted(SYS_UPTIME))
    await net_snmp(env, "snmpgetnext", *v2c_args(address), dotted(SYS_NAME))
    await net_snmp(env, "snmpbulkget", "-Cn0", "-Cr3", *v2c_args(address), dotted(SYS_NAME))
    await net_snmp(env, "snmpset", *v2c_args(address), dotted(SYS_NAME), "s", "x")
    env.clock.now = T0 + 7
    await net_snmp(env, "snmpget", *v2c_args(address, "nope"), dotted(SYS_NAME))
    records = env.fleet.requests("r1")
    assert [(r.pdu_type, r.is_set, r.outcome) for r in records] == [
        ("get", False, "answered"),
        ("getnext", False, "answered"),
        ("getbulk", False, "answered"),
        ("set", True, "answered"),
        ("get", False, "dropped: wrong community"),
    ]
    assert records[0].oids == (SYS_NAME, SYS_UPTIME)
    assert [r.at for r in records] == [T0, T0, T0, T0, T0 + 7]
    assert {r.version for r in records} == {"2c"}
