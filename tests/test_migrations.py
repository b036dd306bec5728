"""Migrations: applied from empty, idempotent, and in step with the SQLAlchemy models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from monitor.model import Organisation, OrganisationKind
from monitor.store import Inventory, schema_status, upgrade
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
