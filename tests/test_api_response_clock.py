"""`response_due_at` counts the configured working days and holiday region, as the overdue rule
does (`alerts.response_working_days`, `alerts.holiday_region`), not the defaults."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from test_api_tenants import LONDON, FakeLive, build_world

from monitor.api import StatusSources, create_api
from monitor.api.sources import Held, Tracked
from monitor.core.access import Role
from monitor.store import SupportRequests

OPENED = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, no bank holiday that week


async def ready() -> tuple[bool, dict[str, str]]:
    return True, {}


@pytest.mark.parametrize(
    ("working_days", "due"),
    [
        (None, datetime(2026, 12, 3, 10, 0, tzinfo=UTC)),  # the guidance's 3: Thursday
        (5, datetime(2026, 12, 7, 10, 0, tzinfo=UTC)),  # the following Monday
    ],
)
def test_response_due_at_counts_the_configured_working_days(
    migrated: Engine, working_days: int | None, due: datetime
) -> None:
    world = build_world(migrated)
    requests = SupportRequests(migrated)
    [request] = requests.find(router_id=world.routers["la-1"].id)
    requests.mark_open(request.correlation_id, "sys-1", "INC0001", OPENED)
    configured = StatusSources.build(
        migrated, Tracked(FakeLive()), Held(lambda: world.alerts), 20 * 10**9, LONDON, None,
        response_working_days=working_days, holiday_region="WLS" if working_days else None,
    )  # fmt: skip
    sources = replace(
        world.sources,
        response_working_days=configured.response_working_days,
        holiday_region=configured.holiday_region,
    )
    caller = world.caller(Role.LA_USER, "la-1")
    with TestClient(create_api(ready, CollectorRegistry(), str, sources)) as client:
        listed = client.get(
            "/api/v1/support-requests", params={"router": "r-la-1"}, headers=caller.headers
        ).json()
        detail = client.get("/api/v1/routers/r-la-1", headers=caller.headers).json()
    [item] = listed["items"]
    assert datetime.fromisoformat(item["response_due_at"]) == due
    [shown] = detail["open_support_requests"]
    assert datetime.fromisoformat(shown["response_due_at"]) == due


def test_build_keeps_todays_defaults_when_nothing_is_configured(migrated: Engine) -> None:
    default = StatusSources.build(migrated, Tracked(FakeLive()), Held(list), 1, LONDON, None)
    assert (default.response_working_days, default.holiday_region) == (3, "ENG")
    wales = StatusSources.build(
        migrated, Tracked(FakeLive()), Held(list), 1, LONDON, None,
        response_working_days=4, holiday_region="WLS",
    )  # fmt: skip
    assert (wales.response_working_days, wales.holiday_region) == (4, "WLS")
