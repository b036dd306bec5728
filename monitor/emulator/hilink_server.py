"""Emulated Huawei HiLink routers: one aiohttp web server per router, all in one process.

Each router listens on its own loopback port and answers from its `RouterLife` at request time
(the life is advanced to the injected clock first). Replies follow the firmware: XML with HTTP
200 even for errors, a session cookie and a CSRF token, some endpoints behind a login. Faults
come from `life.faults` (powered off, delay, garbage, wrong credentials) and from switches here
(session expiry, login required everywhere, too many attempts, hostile XML). Every request is
logged per router (method, path, time; never a header or body) so a test can prove that a
client only read. Usage::

    async with HilinkFleet(clock=clock) as fleet:
        address = await fleet.add(life, variant="e5576", login=HttpLogin("admin", "pw"))
        ...
        fleet.requests(life.router_id)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from xml.sax.saxutils import escape

from aiohttp import web
from defusedxml.ElementTree import fromstring

from monitor.emulator.life import RouterLife
from monitor.model import HttpLogin

WRITE_PATHS = frozenset(
    {"/api/device/control", "/api/monitoring/clear-traffic", "/api/monitoring/start_date"}
)
"""Endpoints that change a real router; here they are logged and always refused."""

LOGIN_PATH = "/api/user/login"
Handler = Callable[[web.Request], "asyncio.Future[web.StreamResponse]"]
_TOKEN_PATHS = frozenset({"/", "/api/webserver/token", "/api/webserver/SesTokInfo"})
_GARBAGE = b"\x00\x1f\x8b<respon\xff\xfese>ConnectionStatus=901\r\n"
_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<response><DeviceName>&c;</DeviceName></response>"
)


@dataclass(frozen=True, slots=True)
class Variant:
    """What a firmware family offers: battery, uptime, where the token comes from."""

    battery_step: int | None  # None: no battery (a dongle); else the percent step reported
    uptime: bool = True  # /api/device/information carries <uptime>
    csrf_meta: bool = True  # GET / carries <meta name="csrf_token">
    token_endpoint: bool = True  # /api/webserver/token exists (else only SesTokInfo)
    day_used: bool = False  # month statistics carry CurrentDayUsed (newer firmware)
    classify: str = "mobile-wifi"
    read_paths: frozenset[str] = frozenset(
        {
            "/api/monitoring/status",
            "/api/pin/status",
            "/api/monitoring/month_statistics",
            "/api/monitoring/traffic-statistics",
            "/api/device/information",
            "/api/device/signal",
        }
    )


VARIANTS: dict[str, Variant] = {
    "e5576": Variant(battery_step=25),
    "e5577": Variant(battery_step=1, csrf_meta=False),
    "e3372": Variant(battery_step=None, csrf_meta=False, classify="hilink"),
    "b535": Variant(battery_step=None, day_used=True, classify="cpe"),
    # Older firmware: no uptime, no token endpoint, session and token only via SesTokInfo.
    "e5573-old": Variant(battery_step=25, uptime=False, csrf_meta=False, token_endpoint=False),
}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request a router received: never a header, a cookie or a body."""

    method: str
    path: str
    at: float


@dataclass
class _Session:
    token: str
    logged_in: bool = False


@dataclass
class HilinkRouter:
    """One emulated router's server-side state; switches a test may flip directly."""

    life: RouterLife
    variant: Variant
    login: HttpLogin | None
    protected: set[str]  # read paths that answer 100003 until logged in
    too_many_attempts: bool = False
    login_grants_rights: bool = True  # False: a user who may log in but not read protected
    hostile_xml: bool = False
    broken_sessions: bool = False  # every read answers 125002, even with a fresh token
    sessions: dict[str, _Session] = field(default_factory=dict)
    log: list[RequestRecord] = field(default_factory=list)
    runner: web.AppRunner | None = None
    address: tuple[str, int] = ("", 0)


class HilinkFleet:
    """Many emulated HiLink routers, each on its own port; an async context manager."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._routers: dict[str, HilinkRouter] = {}
        self._closing = asyncio.Event()
        self._shared: dict[int, dict[str, Handler]] = {}
        self._shared_runners: list[web.AppRunner] = []

    async def __aenter__(self) -> HilinkFleet:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def add(
        self,
        life: RouterLife,
        variant: str = "e5576",
        login: HttpLogin | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> tuple[str, int]:
        """Start serving `life` on host:port (0 = a free port); return the bound address."""
        if life.router_id in self._routers:
            raise ValueError(f"router {life.router_id!r} is already served")
        protected = {"/api/device/information"} if login is not None else set()
        router = HilinkRouter(life, VARIANTS[variant], login, protected)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler(router))
        router.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await router.runner.setup()
        site = web.TCPSite(router.runner, host, port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp keeps the bound sockets only there
        assert isinstance(server, asyncio.Server)
        bound = server.sockets[0].getsockname()
        router.address = (bound[0], bound[1])
        self._routers[life.router_id] = router
        return router.address

    async def add_shared(
        self, life: RouterLife, variant: str, login: HttpLogin | None, host: str, port: int
    ) -> None:
        """Serve `life` at host:port through one listener per port for every loopback address.

        The fast path for benchmark fleets beyond the descriptor limit: routers differ by the
        loopback address a client connected to, and peers outside loopback are refused.
        """
        if life.router_id in self._routers:
            raise ValueError(f"router {life.router_id!r} is already served")
        protected = {"/api/device/information"} if login is not None else set()
        router = HilinkRouter(life, VARIANTS[variant], login, protected, address=(host, port))
        by_host = self._shared.get(port)
        if by_host is None:
            by_host = self._shared[port] = {}
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", _dispatch(by_host))
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            self._shared_runners.append(runner)
            # Loopback peers only: _dispatch refuses any other.
            site = web.TCPSite(runner, "0.0.0.0", port, reuse_address=True, backlog=4096)  # noqa: S104
            await site.start()
        by_host[host] = self._handler(router)
        self._routers[life.router_id] = router

    def router(self, router_id: str) -> HilinkRouter:
        """The server-side state of one router (to flip switches or inspect sessions)."""
        return self._routers[router_id]

    def requests(self, router_id: str) -> list[RequestRecord]:
        """Every request the router received, in order."""
        return list(self._routers[router_id].log)

    def expire_session(self, router_id: str) -> None:
        """Forget every session: the next request answers 125002 until a new token is fetched."""
        self._routers[router_id].sessions.clear()

    def require_login(self, router_id: str, *paths: str) -> None:
        """Make these read paths (default: every read path) answer 100003 until logged in."""
        router = self._routers[router_id]
        router.protected.update(paths or router.variant.read_paths)

    async def stop(self, router_id: str) -> None:
        """Close the router's port, so that connections are refused."""
        router = self._routers[router_id]
        if router.runner is not None:
            await router.runner.cleanup()
            router.runner = None

    async def aclose(self) -> None:
        """Release powered-off handlers and close every port."""
        self._closing.set()
        for router_id in list(self._routers):
            await self.stop(router_id)
        self._routers.clear()
        for runner in self._shared_runners:
            await runner.cleanup()
        self._shared_runners.clear()

    def _handler(self, router: HilinkRouter) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            now = self._clock()
            router.log.append(RequestRecord(request.method, request.path, now))
            faults = router.life.faults
            if faults.powered_off:
                await self._closing.wait()  # a router that is off never answers
                raise web.HTTPServiceUnavailable
            if faults.delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), faults.delay)
            router.life.advance(self._clock())
            if faults.garbage:
                return web.Response(body=_GARBAGE, content_type="text/html")
            if router.hostile_xml:
                return _xml(_BOMB)
            return await self._answer(router, request)

        return handle  # type: ignore[return-value]

    async def _answer(self, router: HilinkRouter, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in WRITE_PATHS:
            return _error(100003)  # logged above; a monitor must never get here
        if path == LOGIN_PATH and request.method == "POST":
            return await self._login(router, request)
        if request.method != "GET" or (
            path not in _TOKEN_PATHS and path not in router.variant.read_paths
        ):
            return _error(100002)
        if path in _TOKEN_PATHS:
            return self._token(router, request)
        session = self._session(router, request)
        if session is None or router.broken_sessions:
            return _error(125002)
        if path in router.protected and not session.logged_in:
            return _error(100003)
        return _xml(render(path, router.life, router.variant, self._clock()))

    def _session(self, router: HilinkRouter, request: web.Request) -> _Session | None:
        session = router.sessions.get(request.cookies.get("SessionID", ""))
        if session is None or request.headers.get("__RequestVerificationToken") != session.token:
            return None
        return session

    def _token(self, router: HilinkRouter, request: web.Request) -> web.StreamResponse:
        variant, path = router.variant, request.path
        session_id = request.cookies.get("SessionID", "")
        if session_id not in router.sessions:
            session_id = secrets.token_hex(32)
            router.sessions[session_id] = _Session(secrets.token_hex(16))
        token = router.sessions[session_id].token
        if path == "/":
            meta = f'<meta name="csrf_token" content="{token}"/>' if variant.csrf_meta else ""
            html = f"<!DOCTYPE html><html><head>{meta}<title>HiLink</title></head></html>"
            response = web.Response(text=html, content_type="text/html")
        elif path == "/api/webserver/token" and variant.token_endpoint:
            response = _xml(_body(f"<token>{token}</token>"))
        elif path == "/api/webserver/SesTokInfo":
            body = f"<SesInfo>SessionID={session_id}</SesInfo><TokInfo>{token}</TokInfo>"
            return _xml(_body(body))  # the session travels in the body, not in a cookie
        else:
            return _error(100002)
        response.set_cookie("SessionID", session_id, path="/", httponly=True)
        return response

    async def _login(self, router: HilinkRouter, request: web.Request) -> web.StreamResponse:
        session = self._session(router, request)
        if session is None:
            return _error(125002)
        if router.too_many_attempts:
            return _error(108007)
        try:
            root = fromstring(await request.read(), forbid_dtd=True)
        except Exception:  # noqa: BLE001 (any unreadable body is a format error to the device)
            return _error(125003)
        username = root.findtext("Username") or ""
        password = root.findtext("Password") or ""
        login = router.login
        if (
            login is None
            or router.life.faults.wrong_credentials
            or username != login.username
            or not secrets.compare_digest(password, login_hash(login, session.token))
        ):
            return _error(108006)
        for old in [key for key, value in router.sessions.items() if value is session]:
            del router.sessions[old]
        new_id, new_token = secrets.token_hex(32), secrets.token_hex(16)
        router.sessions[new_id] = _Session(new_token, logged_in=router.login_grants_rights)
        response = _xml(_body("OK", wrap=False))
        response.set_cookie("SessionID", new_id, path="/", httponly=True)
        response.headers["__RequestVerificationToken"] = new_token
        return response


def render(path: str, life: RouterLife, variant: Variant, now: float) -> bytes:
    """The `<response>` document a read endpoint answers with, from the life's state."""
    elements = _READERS[path](life, variant, now)
    inner = "\n".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in elements)
    return _body(inner)


Elements = list[tuple[str, object]]


def _status(life: RouterLife, variant: Variant, now: float) -> Elements:
    registered = life.sim_present
    link = 901 if life.connected else 902
    battery: object = ""
    battery_status: object = ""
    if variant.battery_step is not None:
        step = variant.battery_step
        battery = int(step * round(life.battery_percent / step))
        battery_status = 1 if life.charging else (-1 if life.battery_percent < 20 else 0)
    icon = max(0, min(5, (life.signal_rssi + 113) // 12)) if registered else 0
    return [
        ("ConnectionStatus", link),
        ("SignalIcon", icon),
        ("CurrentNetworkType", 19 if registered else 0),
        ("CurrentServiceDomain", 3 if registered else 0),
        ("RoamingStatus", 0),
        ("BatteryStatus", battery_status),
        ("BatteryPercent", battery),
        ("WanIPAddress", "10.64.0.2" if life.connected else ""),
        ("CurrentWifiUser", 1 if variant.classify == "mobile-wifi" else ""),
        ("ServiceStatus", 2 if registered else 0),
        ("SimStatus", 1 if life.sim_present else 255),
        ("CurrentNetworkTypeEx", 101 if registered else 0),
        ("classify", variant.classify),
    ]


def _pin(life: RouterLife, variant: Variant, now: float) -> Elements:
    state = 257 if life.sim_present else 255
    return [("SimState", state), ("PinOptState", 258), ("SimPinTimes", 3), ("SimPukTimes", 10)]


def _month(life: RouterLife, variant: Variant, now: float) -> Elements:
    cleared = datetime.fromtimestamp(life.month_cleared_at, UTC).astimezone(life.zone)
    elements: Elements = [
        ("CurrentMonthDownload", life.month_received),
        ("CurrentMonthUpload", life.month_sent),
        ("MonthDuration", int(now - life.month_cleared_at)),
        ("MonthLastClearTime", f"{cleared.year}-{cleared.month}-{cleared.day}"),
    ]
    if variant.day_used:
        # The life keeps no day totals; the element's presence is what newer firmware shows.
        elements.append(("CurrentDayUsed", 0))
    return elements


def _traffic(life: RouterLife, variant: Variant, now: float) -> Elements:
    return [
        ("CurrentConnectTime", int(life.uptime(now)) if life.connected else 0),
        ("CurrentUpload", life.sent_since_boot),
        ("CurrentDownload", life.received_since_boot),
        ("CurrentDownloadRate", int(life.received_rate) if life.connected else 0),
        ("CurrentUploadRate", int(life.sent_rate) if life.connected else 0),
        ("TotalUpload", life.device_sent),
        ("TotalDownload", life.device_received),
        ("TotalConnectTime", int(life.uptime(now))),
        ("showtraffic", 1),
    ]


def _information(life: RouterLife, variant: Variant, now: float) -> Elements:
    sim = life.sim_present
    elements: Elements = [
        ("DeviceName", life.model),
        ("SerialNumber", life.serial),
        ("Imei", life.imei),
        ("Imsi", life.imsi if sim else ""),
        ("Iccid", (life.iccid or "") if sim else ""),
        ("Msisdn", ""),
        ("HardwareVersion", "CL1E5576SM01"),
        ("SoftwareVersion", life.firmware),
        ("WebUIVersion", "WEBUI 21.100.47.01.03"),
        ("ProductFamily", "LTE"),
        ("Classify", variant.classify),
        ("workmode", "LTE" if sim else "NO SERVICE"),
    ]
    if variant.uptime:
        elements.append(("uptime", int(life.uptime(now))))
    return elements


def _signal(life: RouterLife, variant: Variant, now: float) -> Elements:
    if not life.sim_present:
        return [(name, "") for name in ("pci", "cell_id", "rssi", "rsrp", "rsrq", "sinr", "mode")]
    rssi = ">=-51dBm" if life.signal_rssi >= -51 else f"{life.signal_rssi}dBm"
    return [
        ("pci", 284),
        ("cell_id", 25934607),
        ("rssi", rssi),
        ("rsrp", f"{life.signal_rsrp}dBm"),
        ("rsrq", f"{life.signal_rsrq}dB"),
        ("sinr", f"{life.signal_sinr:g}dB"),
        ("mode", 7),
    ]


_READERS: dict[str, Callable[[RouterLife, Variant, float], Elements]] = {
    "/api/monitoring/status": _status,
    "/api/pin/status": _pin,
    "/api/monitoring/month_statistics": _month,
    "/api/monitoring/traffic-statistics": _traffic,
    "/api/device/information": _information,
    "/api/device/signal": _signal,
}


def login_hash(login: HttpLogin, token: str) -> str:
    """The password_type 4 proof: base64(sha256hex(user + base64(sha256hex(pw)) + token))."""
    inner = base64.b64encode(hashlib.sha256(login.password.encode()).hexdigest().encode())
    outer = hashlib.sha256(login.username.encode() + inner + token.encode()).hexdigest()
    return base64.b64encode(outer.encode()).decode()


def _body(inner: str, wrap: bool = True) -> bytes:
    text = f"<response>\n{inner}\n</response>" if wrap else f"<response>{inner}</response>"
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'.encode()


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/html", charset="UTF-8")


def _error(code: int) -> web.Response:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return _xml(f"{head}<error>\n<code>{code}</code>\n<message></message>\n</error>\n".encode())


def _dispatch(by_host: dict[str, Handler]) -> Handler:
    """A handler choosing the router by the local address the client connected to."""

    async def handle(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        local = transport.get_extra_info("sockname") if transport is not None else None
        peer = request.remote or ""
        handler = by_host.get(str(local[0])) if local else None
        if handler is None or not peer.startswith("127."):
            raise web.HTTPNotFound
        return await handler(request)

    return handle  # type: ignore[return-value]
