"""Fixtures: a real database per test, SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from monitor.store import Inventory, open_database, upgrade

POSTGRES_ENV = "MONITOR_TEST_POSTGRES_URL"
# CI sets this so that a missing PostgreSQL fails the run instead of skipping half the suite.
REQUIRE_POSTGRES_ENV = "MONITOR_TEST_REQUIRE_POSTGRES"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'monitor.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        if os.environ.get(REQUIRE_POSTGRES_ENV):
            pytest.fail(f"{REQUIRE_POSTGRES_ENV} is set but {POSTGRES_ENV} is not")
        pytest.skip(f"{POSTGRES_ENV} not set: PostgreSQL store tests skipped")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        # search_path on every connection puts the tables and alembic_version in the schema.
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the empty test database, disposed afterwards."""
    engine = open_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    """The engine, with the schema migrated to head."""
    upgrade(engine)
    return engine


@pytest.fixture
def inventory(migrated: Engine) -> Inventory:
    """An inventory on a freshly migrated database."""
    return Inventory(migrated)


def luhn_imei(number: int) -> str:
    """A valid 15-digit IMEI: 14 digits from `number` plus the Luhn check digit."""
    body = f"35{number:012d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:  # doubled once the check digit is appended on the right
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return body + str((10 - total % 10) % 10)


@pytest.fixture
def imei() -> Callable[[int], str]:
    """Make valid IMEIs: imei(n) differs for every n below 10**12."""
    return luhn_imei
