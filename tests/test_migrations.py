"""Migrations: applied from empty, idempotent, and in step with the SQLAlchemy models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from monitor.model import Organisation, OrganisationKind
from monitor.store import Inventory, schema_status, upgrade
from monitor.store.db import _alembic_config
from monitor.store.tables import Base


def test_upgrade_on_an_empty_database_creates_the_tables(engine: Engine) -> None:
    current, head = schema_status(engine)
    assert current is None

    upgrade(engine)

    assert schema_status(engine) == (head, head)
    tables = set(inspect(engine).get_table_names())
    assert {"organisations", "devices", "routers", "alembic_version"} <= tables


def test_upgrade_on_a_migrated_database_is_a_no_op_and_keeps_data(migrated: Engine) -> None:
    inventory = Inventory(migrated)
    inventory.upsert_organisations([Organisation("la1", "LA", OrganisationKind.LOCAL_AUTHORITY)])
    before = schema_status(migrated)

    upgrade(migrated)
    upgrade(migrated)

    assert schema_status(migrated) == before
    assert inventory.list_organisations() == [
        Organisation("la1", "LA", OrganisationKind.LOCAL_AUTHORITY)
    ]


def test_models_match_migrations(migrated: Engine) -> None:
    with migrated.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_0006_keeps_one_of_each_duplicated_transition(engine: Engine) -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005_access")
    insert = text(
        "INSERT INTO health_transitions (router_id, at, from_state, to_state, reason) "
        "VALUES ('r-1', :at, 'online', :to, 'no answer')"
    )
    with engine.begin() as connection:
        for to in ("unreachable", "unreachable", "unreachable", "capped"):
            connection.execute(insert, {"at": datetime(2026, 11, 1, tzinfo=UTC), "to": to})
        oldest = connection.execute(text("SELECT MIN(id) FROM health_transitions")).scalar()

    upgrade(engine)

    with engine.connect() as connection:
        kept = connection.execute(
            text("SELECT id, to_state FROM health_transitions ORDER BY id")
        ).all()
    assert [to for _, to in kept] == ["unreachable", "capped"]
    assert kept[0][0] == oldest  # of the duplicates, the oldest row is the one kept
