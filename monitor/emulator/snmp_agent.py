"""An asyncio UDP SNMP agent serving a fleet of emulated routers from one process.

Each router listens on its own (host, port) on loopback and answers from its own `RouterLife`,
model view and credentials (see snmp_responder.py for the protocol side). Faults: a powered-off
router is silent, a delayed one answers later without holding up the others, a garbage one
answers noise, and wrong_credentials makes it treat every client's credentials as wrong.

    async with SnmpFleet(clock=clock) as fleet:
        host, port = await fleet.add(life, model="teltonika-rutos7",
                                     credentials=SnmpCredentials("2c", community="public"))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import cast

from monitor.emulator.life import RouterLife
from monitor.emulator.mibs import DEFAULT_OPTIONS, ViewOptions, build_view
from monitor.emulator.snmp_responder import RequestRecord, Responder
from monitor.model import SnmpCredentials

__all__ = ["RequestRecord", "SnmpFleet"]

Address = tuple[str, int]


class _RouterEndpoint(asyncio.DatagramProtocol):
    """The socket side of one emulated router."""

    def __init__(self, responder: Responder, clock: Callable[[], float]) -> None:
        self.responder = responder
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.TimerHandle] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        faults = self.responder.life.faults
        if faults.powered_off:
            return
        reply = self.responder.answer(data, self.clock())
        if reply is None or self.transport is None:
            return
        if faults.delay > 0:
            loop = asyncio.get_running_loop()
            handle = loop.call_later(faults.delay, self._send_later, reply, addr)
            self.pending.add(handle)
            return
        self.transport.sendto(reply, addr)

    def _send_later(self, reply: bytes, addr: Address) -> None:
        self.pending = {handle for handle in self.pending if not handle.cancelled()}
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # An ICMP port-unreachable from a client that went away: nothing to do.
        return

    def close(self) -> None:
        for handle in self.pending:
            handle.cancel()
        self.pending.clear()
        if self.transport is not None:
            self.transport.close()


class SnmpFleet:
    """Many emulated SNMP routers in one event loop, each on its own loopback address."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._routers: dict[str, tuple[_RouterEndpoint, Address]] = {}

    async def __aenter__(self) -> SnmpFleet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def add(
        self,
        life: RouterLife,
        *,
        model: str,
        credentials: SnmpCredentials,
        host: str = "127.0.0.1",
        port: int = 0,
        options: ViewOptions = DEFAULT_OPTIONS,
        engine_id: bytes | None = None,
        aes_key_extension: str = "blumenthal",
    ) -> Address:
        """Start serving `life` as `model`; returns the bound (host, port).

        `aes_key_extension` is "blumenthal" (net-snmp's AES-192/256) or "reeder" (pysnmp's
        default usmAesCfb192/256Protocol, Cisco's).
        """
        if life.router_id in self._routers:
            raise ValueError(f"router {life.router_id!r} is already in the fleet")
        view = build_view(model, options)
        responder = Responder(
            life, view, credentials, engine_id=engine_id, aes_key_extension=aes_key_extension
        )
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: _RouterEndpoint(responder, self.clock), local_addr=(host, port)
        )
        assert endpoint.transport is not None
        bound = endpoint.transport.get_extra_info("sockname")
        address = (str(bound[0]), int(bound[1]))
        self._routers[life.router_id] = (endpoint, address)
        return address

    def address(self, router_id: str) -> Address:
        """Where the router listens."""
        return self._routers[router_id][1]

    def responder(self, router_id: str) -> Responder:
        """The router's protocol side (its life, view, USM engine and request log)."""
        return self._routers[router_id][0].responder

    def requests(self, router_id: str) -> list[RequestRecord]:
        """Every message the router received, oldest first (bounded per router)."""
        return list(self._routers[router_id][0].responder.log)

    async def remove(self, router_id: str) -> None:
        """Stop serving the router and free its port."""
        endpoint, _ = self._routers.pop(router_id)
        endpoint.close()

    async def close(self) -> None:
        """Stop every router."""
        for router_id in list(self._routers):
            await self.remove(router_id)
