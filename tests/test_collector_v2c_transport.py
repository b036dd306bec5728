"""The lean v2c codec's shared socket: replies matched by request id and address, faults typed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import cast

import pytest
import uvloop

from monitor.collectors import snmp_ber
from monitor.collectors.convert import Varbind
from monitor.collectors.snmp_codec import CodecError, Walk
from monitor.collectors.v2c import WINDOW_BOUNDS, ByVersion, V2cCodec
from monitor.model import Endpoint, FailureKind, PollTarget, Protocol, SnmpCredentials

UPTIME = "1.3.6.1.2.1.1.3.0"
Answer = Callable[[snmp_ber.Message, tuple[str, int]], None]


@dataclass
class FakeAgent(asyncio.DatagramProtocol):
    """A loopback agent whose behaviour each test sets in `answer`."""

    answer: Answer | None = None
    seen: list[snmp_ber.Message] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = snmp_ber.decode_message(data)
        self.seen.append(request)
        if self.answer is not None:
            self.answer(request, addr)

    def reply(self, request: snmp_ber.Message, addr: tuple[str, int], **change: object) -> None:
        """Send a Response to `request` with sysUpTime, fields changed as given."""
        fields: dict[str, object] = {
            "version": request.version, "community": request.community,
            "tag": snmp_ber.RESPONSE, "request_id": request.request_id, "error_status": 0,
            "error_index": 0, "varbinds": [Varbind(UPTIME, "TimeTicks", 4200)],
        }  # fmt: skip
        fields.update(change)
        assert self.transport is not None
        self.transport.sendto(snmp_ber.encode_message(snmp_ber.Message(**fields)), addr)  # type: ignore[arg-type]


@pytest.fixture
async def agent() -> AsyncIterator[FakeAgent]:
    loop = asyncio.get_running_loop()
    transport, made = await loop.create_datagram_endpoint(FakeAgent, local_addr=("127.0.0.1", 0))
    yield made
    transport.close()


@pytest.fixture
async def impostor() -> AsyncIterator[FakeAgent]:
    loop = asyncio.get_running_loop()
    transport, made = await loop.create_datagram_endpoint(FakeAgent, local_addr=("127.0.0.1", 0))
    yield made
    transport.close()


@pytest.fixture
async def codec() -> AsyncIterator[V2cCodec]:
    made = V2cCodec(retries=1)
    yield made
    await made.aclose()


def target(agent: FakeAgent, version: str = "2c") -> PollTarget:
    assert agent.transport is not None
    host, port = agent.transport.get_extra_info("sockname")[:2]
    creds = SnmpCredentials(version, community="c0mmunity", user="u")
    return PollTarget("r1", Endpoint(Protocol.SNMP, host, port, "if-mib"), creds)


async def test_an_answer_is_returned(agent, codec):
    agent.answer = agent.reply
    found = await codec.fetch(target(agent), [UPTIME], [], 1.0)
    assert found == [Varbind(UPTIME, "TimeTicks", 4200)]
    assert agent.seen[0].community == b"c0mmunity"
    assert agent.seen[0].tag == snmp_ber.GET


async def test_a_reply_from_another_address_is_ignored(agent, impostor, codec):
    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        # Someone else answers first with the right request id and a wrong value...
        impostor.reply(request, addr, varbinds=[Varbind(UPTIME, "TimeTicks", 666)])
        # ...and only then the router itself.
        asyncio.get_running_loop().call_later(0.05, agent.reply, request, addr)

    agent.answer = answer
    found = await codec.fetch(target(agent), [UPTIME], [], 1.0)
    assert found == [Varbind(UPTIME, "TimeTicks", 4200)]


async def test_a_reply_with_another_request_id_is_ignored(agent, codec):
    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        agent.reply(request, addr, request_id=request.request_id + 1)

    agent.answer = answer
    with pytest.raises(CodecError) as raised:
        await codec.fetch(target(agent), [UPTIME], [], 0.2)
    assert raised.value.kind is FailureKind.TIMEOUT
    assert len(agent.seen) == 2  # the first try and one retry, with the same request id
    assert agent.seen[0].request_id == agent.seen[1].request_id


async def test_a_lost_request_is_resent_within_the_budget(agent, codec):
    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        if len(agent.seen) > 1:
            agent.reply(request, addr)

    agent.answer = answer
    assert await codec.fetch(target(agent), [UPTIME], [], 0.4)


async def test_garbage_from_the_router_is_a_bad_reply(agent, codec):
    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        assert agent.transport is not None
        agent.transport.sendto(b"\x30\x05\x02\x01\x01\x04\xff", addr)

    agent.answer = answer
    with pytest.raises(CodecError) as raised:
        await codec.fetch(target(agent), [UPTIME], [], 1.0)
    assert raised.value.kind is FailureKind.BAD_REPLY


async def test_garbage_from_a_stranger_is_ignored(agent, impostor, codec):
    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        assert impostor.transport is not None
        impostor.transport.sendto(b"\xff\x00noise", addr)
        asyncio.get_running_loop().call_later(0.05, agent.reply, request, addr)

    agent.answer = answer
    assert await codec.fetch(target(agent), [UPTIME], [], 1.0)


@pytest.mark.parametrize(
    ("status", "kind"), [(16, FailureKind.AUTH), (6, FailureKind.AUTH), (5, FailureKind.BAD_REPLY)]
)
async def test_error_statuses_are_typed(agent, codec, status, kind):
    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        agent.reply(request, addr, error_status=status, error_index=1)

    agent.answer = answer
    with pytest.raises(CodecError) as raised:
        await codec.fetch(target(agent), [UPTIME], [], 1.0)
    assert raised.value.kind is kind
    assert "c0mmunity" not in raised.value.detail


async def test_a_cancelled_poll_leaves_nothing_pending(agent, codec):
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await codec.fetch(target(agent), [UPTIME], [Walk("1.3.6.1.2.1.2.2.1.2")], 5.0)
    sockets = list(codec._sockets.values())
    assert sockets
    assert all(not s.pending and not s.by_address for s in sockets)


async def test_a_walk_uses_getbulk_and_stops_at_the_column_end(agent, codec):
    column = "1.3.6.1.2.1.2.2.1.2"

    def answer(request: snmp_ber.Message, addr: tuple[str, int]) -> None:
        rows = [Varbind(f"{column}.{i}", "OctetString", f"if{i}".encode()) for i in (1, 2)]
        agent.reply(
            request, addr, varbinds=[*rows, Varbind("1.3.6.1.2.1.2.2.1.3.1", "Integer32", 6)]
        )

    agent.answer = answer
    found = await codec.fetch(target(agent), [], [Walk(column)], 1.0)
    assert [vb.oid for vb in found] == [f"{column}.1", f"{column}.2"]
    assert agent.seen[0].tag == snmp_ber.GET_BULK


class _Recorder:
    def __init__(self) -> None:
        self.targets: list[PollTarget] = []

    async def fetch(self, target, get, walk, budget):  # type: ignore[no-untyped-def]
        self.targets.append(target)
        return []

    async def aclose(self) -> None:
        return None


async def test_v3_goes_to_pysnmp_and_v2c_to_the_lean_codec(agent):
    lean, reference = _Recorder(), _Recorder()
    codec = ByVersion(lean, reference)
    await codec.fetch(target(agent, "2c"), [UPTIME], [], 1.0)
    await codec.fetch(target(agent, "3"), [UPTIME], [], 1.0)
    assert [t.snmp.version for t in lean.targets if t.snmp] == ["2c"]
    assert [t.snmp.version for t in reference.targets if t.snmp] == ["3"]


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_replies_queued_while_the_loop_was_busy_beat_their_timers(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """A burst of replies that queued while the event loop was blocked is read before the
    requests' timers run, on the standard loop and on uvloop (the daemon's): an asyncio
    datagram transport reads one per loop turn, so all but one of these would time out."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_replies_queued_while_the_loop_was_busy())


async def _replies_queued_while_the_loop_was_busy() -> None:
    # No more requests than the smallest window, so all are in flight whatever the kernel's
    # buffer limits.
    count, budget = WINDOW_BOUNDS[0], 0.3
    replier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    replier.bind(("127.0.0.1", 0))
    replier.settimeout(5.0)
    received, go = threading.Event(), threading.Event()

    def answer_all_at_once() -> None:
        # Collect every request, then answer them together once the test's loop is blocked.
        requests = [replier.recvfrom(65_535) for _ in range(count)]
        received.set()
        go.wait(5.0)
        for data, addr in requests:
            request = snmp_ber.decode_message(data)
            reply = snmp_ber.Message(
                request.version, request.community, snmp_ber.RESPONSE, request.request_id,
                0, 0, [Varbind(UPTIME, "TimeTicks", 4200)],
            )  # fmt: skip
            replier.sendto(snmp_ber.encode_message(reply), addr)

    thread = threading.Thread(target=answer_all_at_once, daemon=True)
    thread.start()
    codec = V2cCodec(retries=0)
    host, port = replier.getsockname()[:2]
    creds = SnmpCredentials("2c", community="c0mmunity")
    polls = [
        asyncio.create_task(
            codec.fetch(
                PollTarget(f"r{n}", Endpoint(Protocol.SNMP, host, port, "if-mib"), creds),
                [UPTIME],
                [],
                budget,
            )
        )
        for n in range(count)
    ]
    try:
        assert await asyncio.to_thread(received.wait, 5.0)
        # From here the loop is blocked: the replies queue in our socket, the deadlines pass.
        go.set()
        thread.join(timeout=5.0)
        time.sleep(budget * 2)  # noqa: ASYNC251 - the point: the loop is busy past the deadline
        results = await asyncio.gather(*polls, return_exceptions=True)
    finally:
        await codec.aclose()
        replier.close()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert all(r == [Varbind(UPTIME, "TimeTicks", 4200)] for r in results)
