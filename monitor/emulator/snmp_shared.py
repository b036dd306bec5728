"""The benchmark fast path: one UDP socket answering for many emulated SNMP routers.

`SnmpFleet` gives every router its own socket, which a fleet of 100k routers cannot have (file
descriptors, memory). Here routers differ by loopback address (127.x.y.z) on one shared port:
the socket is bound to the wildcard address, learns each datagram's destination from
IP_PKTINFO and answers from that same address. Datagrams from outside loopback are dropped.
Faults are honoured as in `SnmpFleet`, except `delay` (bench fleets are healthy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from collections.abc import Callable

from monitor.emulator.life import RouterLife
from monitor.emulator.mibs import build_view
from monitor.emulator.snmp_responder import Responder
from monitor.model import SnmpCredentials

_PKTINFO = struct.Struct("@I4s4s")  # struct in_pktinfo: ifindex, local address, destination
# Linux only (the value is Linux's): typeshed does not list it.
_IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)
_BATCH = 256  # datagrams read per wake-up before yielding to the loop
_BUFFER = 8 << 20  # socket buffers asked for (the kernel may give less)


class SharedSnmpServer:
    """Routers on (127.x.y.z, port), all served by one socket in the running loop."""

    def __init__(self, port: int, clock: Callable[[], float] = time.time) -> None:
        self.port = port
        self.clock = clock
        self.answered = 0
        self._responders: dict[bytes, Responder] = {}
        self._sock: socket.socket | None = None
        self.buffers = (0, 0)  # effective (receive, send) buffer sizes once started

    def add(self, life: RouterLife, *, model: str, credentials: SnmpCredentials, host: str) -> None:
        """Serve `life` as `model` on host (a loopback address) and the shared port."""
        address = ipaddress.IPv4Address(host)
        if not address.is_loopback:
            raise ValueError(f"{host} is not a loopback address")
        responder = Responder(life, build_view(model), credentials, log_size=4)
        self._responders[address.packed] = responder

    def start(self) -> None:
        """Bind and start answering."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Asked large; the kernel caps it at net.core.rmem_max/wmem_max (no root needed).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
        self.buffers = (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        )
        sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        sock.bind(("0.0.0.0", self.port))  # noqa: S104 - loopback sources only, checked below
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        """Stop answering."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        space = socket.CMSG_SPACE(_PKTINFO.size)
        for _ in range(_BATCH):
            try:
                data, ancillary, _, source = sock.recvmsg(65535, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued for an earlier reply
            if not source[0].startswith("127."):
                continue
            destination = next(
                (
                    _PKTINFO.unpack(cdata)[1]
                    for level, kind, cdata in ancillary
                    if level == socket.IPPROTO_IP and kind == _IP_PKTINFO
                ),
                None,
            )
            responder = self._responders.get(destination or b"")
            if responder is None or responder.life.faults.powered_off:
                continue
            reply = responder.answer(data, self.clock())
            if reply is None:
                continue
            assert destination is not None
            info = _PKTINFO.pack(0, destination, b"\0\0\0\0")
            try:
                sock.sendmsg([reply], [(socket.IPPROTO_IP, _IP_PKTINFO, info)], 0, source)
            except OSError:
                continue  # send buffer full: the client retries, as with a real router
            self.answered += 1
