"""A router reallocated between tenants: its former organisation's support requests and alerts
stay the former organisation's, in router detail exactly as in the listings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine
from test_api_tenants import NOW, World, build_world, firing_alert

from monitor.core.access import Role
from monitor.model import Advance, AlertState, Router
from monitor.store import AlertStore, Inventory, SupportRequests


@pytest.fixture
def world(migrated: Engine) -> Iterator[World]:
    made = build_world(migrated)
    with made.client:
        yield made


def reallocate(world: World, router: Router, organisation: str) -> Router:
    moved = replace(router, device=replace(router.device, organisation_id=organisation))
    Inventory(world.engine).upsert_devices([moved])
    return moved


def test_router_reallocated_from_an_la_school_to_a_trust_school_hides_the_las_requests(
    world: World,
) -> None:
    router = world.routers["school-la1"]
    [before] = SupportRequests(world.engine).find(router_id=router.id)
    assert (before.organisation_id, before.on_behalf_of) == ("school-la1", "la-1")
    reallocate(world, router, "school-t1")

    contact = world.caller(Role.SCHOOL_TECHNICAL_CONTACT, "school-t1")
    answer = world.client.get(f"/api/v1/routers/{router.id}", headers=contact.headers)
    assert answer.status_code == 200
    detail = answer.json()
    assert detail["organisation"] == "school-t1"
    assert detail["open_support_requests"] == []
    assert detail["alerts"] == []  # fired for school-la1: the LA's, not the trust school's
    assert before.correlation_id not in answer.text
    for path in ("/api/v1/support-requests", "/api/v1/alerts"):
        listed = world.client.get(path, params={"router": router.id}, headers=contact.headers)
        assert listed.json()["total"] == 0, path

    # The trust above the school: the same.
    trust = world.caller(Role.TRUST_USER, "trust-1")
    by_trust = world.client.get(f"/api/v1/routers/{router.id}", headers=trust.headers).json()
    assert (by_trust["open_support_requests"], by_trust["alerts"]) == ([], [])

    # The LA no longer sees the router, but still sees what it raised for it.
    la_user = world.caller(Role.LA_USER, "la-1")
    assert world.client.get(
        f"/api/v1/routers/{router.id}", headers=la_user.headers
    ).status_code == (404)
    for path in ("/api/v1/support-requests", "/api/v1/alerts"):
        listed = world.client.get(path, params={"router": router.id}, headers=la_user.headers)
        assert listed.json()["total"] == 1, path


def test_a_reallocated_router_shows_what_was_raised_for_its_new_organisation(
    world: World,
) -> None:
    router = world.routers["school-la1"]
    moved = reallocate(world, router, "school-t1")
    alert = replace(firing_alert(moved), episode_id="ep-after-move")
    AlertStore(world.engine).apply([Advance(alert, AlertState.PENDING)], NOW)
    world.alerts.append(alert)  # the engine's in-memory alerts: the old one and the new one

    contact = world.caller(Role.SCHOOL_TECHNICAL_CONTACT, "school-t1")
    detail = world.client.get(f"/api/v1/routers/{router.id}", headers=contact.headers).json()
    assert [r["organisation_id"] for r in detail["open_support_requests"]] == ["school-t1"]
    assert [r["on_behalf_of"] for r in detail["open_support_requests"]] == ["trust-1"]
    assert [a["organisation_id"] for a in detail["alerts"]] == ["school-t1"]
    listed = world.client.get(
        "/api/v1/support-requests", params={"router": router.id}, headers=contact.headers
    ).json()
    assert [r["correlation_id"] for r in listed["items"]] == [
        r["correlation_id"] for r in detail["open_support_requests"]
    ]

    # The programme sees both tenants' requests and alerts for the router.
    programme = world.caller(Role.PROGRAMME, None)
    everything = world.client.get(f"/api/v1/routers/{router.id}", headers=programme.headers)
    body = everything.json()
    assert sorted(r["organisation_id"] for r in body["open_support_requests"]) == [
        "school-la1",
        "school-t1",
    ]
    assert sorted(a["organisation_id"] for a in body["alerts"]) == ["school-la1", "school-t1"]
