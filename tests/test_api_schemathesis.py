"""Schemathesis against the status API's own OpenAPI document: every operation, generated inputs,
responses checked against the document (status codes, bodies, headers), no server errors."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import Engine
from test_api_tenants import World, build_world

from monitor.core.access import Role
from monitor.store.access import PasswordCipher

EXAMPLES = 20  # per operation and mode: bounded, so the whole run stays well under a minute
# Real objects for the path parameters now and then, so that answers other than 404 are checked:
# the caller's own, a school's, another LA's.
KNOWN = {
    "router": ["r-la-1", "r-school-la1", "r-la-2", "350000000010005"],
    "organisation": ["la-1", "school-la1", "la-2", "trust-1"],
    "serial": ["s-la-1", "s-school-la1", "s-la-2"],
}


@pytest.fixture
def world(migrated: Engine) -> World:
    cipher = PasswordCipher.from_text(PasswordCipher.new_key())
    return build_world(migrated, cipher)


@pytest.mark.parametrize("role", [Role.LA_USER, Role.PROGRAMME])
def test_api_conforms_to_its_openapi_document(world: World, role: Role) -> None:
    caller = world.caller(role, "la-1" if role is Role.LA_USER else None)
    app = world.client.app
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/v1/routers",
        "/api/v1/routers/{router}",
        "/api/v1/routers/{router}/report-lost",
        "/api/v1/organisations/{organisation}/summary",
        "/api/v1/alerts",
        "/api/v1/support-requests",
        "/api/v1/devices/{serial}/passwords",
    }
    for operation in operations:
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        strategy = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])

        @given(case=strategy, auth=st.integers(0, 5), known=st.integers(0, 7))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case, auth: int, known: int) -> None:
            if case.path_parameters and known < 4:
                for name in case.path_parameters:
                    case.path_parameters[name] = KNOWN[name][known % len(KNOWN[name])]
            headers = {"Authorization": f"Bearer {caller.secret}"} if auth < 5 else {}
            case.call_and_validate(headers=headers)

        check()
