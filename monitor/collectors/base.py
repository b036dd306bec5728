"""The contract between the scheduler and the collectors."""

from __future__ import annotations

from typing import Protocol

from monitor.model import PollResult, PollTarget


class Collector(Protocol):
    """Polls routers of one management protocol.

    `poll` returns a `Sample` or a `PollFailure` (timeout, refused, auth, bad_reply,
    unsupported) within `timeout` seconds, and never raises for anything the router or the
    network does. It only reads: SNMP GET/GETNEXT/GETBULK, HTTP GET of read endpoints and the
    login a device requires. Example of a result::

        Sample(router_id="rut-0042", at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
               sim=SimState.READY, link=LinkState.CONNECTED, network_type="LTE",
               signal=Signal(rssi_dbm=-67, rsrp_dbm=-95, rsrq_db=-10, sinr_db=12.0),
               uptime_seconds=86400.0, uptime_clock=UptimeClock.SYS_UPTIME,
               identity=Identity(imei="867098031000017", iccid="8944..."),
               traffic=Traffic(received=Counter(1234, CounterType.INTEGER32), ...))
    """

    # The deadline is a number the scheduler hands down, not a context: hence ASYNC109's noqa.
    async def poll(self, target: PollTarget, timeout: float) -> PollResult:  # noqa: ASYNC109
        """Poll one router once, within `timeout` seconds."""
        ...

    async def aclose(self) -> None:
        """Release sockets and sessions."""
        ...
