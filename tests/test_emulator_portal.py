"""The emulated support portal (ServiceNow Table API), spoken to over real loopback HTTP."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import requests

from monitor.emulator.portal import PortalServer

T0 = 1_710_000_000.0  # 2024-03-09 16:00:00 UTC
PASSWORD = "Portal-S3cret!"
TOKEN = "bearer-t0ken-abc123"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


AUTH = basic("monitor", PASSWORD)
TABLE = "/api/now/table/incident"
CID = "rm:router_offline:r1:1710000000"
ACTIVE_LOOKUP = f"{TABLE}?sysparm_query=correlation_id={CID}^active=true&sysparm_limit=1"
NOT_AUTHENTICATED = {
    "error": {
        "message": "User Not Authenticated",
        "detail": "Required to provide Auth information",
    },
    "status": "failure",
}


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def portal(clock: FakeClock) -> AsyncIterator[PortalServer]:
    async with PortalServer(username="monitor", password=PASSWORD, token=TOKEN, clock=clock) as p:
        yield p


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    portal: PortalServer,
    method: str,
    path: str,
    body: Any = None,
    auth: str | None = AUTH,
    deadline: float = 5.0,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.request(
        method, portal.url + path, json=body, headers={"Authorization": auth} if auth else {},
        timeout=aiohttp.ClientTimeout(total=deadline),
    ) as response:  # fmt: skip
        return response.status, await response.json(), response


async def create(http: aiohttp.ClientSession, portal: PortalServer, cid: str = CID) -> str:
    body = {"short_description": "Router r1 offline", "correlation_id": cid, "impact": 2}
    status, reply, _ = await call(http, portal, "POST", TABLE, body)
    assert status == 201
    return str(reply["result"]["sys_id"])


async def test_create_then_lookup_by_correlation_id(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    body = {"short_description": "Router r1 offline", "correlation_id": CID, "urgency": "2"}
    status, reply, response = await call(http, portal, "POST", TABLE, body)
    record = reply["result"]
    assert status == 201
    assert record["number"] == "INC0010001"
    assert len(record["sys_id"]) == 32
    assert record["state"] == "1"
    assert record["active"] == "true"
    assert record["urgency"] == "2"
    assert record["opened_at"] == record["sys_created_on"] == "2024-03-09 16:00:00"
    assert response.headers["Location"].endswith(f"{TABLE}/{record['sys_id']}")

    status, found, _ = await call(http, portal, "GET", ACTIVE_LOOKUP)
    assert status == 200
    assert [row["sys_id"] for row in found["result"]] == [record["sys_id"]]
    other = f"{TABLE}?sysparm_query=correlation_id=someone-else^active=true"
    assert (await call(http, portal, "GET", other))[1] == {"result": []}
    assert (await call(http, portal, "GET", f"{TABLE}/{record['sys_id']}"))[1] == reply
    assert portal.count(CID) == 1
    assert await create(http, portal, "second") != record["sys_id"]
    assert [row.number for row in portal.incidents()] == ["INC0010001", "INC0010002"]


async def test_bearer_token_is_accepted(portal: PortalServer, http: aiohttp.ClientSession) -> None:
    assert (await call(http, portal, "GET", TABLE, auth=f"Bearer {TOKEN}"))[0] == 200
    assert (await call(http, portal, "GET", TABLE, auth="Bearer not-the-token"))[0] == 401
    assert (await call(http, portal, "GET", TABLE, auth="Bearer "))[0] == 401


async def test_work_notes_and_comments_append(
    portal: PortalServer, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sys_id = await create(http, portal)
    for note in ("first look", "still offline"):
        clock.now += 60
        patch = {"work_notes": note, "description": note}
        status, reply, _ = await call(http, portal, "PATCH", f"{TABLE}/{sys_id}", patch)
        assert status == 200
    await call(http, portal, "PATCH", f"{TABLE}/{sys_id}", {"comments": "to the LA"})

    [incident] = portal.incidents()
    assert [(n.at, n.author, n.text) for n in incident.work_notes] == [
        (T0 + 60, "monitor", "first look"),
        (T0 + 120, "monitor", "still offline"),
    ]
    assert [c.text for c in incident.comments] == ["to the LA"]
    assert incident.description == "still offline"  # a plain field is replaced
    text = reply["result"]["work_notes"]
    assert text.index("still offline") < text.index("first look")  # newest first, as displayed
    assert "2024-03-09 16:01:00 - monitor (Work notes)" in text


async def test_resolve_without_close_fields_is_refused(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    sys_id = await create(http, portal)
    patch = {"state": 6, "close_code": "Solved Remotely (Permanently)", "work_notes": "resolved"}
    status, reply, _ = await call(http, portal, "PATCH", f"{TABLE}/{sys_id}", patch)
    assert status == 400
    assert reply["status"] == "failure"
    assert reply["error"]["message"] == "Data Policy Exception"
    [incident] = portal.incidents()
    assert (incident.state, incident.active, incident.work_notes) == (1, True, [])


async def test_resolve_makes_the_incident_inactive(
    portal: PortalServer, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sys_id = await create(http, portal)
    clock.now += 3600
    patch = {"state": "6", "close_code": "Solved Remotely (Permanently)", "close_notes": "back"}
    status, reply, _ = await call(http, portal, "PATCH", f"{TABLE}/{sys_id}", patch)
    assert status == 200
    assert reply["result"]["active"] == "false"
    assert reply["result"]["resolved_at"] == "2024-03-09 17:00:00"
    assert (await call(http, portal, "GET", ACTIVE_LOOKUP))[1] == {"result": []}
    any_state = f"{TABLE}?sysparm_query=correlation_id={CID}"
    assert len((await call(http, portal, "GET", any_state))[1]["result"]) == 1

    second = await create(http, portal)  # the problem came back: a new active incident
    found = (await call(http, portal, "GET", ACTIVE_LOOKUP))[1]["result"]
    assert [row["sys_id"] for row in found] == [second]
    assert portal.count(CID) == 2
    every = f"{TABLE}?sysparm_query=correlation_id={CID}&sysparm_limit=1&sysparm_fields=number"
    status, page, response = await call(http, portal, "GET", every)
    assert page == {"result": [{"number": "INC0010001"}]}
    assert response.headers["X-Total-Count"] == "2"


@pytest.mark.parametrize(
    ("state", "active"), [(2, "true"), (3, "true"), (7, "false"), (8, "false")]
)
async def test_states_and_active(
    portal: PortalServer, http: aiohttp.ClientSession, state: int, active: str
) -> None:
    sys_id = await create(http, portal)
    reply = (await call(http, portal, "PATCH", f"{TABLE}/{sys_id}", {"state": state}))[1]
    assert (reply["result"]["state"], reply["result"]["active"]) == (str(state), active)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", TABLE, {"correlation_id": "x" * 101}, 400),
        ("POST", TABLE, {"impact": 5}, 400),
        ("POST", TABLE, {"state": "Resolved"}, 400),
        ("POST", TABLE, {"short_description": {"nested": 1}}, 400),
        ("POST", TABLE, ["not", "an", "object"], 400),
        ("GET", f"{TABLE}?sysparm_query=correlation_id!=x", None, 400),
        ("GET", f"{TABLE}?sysparm_query=short_descriptionLIKEr1", None, 400),
        ("GET", f"{TABLE}?sysparm_limit=many", None, 400),
        ("GET", "/api/now/table/sys_user", None, 400),
        ("GET", f"{TABLE}/0123456789abcdef0123456789abcdef", None, 404),
        ("PATCH", f"{TABLE}/0123456789abcdef0123456789abcdef", {"state": 2}, 404),
        ("DELETE", f"{TABLE}/0123456789abcdef0123456789abcdef", None, 405),
    ],
)
async def test_bad_requests_answer_servicenow_errors(
    portal: PortalServer,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    answer, reply, _ = await call(http, portal, method, path, body)
    assert answer == status
    assert reply["status"] == "failure"
    assert set(reply["error"]) == {"message", "detail"}
    assert portal.incidents() == []


async def test_invalid_json_and_the_longest_correlation_id(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        portal.url + TABLE, data=b"{not json", headers={"Authorization": AUTH}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["detail"] == "The payload is not valid JSON."
    await create(http, portal, "x" * 100)
    assert portal.count("x" * 100) == 1


@pytest.mark.parametrize("auth", [None, basic("monitor", "wrong")])
async def test_missing_or_wrong_credentials(
    portal: PortalServer, http: aiohttp.ClientSession, auth: str | None
) -> None:
    status, reply, _ = await call(http, portal, "POST", TABLE, {"correlation_id": CID}, auth=auth)
    assert (status, reply) == (401, NOT_AUTHENTICATED)
    assert portal.incidents() == []


async def test_mode_fail_500(portal: PortalServer, http: aiohttp.ClientSession) -> None:
    portal.mode = "fail_500"
    status, reply, _ = await call(http, portal, "POST", TABLE, {"correlation_id": CID})
    assert (status, reply["status"]) == (500, "failure")
    assert portal.incidents() == []
    assert portal.mode == "fail_500"


async def test_mode_rate_limit_for_some_calls(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    portal.set_mode("rate_limit", retry_after=2, calls=3)
    for _ in range(3):
        status, _, response = await call(http, portal, "POST", TABLE, {"correlation_id": CID})
        assert status == 429
        assert response.headers["Retry-After"] == "2"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Reset"]) == int(T0) + 2
        assert "X-RateLimit-Limit" in response.headers
    assert portal.mode == "healthy"
    assert (await call(http, portal, "POST", TABLE, {"correlation_id": CID}))[0] == 201
    assert [r.status for r in portal.requests] == [429, 429, 429, 201]


async def test_mode_auth_fail(portal: PortalServer, http: aiohttp.ClientSession) -> None:
    portal.mode = "auth_fail"
    assert (await call(http, portal, "GET", TABLE))[:2] == (401, NOT_AUTHENTICATED)


async def test_mode_timeout_never_answers(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    portal.mode = "timeout"
    with pytest.raises(TimeoutError):
        await call(http, portal, "POST", TABLE, {"correlation_id": CID}, deadline=0.2)
    assert portal.incidents() == []
    assert portal.requests[-1].status is None
    portal.mode = "healthy"
    assert (await call(http, portal, "GET", TABLE))[0] == 200


async def test_mode_lost_reply_commits_then_hangs(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    portal.set_mode("lost_reply", calls=1)
    with pytest.raises(TimeoutError):
        await call(http, portal, "POST", TABLE, {"correlation_id": CID}, deadline=0.2)
    assert portal.count(CID) == 1  # the retry must look it up, not create a second one
    assert len((await call(http, portal, "GET", ACTIVE_LOOKUP))[1]["result"]) == 1


async def test_mode_slow(portal: PortalServer, http: aiohttp.ClientSession) -> None:
    portal.set_mode("slow", delay=0.3)
    started = time.monotonic()
    assert (await call(http, portal, "GET", TABLE))[0] == 200
    assert time.monotonic() - started >= 0.3


async def test_mode_flaky_fails_every_nth_call(
    portal: PortalServer, http: aiohttp.ClientSession
) -> None:
    portal.set_mode("flaky", every=3)
    statuses = [(await call(http, portal, "GET", TABLE))[0] for _ in range(6)]
    assert statuses == [200, 200, 500, 200, 200, 500]


async def test_unknown_mode_is_refused(portal: PortalServer) -> None:
    with pytest.raises(ValueError, match="unknown portal mode"):
        portal.set_mode("on_fire")


async def test_request_log_never_holds_credentials(
    portal: PortalServer, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sys_id = await create(http, portal)
    await call(http, portal, "PATCH", f"{TABLE}/{sys_id}", {"work_notes": PASSWORD})
    await call(http, portal, "GET", ACTIVE_LOOKUP, auth=f"Bearer {TOKEN}")
    await call(http, portal, "GET", TABLE, auth=basic("monitor", "wrong"))

    log = portal.requests
    assert [(r.method, r.status) for r in log] == [
        ("POST", 201), ("PATCH", 200), ("GET", 200), ("GET", 401),
    ]  # fmt: skip
    assert log[2].query.startswith("sysparm_query=correlation_id=")
    assert all(r.at == clock.now for r in log)
    dumped = repr(log)
    secrets = [PASSWORD, TOKEN, base64.b64encode(f"monitor:{PASSWORD}".encode()).decode()]
    assert not [secret for secret in secrets if secret in dumped]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_standalone_prints_its_url_and_stops_on_a_signal(signum: signal.Signals) -> None:
    command = [sys.executable, "-m", "monitor.emulator.portal", "--port", "0", "--password", "pw"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # the server is listening once this is printed
            url = line.rsplit(" ", 1)[-1].strip()
            assert url.startswith("http://127.0.0.1:")
            reply = requests.get(url + TABLE, auth=("monitor", "pw"), timeout=5)
            assert reply.json() == {"result": []}
            assert "GET /api/now/table/incident -> 200" in process.stdout.readline()
            process.send_signal(signum)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
