"""The emulated HiLink routers, spoken to with a plain aiohttp client over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from monitor.collectors.hilink_parse import HilinkErrorReply, parse_reply
from monitor.emulator.hilink_server import HilinkFleet, login_hash
from monitor.emulator.life import RouterLife
from monitor.model import HttpLogin

T0 = 1_710_000_000.0  # 2024-03-09
LOGIN = HttpLogin("admin", "S3cret-pass!")


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_life(router_id: str = "r1", model: str = "E5576-320") -> RouterLife:
    return RouterLife.born(
        T0, router_id=router_id, model=model, imei="867098031000017",
        serial="G4Q7S19A28001234", iccid="8944110000000000017",
    )  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fleet(clock: FakeClock) -> AsyncIterator[HilinkFleet]:
    async with HilinkFleet(clock=clock) as fleet:
        yield fleet


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def fetch(
    http: aiohttp.ClientSession,
    address: tuple[str, int],
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes = b"",
) -> tuple[bytes, aiohttp.ClientResponse]:
    url = f"http://{address[0]}:{address[1]}{path}"
    async with http.request(method, url, headers=headers or {}, data=data) as response:
        assert response.status == 200  # HiLink answers 200 even for errors
        return await response.read(), response


def error_code(body: bytes) -> int | None:
    try:
        parse_reply(body)
    except HilinkErrorReply as exc:
        return exc.code
    return None


async def open_session(http: aiohttp.ClientSession, address: tuple[str, int]) -> dict[str, str]:
    body, response = await fetch(http, address, "/api/webserver/token")
    token = parse_reply(body)["token"]
    assert token
    return {
        "__RequestVerificationToken": token,
        "Cookie": f"SessionID={response.cookies['SessionID'].value}",
    }


async def test_each_router_gets_its_own_port(fleet: HilinkFleet) -> None:
    addresses = {await fleet.add(make_life(f"r{n}")) for n in range(5)}
    assert len(addresses) == 5
    assert all(host == "127.0.0.1" and port > 0 for host, port in addresses)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/api/nothing/here", 100002),
        ("GET", "/html/home.html", 100002),
        ("POST", "/api/device/control", 100003),
        ("POST", "/api/monitoring/clear-traffic", 100003),
        ("POST", "/api/monitoring/start_date", 100003),
        ("GET", "/api/device/control", 100003),
        ("GET", "/api/monitoring/status", 125002),  # no session yet
    ],
)
async def test_error_bodies_with_http_200(
    fleet: HilinkFleet, http: aiohttp.ClientSession, method: str, path: str, code: int
) -> None:
    address = await fleet.add(make_life())
    body, _ = await fetch(http, address, path, method=method)
    assert error_code(body) == code
    assert [(r.method, r.path) for r in fleet.requests("r1")] == [(method, path)]


async def test_write_endpoint_leaves_the_life_untouched(
    fleet: HilinkFleet, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    life = make_life()
    address = await fleet.add(life)
    clock.now += 3600
    life.advance(clock.now)
    before = (life.month_received, life.device_received, life.boot_time)
    data = b"<request><Control>1</Control></request>"
    await fetch(http, address, "/api/monitoring/clear-traffic", "POST", data=data)
    await fetch(http, address, "/api/device/control", "POST", data=data)
    assert (life.month_received, life.device_received, life.boot_time) == before


async def test_reads_follow_the_life_through_the_clock(
    fleet: HilinkFleet, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    life = make_life()
    address = await fleet.add(life)
    headers = await open_session(http, address)
    clock.now += 100
    body, _ = await fetch(http, address, "/api/monitoring/traffic-statistics", headers=headers)
    first = int(parse_reply(body)["TotalDownload"] or -1)
    clock.now += 100
    body, _ = await fetch(http, address, "/api/monitoring/traffic-statistics", headers=headers)
    second = int(parse_reply(body)["TotalDownload"] or -1)
    print(f"TotalDownload after 100 s: {first}, after 200 s: {second}")
    assert first == 100 * 20_000
    assert second == 200 * 20_000


@pytest.mark.parametrize(
    ("variant", "battery", "has_uptime"),
    [("e5576", "100", True), ("e3372", None, True), ("e5573-old", "100", False)],
)
async def test_variants(
    fleet: HilinkFleet,
    http: aiohttp.ClientSession,
    variant: str,
    battery: str | None,
    has_uptime: bool,
) -> None:
    address = await fleet.add(make_life(), variant=variant)
    if variant == "e5573-old":
        body, _ = await fetch(http, address, "/api/webserver/token")
        assert error_code(body) == 100002
        body, _ = await fetch(http, address, "/api/webserver/SesTokInfo")
        elements = parse_reply(body)
        session = (elements["SesInfo"] or "").removeprefix("SessionID=")
        headers = {
            "__RequestVerificationToken": elements["TokInfo"] or "",
            "Cookie": f"SessionID={session}",
        }
    else:
        headers = await open_session(http, address)
    body, _ = await fetch(http, address, "/api/monitoring/status", headers=headers)
    assert parse_reply(body)["BatteryPercent"] == battery
    body, _ = await fetch(http, address, "/api/device/information", headers=headers)
    assert ("uptime" in parse_reply(body)) is has_uptime


async def test_home_page_carries_the_token_on_e5576(
    fleet: HilinkFleet, http: aiohttp.ClientSession
) -> None:
    address = await fleet.add(make_life(), variant="e5576")
    body, _ = await fetch(http, address, "/")
    assert b'<meta name="csrf_token" content="' in body


async def test_login_flow(fleet: HilinkFleet, http: aiohttp.ClientSession) -> None:
    address = await fleet.add(make_life(), login=LOGIN)
    headers = await open_session(http, address)
    body, _ = await fetch(http, address, "/api/device/information", headers=headers)
    assert error_code(body) == 100003
    wrong = HttpLogin("admin", "wrong-password")
    token = headers["__RequestVerificationToken"]
    request = (
        "<request><Username>admin</Username><Password>{}</Password>"
        "<password_type>4</password_type></request>"
    )
    data = request.format(login_hash(wrong, token)).encode()
    body, _ = await fetch(http, address, "/api/user/login", "POST", headers, data)
    assert error_code(body) == 108006
    data = request.format(login_hash(LOGIN, token)).encode()
    body, response = await fetch(http, address, "/api/user/login", "POST", headers, data)
    assert error_code(body) is None
    fresh = {
        "__RequestVerificationToken": response.headers["__RequestVerificationToken"],
        "Cookie": f"SessionID={response.cookies['SessionID'].value}",
    }
    body, _ = await fetch(http, address, "/api/device/information", headers=fresh)
    assert parse_reply(body)["Imei"] == "867098031000017"
    body, _ = await fetch(http, address, "/api/device/information", headers=headers)
    assert error_code(body) == 125002  # the pre-login session is gone


async def test_expired_session_answers_125002_until_a_new_token(
    fleet: HilinkFleet, http: aiohttp.ClientSession
) -> None:
    address = await fleet.add(make_life())
    headers = await open_session(http, address)
    fleet.expire_session("r1")
    body, _ = await fetch(http, address, "/api/monitoring/status", headers=headers)
    assert error_code(body) == 125002
    headers = await open_session(http, address)
    body, _ = await fetch(http, address, "/api/monitoring/status", headers=headers)
    assert error_code(body) is None


async def test_request_log_holds_no_secret(fleet: HilinkFleet, http: aiohttp.ClientSession) -> None:
    address = await fleet.add(make_life(), login=LOGIN)
    headers = await open_session(http, address)
    data = f"<request><Username>admin</Username><Password>{LOGIN.password}</Password></request>"
    await fetch(http, address, "/api/user/login", "POST", headers, data.encode())
    text = repr(fleet.requests("r1"))
    assert LOGIN.password not in text
    assert headers["__RequestVerificationToken"] not in text
