"""The lean v2c `SnmpCodec`: one asyncio UDP socket for all routers, demultiplexed by request id.

pysnmp costs ~10 ms of CPU per poll, mostly in pyasn1; at 100k routers every 5 minutes that is
more than the machine has (issue 7). `V2cCodec` sends the same GET and GETBULK exchanges
(`snmp_codec.read_plan`) through the small BER codec in snmp_ber.py on one shared socket per
address family. A reply counts only if it comes from the address the request went to and carries
its request id; anything else is ignored. An undecodable datagram from a router we are waiting on
fails that router's exchange as `bad_reply`. `ByVersion` routes v2c targets here and v3 (USM) to
pysnmp, which stays the SNMP library of record.

Thousands of routers answer into one socket, so its receive buffer is asked large
(`SOCKET_BUFFER`); the kernel caps that at `net.core.rmem_max` (often ~208 KiB) and root is never
required to raise it. Instead each socket bounds the requests it has in flight by what its
effective buffer holds (`_window`): replies that cannot all be queued are never asked for at
once, so a busy event loop delays replies instead of losing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from monitor.collectors import snmp_ber
from monitor.collectors.convert import Varbind
from monitor.collectors.snmp_codec import CodecError, SnmpCodec, Walk, read_plan
from monitor.model import FailureKind, PollTarget

Address = tuple[str, int]
SOCKET_BUFFER = 4 * 1024 * 1024  # a burst of replies from thousands of routers must not drop
RESOLVE_TTL = 300.0  # seconds a resolved host name is reused
# Kernel memory one queued reply may take from the receive buffer: its skb "truesize", the
# datagram rounded up to a 4 KiB slab plus the skb itself for a 25-row GETBULK answer (1.5-3 KB).
# With 4096 (2,048 in flight on an 8 MiB buffer) a saturated daemon's buffer filled and dropped
# (bench at 100k routers; resent requests can be answered twice).
REPLY_COST = 8192
WINDOW_BOUNDS = (32, 4096)  # requests in flight per socket, whatever the buffer
DRAIN_BURST = 256  # replies read per readable event, before other callbacks get a turn
MAX_DATAGRAM = 65_535  # the largest UDP payload: an SNMP message never exceeds it
_LOG = logging.getLogger(__name__)
_AUTH_STATUSES = frozenset({6, 16})  # noAccess, authorizationError
_STATUS_NAMES = {1: "tooBig", 2: "noSuchName", 3: "badValue", 5: "genErr", 6: "noAccess"}


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[snmp_ber.Message]
    address: Address
    payload: bytes
    retries: int
    attempt: float
    timer: asyncio.TimerHandle | None = None


class _Socket:
    """One UDP socket: outstanding requests by id, matched with replies by id and address.

    The socket is read directly (`loop.add_reader`), not through an asyncio datagram transport:
    a transport reads one datagram per event-loop turn, so after the loop was busy for a moment
    (an inventory refresh at 100k routers) a backlog of replies drained one per turn while the
    requests' timers expired (bench: 3% of polls timed out at 100k with no packet lost). Here
    every readable event takes up to `DRAIN_BURST` replies. Sends go straight to the socket;
    one the kernel refuses (send buffer full) is treated as a lost datagram: resent on the
    request's next attempt, as any UDP loss would be.
    """

    def __init__(self, family: int) -> None:
        self.pending: dict[int, _Pending] = {}
        self.by_address: dict[Address, set[int]] = {}
        self._next_id = random.randrange(1, 2**31 - 1)  # noqa: S311 - not a secret, a nonce
        self.refused = 0  # sends the kernel refused
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"  # noqa: S104
            self._sock.bind((wildcard, 0))
            received, sent = self._buffers(self._sock)
            self._loop.add_reader(self._sock.fileno(), self._readable)
        except BaseException:
            self._sock.close()
            raise
        low, high = WINDOW_BOUNDS
        self.window = max(low, min(high, received // REPLY_COST))
        self._slots = asyncio.Semaphore(self.window)
        _LOG.debug(
            "SNMP v2c socket: receive buffer %d bytes, send buffer %d (asked %d; capped by "
            "net.core.rmem_max/wmem_max); at most %d requests in flight",
            received,
            sent,
            SOCKET_BUFFER,
            self.window,
        )

    @staticmethod
    def _buffers(sock: socket.socket) -> tuple[int, int]:
        """Ask for large buffers; the effective (receive, send) buffers."""
        effective: dict[int, int] = {}
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # Refused outright: keep the default, the window adapts to it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            effective[option] = sock.getsockopt(socket.SOL_SOCKET, option)
        return effective[socket.SO_RCVBUF], effective[socket.SO_SNDBUF]

    def close(self) -> None:
        """Close the socket; requests still waiting fail as timeouts."""
        if self._sock is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        for entry in self.pending.values():
            if not entry.future.done():
                entry.future.set_exception(CodecError(FailureKind.TIMEOUT, "SNMP socket closed"))

    def _send(self, payload: bytes, address: Address) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(payload, address)
        except OSError as exc:
            # Refused (send buffer full, or an ICMP error queued from an earlier datagram):
            # as if lost on the way; the request's next attempt resends it. Said once, since a
            # router's timeout may then be ours.
            self.refused += 1
            if self.refused == 1:
                _LOG.warning(
                    "SNMP v2c socket refused a send (%s); counted as lost and retried",
                    type(exc).__name__,
                )

    def _readable(self) -> None:
        sock = self._sock
        for _ in range(DRAIN_BURST):
            if sock is None or self._sock is None:
                return
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error on an unconnected socket names no request: it times out.
                continue
            self.datagram_received(data, addr)

    def request_id(self) -> int:
        """A request id not in use on this socket."""
        while True:
            self._next_id = self._next_id % (2**31 - 1) + 1
            if self._next_id not in self.pending:
                return self._next_id

    async def exchange(
        self, address: Address, request_id: int, payload: bytes, attempt: float, retries: int
    ) -> snmp_ber.Message:
        """Send `payload` once a slot of the window is free, resend it (same id) after each
        silent `attempt` seconds, and return the reply; CodecError(timeout) when every attempt
        went unanswered."""
        async with self._slots:
            return await self._exchange(address, request_id, payload, attempt, retries)

    async def _exchange(
        self, address: Address, request_id: int, payload: bytes, attempt: float, retries: int
    ) -> snmp_ber.Message:
        if self._sock is None:
            raise CodecError(FailureKind.TIMEOUT, "SNMP socket closed")
        loop = asyncio.get_running_loop()
        entry = _Pending(loop.create_future(), address, payload, retries, attempt)
        self.pending[request_id] = entry
        self.by_address.setdefault(address, set()).add(request_id)
        entry.timer = loop.call_later(attempt, self._expire, request_id)
        self._send(payload, address)
        try:
            return await entry.future
        finally:
            entry.timer.cancel()
            del self.pending[request_id]
            waiting = self.by_address.get(address)
            if waiting is not None:
                waiting.discard(request_id)
                if not waiting:
                    del self.by_address[address]

    def _expire(self, request_id: int) -> None:
        entry = self.pending.get(request_id)
        if entry is None or entry.future.done():
            return
        if entry.retries > 0 and self._sock is not None:
            entry.retries -= 1
            entry.timer = self._loop.call_later(entry.attempt, self._expire, request_id)
            self._send(entry.payload, entry.address)
            return
        entry.future.set_exception(CodecError(FailureKind.TIMEOUT, "no answer (request timed out)"))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        address = cast(Address, addr[:2])
        try:
            message = snmp_ber.decode_message(data)
        except snmp_ber.BerError as exc:
            # Noise from a router we wait on is its answer; noise from anyone else is ignored.
            for request_id in self.by_address.get(address, ()):
                future = self.pending[request_id].future
                if not future.done():
                    future.set_exception(
                        CodecError(FailureKind.BAD_REPLY, f"undecodable reply ({exc})")
                    )
            return
        entry = self.pending.get(message.request_id)
        if entry is None or entry.address != address or message.tag != snmp_ber.RESPONSE:
            return  # late, foreign or spoofed
        if not entry.future.done():
            entry.future.set_result(message)


class V2cCodec:
    """`SnmpCodec` for SNMP v2c on the lean BER codec; one socket per address family."""

    def __init__(self, retries: int = 1) -> None:
        self._retries = retries
        self._sockets: dict[int, _Socket] = {}
        self._opening: dict[int, asyncio.Lock] = {}
        self._resolved: dict[tuple[str, int], tuple[Address, int, float]] = {}

    async def fetch(
        self, target: PollTarget, get: Sequence[str], walk: Sequence[Walk], budget: float
    ) -> list[Varbind]:
        """GET `get` in chunks and walk each column, concurrently, within `budget` seconds."""
        creds = target.snmp
        if creds is None or creds.version != "2c":
            raise CodecError(FailureKind.AUTH, "no SNMP v2c community configured")
        community = creds.community.encode()
        address, family = await self._resolve(target.endpoint.host, target.endpoint.port)
        sock = await self._socket(family)
        # Each attempt gets an equal share of the deadline, so retries end inside it.
        attempt = max(0.05, budget / (self._retries + 1))

        async def ask(
            tag: int, oids: Sequence[str], non_repeaters: int, repetitions: int
        ) -> list[Varbind]:
            request_id = sock.request_id()
            payload = snmp_ber.encode_request(
                snmp_ber.V2C, community, tag, request_id, oids, non_repeaters, repetitions
            )
            reply = await sock.exchange(address, request_id, payload, attempt, self._retries)
            return _checked(reply)

        async def get_oids(oids: Sequence[str]) -> list[Varbind]:
            return await ask(snmp_ber.GET, oids, 0, 0)

        async def bulk(non_repeaters: int, repetitions: int, oids: Sequence[str]) -> list[Varbind]:
            return await ask(snmp_ber.GET_BULK, oids, non_repeaters, repetitions)

        return await read_plan(get_oids, bulk, get, walk)

    async def aclose(self) -> None:
        """Close the sockets."""
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    async def _socket(self, family: int) -> _Socket:
        found = self._sockets.get(family)
        if found is not None:
            return found
        lock = self._opening.setdefault(family, asyncio.Lock())
        async with lock:
            if family not in self._sockets:
                self._sockets[family] = _Socket(family)
        return self._sockets[family]

    async def _resolve(self, host: str, port: int) -> tuple[Address, int]:
        key = (host, port)
        cached = self._resolved.get(key)
        now = time.monotonic()
        if cached is not None and cached[2] > now:
            return cached[0], cached[1]
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_DGRAM
                )
            except OSError as exc:
                raise CodecError(FailureKind.BAD_REPLY, f"cannot resolve {host}") from exc
            family, _, _, _, sockaddr = infos[0]
            address: Address = (str(sockaddr[0]), int(sockaddr[1]))
        else:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            address = (literal.compressed, port)
        self._resolved[key] = (address, family, now + RESOLVE_TTL)
        return address, family


def _checked(reply: snmp_ber.Message) -> list[Varbind]:
    status = reply.error_status
    if status:
        name = _STATUS_NAMES.get(status, "authorizationError" if status == 16 else str(status))
        kind = FailureKind.AUTH if status in _AUTH_STATUSES else FailureKind.BAD_REPLY
        raise CodecError(kind, f"agent answered error {name}")
    return reply.varbinds


class ByVersion:
    """`SnmpCodec` that sends v2c polls through `V2cCodec` and the rest (v3) through pysnmp."""

    def __init__(self, lean: SnmpCodec, reference: SnmpCodec) -> None:
        self._lean = lean
        self._reference = reference

    async def fetch(
        self, target: PollTarget, get: Sequence[str], walk: Sequence[Walk], budget: float
    ) -> list[Varbind]:
        """Fetch through the codec for the target's SNMP version."""
        lean = target.snmp is not None and target.snmp.version == "2c"
        codec = self._lean if lean else self._reference
        return await codec.fetch(target, get, walk, budget)

    async def aclose(self) -> None:
        """Close both codecs."""
        await self._lean.aclose()
        await self._reference.aclose()
