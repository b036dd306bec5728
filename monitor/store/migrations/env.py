"""Alembic environment for router-monitor: runs on the connection `monitor.store.upgrade` passes.

Unlike Alembic's template this never calls logging.config.fileConfig: the application owns
logging, and a migration run at daemon start must not reset it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from monitor.store.db import open_database
from monitor.store.tables import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    # Invoked by the plain alembic CLI with sqlalchemy.url set: open our own engine.
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("run migrations with `monitor db upgrade` or set sqlalchemy.url")
    engine = open_database(url)
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
_run_online()
