"""An emulated support portal: the ServiceNow Table API calls the daemon makes, with fault modes.

One aiohttp server on loopback (port 0 = a free port) serving `/api/now/table/incident`: create
(POST), look up (GET with `sysparm_query`), read (GET by sys_id) and update (PATCH or PUT), with
basic or bearer auth, and errors in ServiceNow's shape (see `portal_records`). Modes, switchable
while it runs, make every call fail the way a real instance does when it is down, rate limiting,
hung, slow or refusing us; `lost_reply` commits a write and then never answers, the case that
only a correlation-id lookup before creating can survive. Every request is logged (method, path,
query, time, status; never a header or a body). Usage::

    async with PortalServer(username="monitor", password="pw", clock=clock) as portal:
        portal.set_mode("rate_limit", retry_after=2, calls=3)
        ...  # requests to portal.url
        assert portal.count("<correlation id>") == 1

Standalone, for the demo: `python -m monitor.emulator.portal --port 18443` (Ctrl-C or SIGTERM
stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import re
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType

from aiohttp import web

from monitor.emulator.portal_http import (
    authenticate,
    json_response,
    query_number,
    rate_limited,
    read_json,
)
from monitor.emulator.portal_records import Incident, IncidentTable, PortalError, render

MODES = frozenset(
    {"healthy", "fail_500", "rate_limit", "timeout", "slow", "auth_fail", "flaky", "lost_reply"}
)
_TABLE_PATH = re.compile(r"^/api/now/table/(?P<table>[^/]+)(?:/(?P<sys_id>[^/]+))?/?$")


@dataclass(frozen=True, slots=True)
class Mode:
    """How the portal treats the next calls; `seen` counts the calls made in this mode."""

    name: str = "healthy"
    calls: int | None = None  # the mode lasts this many calls, then the portal is healthy again
    retry_after: int = 1  # rate_limit: the Retry-After seconds
    every: int = 2  # flaky: every n-th call fails
    delay: float = 1.0  # slow: seconds before answering
    methods: frozenset[str] | None = None  # only calls with these methods (None: every call)
    seen: int = 0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the portal received: never a header (so no credentials) and never a body."""

    method: str
    path: str
    query: str
    at: float
    status: int | None = None  # None: never answered (timeout, lost_reply, or still in progress)


class PortalServer:
    """The emulated portal on one loopback port; an async context manager."""

    def __init__(
        self,
        *,
        username: str = "monitor",
        password: str,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self._username = username
        self._password = password
        self._token = token
        self._clock = clock
        self._host = host
        self._port = port
        self._on_request = on_request
        self._table = IncidentTable()
        self._mode = Mode()
        self._log: list[RequestRecord] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> PortalServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Listen on host:port and set `url` to the bound address."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port, reuse_address=True).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def aclose(self) -> None:
        """Release hung requests and close the port."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def mode(self) -> str:
        """The mode in force (a limited mode reads `healthy` once its calls are used up)."""
        return self._mode.name

    @mode.setter
    def mode(self, name: str) -> None:
        self.set_mode(name)

    def set_mode(
        self,
        name: str,
        *,
        calls: int | None = None,
        retry_after: int = 1,
        every: int = 2,
        delay: float = 1.0,
        methods: Sequence[str] | None = None,
    ) -> None:
        """Switch mode, for the next `calls` calls (None: until switched again); with
        `methods` (e.g. ["POST"]) only calls of those methods are affected and counted."""
        if name not in MODES:
            raise ValueError(f"unknown portal mode {name!r}; known: {', '.join(sorted(MODES))}")
        if every < 1 or (calls is not None and calls < 1):
            raise ValueError("every and calls must be at least 1")
        only = frozenset(method.upper() for method in methods) if methods else None
        self._mode = Mode(name, calls, retry_after, every, delay, only)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, in order of arrival."""
        return list(self._log)

    def incidents(self, correlation_id: str | None = None) -> list[Incident]:
        """Copies of the stored incidents (those with this correlation id when given)."""
        rows = self._table.all()
        if correlation_id is not None:
            rows = [row for row in rows if row.correlation_id == correlation_id]
        return copy.deepcopy(rows)

    def pick_up(self, sys_id: str, author: str = "support.agent") -> None:
        """The support team starts on an incident (state 2, In Progress), as a person would."""
        self._table.update(sys_id, {"state": 2}, self._clock(), author)

    def delete(self, sys_id: str) -> None:
        """An administrator deletes an incident (a fresh portal forgets every one, likewise)."""
        self._table.delete(sys_id)

    def count(self, correlation_id: str) -> int:
        """How many incidents carry this correlation id, active or not."""
        return sum(row.correlation_id == correlation_id for row in self._table.all())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        index = len(self._log)
        now = self._clock()
        self._log.append(RequestRecord(request.method, request.path, request.query_string, now))
        try:
            response = await self._answer(request)
        except PortalError as exc:
            response = json_response(exc.status, exc.body())
        if response is None:
            self._finish(index, None)
            await self._closing.wait()  # hung until the server closes, whatever the client waits
            return json_response(503, PortalError(503, "Service Unavailable").body())
        self._finish(index, response.status)
        return response

    def _finish(self, index: int, status: int | None) -> None:
        self._log[index] = replace(self._log[index], status=status)
        if self._on_request is not None:
            self._on_request(self._log[index])

    def _take_mode(self, method: str) -> Mode:
        if self._mode.methods is not None and method not in self._mode.methods:
            return Mode()
        mode = replace(self._mode, seen=self._mode.seen + 1)
        self._mode = Mode() if mode.calls is not None and mode.seen >= mode.calls else mode
        return mode

    async def _answer(self, request: web.Request) -> web.Response | None:
        """The response, or None for a request that is never answered."""
        mode = self._take_mode(request.method)
        if mode.name == "timeout":
            return None
        if mode.name == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), mode.delay)
        if mode.name == "fail_500" or (mode.name == "flaky" and mode.seen % mode.every == 0):
            raise PortalError(500, "Internal Server Error", "emulated fault")
        if mode.name == "rate_limit":
            return rate_limited(mode.retry_after, self._clock())
        if mode.name == "auth_fail":
            raise PortalError(401, "User Not Authenticated", "Required to provide Auth information")
        header = request.headers.get("Authorization", "")
        author = authenticate(header, self._username, self._password, self._token)
        response = await self._route(request, author)
        return None if mode.name == "lost_reply" else response

    async def _route(self, request: web.Request, author: str) -> web.Response:
        match = _TABLE_PATH.match(request.path)
        if match is None:
            raise PortalError(400, "Requested URI does not represent any resource")
        if match["table"] != "incident":
            raise PortalError(400, f"Invalid table {match['table']}")
        sys_id, method, now = match["sys_id"], request.method, self._clock()
        fields = [name for name in request.query.get("sysparm_fields", "").split(",") if name]
        if sys_id is None and method == "POST":
            incident = self._table.create(await read_json(request), now, author)
            response = json_response(201, {"result": render(incident, fields)})
            response.headers["Location"] = f"{self.url}/api/now/table/incident/{incident.sys_id}"
            return response
        if sys_id is None and method == "GET":
            limit = query_number(request, "sysparm_limit", 10000)
            offset = query_number(request, "sysparm_offset", 0)
            rows = self._table.query(request.query.get("sysparm_query", ""))
            page = [render(row, fields) for row in rows[offset : offset + limit]]
            response = json_response(200, {"result": page})
            response.headers["X-Total-Count"] = str(len(rows))  # all matches, as an instance
            return response
        if sys_id is not None and method == "GET":
            return json_response(200, {"result": render(self._table.get(sys_id), fields)})
        if sys_id is not None and method in ("PATCH", "PUT"):
            incident = self._table.update(sys_id, await read_json(request), now, author)
            return json_response(200, {"result": render(incident, fields)})
        raise PortalError(405, "Method not Supported", f"{method} is not supported here")


def _echo(record: RequestRecord) -> None:
    at = datetime.fromtimestamp(record.at, UTC).strftime("%H:%M:%S")
    query = f"?{record.query}" if record.query else ""
    answer = "no answer" if record.status is None else str(record.status)
    print(f"{at} {record.method} {record.path}{query} -> {answer}", flush=True)


async def _serve(args: argparse.Namespace) -> None:
    async with PortalServer(
        username=args.username,
        password=args.password,
        token=args.token,
        host=args.host,
        port=args.port,
        on_request=_echo,
    ) as portal:
        portal.set_mode(args.mode)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Handlers of our own: a shell starts a background job with SIGINT ignored, and a
        # supervisor (make run, the demo) stops it with SIGTERM; either way close cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"support portal (emulated ServiceNow) at {portal.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one emulated portal until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor.emulator.portal", description="Emulated ServiceNow support portal."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--username", default="monitor")
    parser.add_argument("--password", help="basic auth password (default: a random one, shown)")
    parser.add_argument("--token", help="also accept this bearer token")
    parser.add_argument("--mode", choices=sorted(MODES), default="healthy")
    args = parser.parse_args(argv)
    if args.password is None:
        args.password = secrets.token_urlsafe(12)
        print(f"basic auth: {args.username} / {args.password}", flush=True)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
