"""Opening the database and migrating its schema (Alembic, run programmatically).

`open_database` is the one place an engine is built, so that every SQLite connection gets the
same pragmas and every failure to reach a database becomes a `StoreError` that never shows the
password of its URL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from monitor.errors import MonitorError, StoreError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any fixed 64-bit number will do; all pollers must agree on it ("rm-migr" in ASCII).
_MIGRATION_LOCK_KEY = 0x726D2D6D69677200

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_CACHE_KIB = 32 * 1024  # per connection; the pool holds a few
_SQLITE_MMAP_BYTES = 256 << 20  # address space, not memory: pages are the OS cache's

_URL_EXAMPLE = "e.g. sqlite:///var/monitor.db or postgresql+psycopg://monitor@db.example/monitor"


def open_database(url: str) -> Engine:
    """Create an engine for `url` and check that the database answers; StoreError if not."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        # The unparsed string may hold a password, so it is not repeated here.
        raise StoreError(f"not a valid database URL ({_URL_EXAMPLE})") from exc
    shown = parsed.render_as_string(hide_password=True)
    try:
        is_sqlite = parsed.get_backend_name() == "sqlite"
        if is_sqlite:
            _create_sqlite_directory(parsed)
        engine = create_engine(parsed, pool_pre_ping=not is_sqlite)
    except (ArgumentError, NoSuchModuleError, ImportError, OSError) as exc:
        reason = _scrub(str(exc), parsed)
        raise StoreError(f"cannot use database {shown}: {reason}") from exc
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot connect to database {shown}: {describe(exc, parsed)}") from exc
    return engine


def upgrade(engine: Engine) -> None:
    """Migrate the schema to the newest revision; a no-op when it is already there."""
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until commit: a second poller starting now waits, then finds head.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            elif connection.dialect.name == "sqlite":
                # Take the write lock first, so a concurrent upgrade waits instead of racing.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (SQLAlchemyError, CommandError) as exc:
        reason = describe(exc, engine.url)
        raise StoreError(f"cannot migrate the database schema: {reason}") from exc


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """The database's schema revision (None if never migrated) and the newest revision known."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}")
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schema revision: {describe(exc, engine.url)}") from exc
    return current, head


def describe(exc: BaseException, url: URL | None = None) -> str:
    """A one-line reason for a database error, without SQL, parameters or the URL's password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    return _scrub(reason, url) if url is not None else reason


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def _create_sqlite_directory(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


# Switching a new database to WAL needs it to itself: when `monitor run` and `monitor api` open
# one together (Compose starts both), SQLite may refuse one of them at once, without waiting
# out busy_timeout (it would otherwise deadlock). Once in WAL the switch is a no-op.
_wal_switch = Retrying(
    retry=retry_if_exception(_locked),
    wait=wait_random(0.01, 0.1),
    stop=stop_after_delay(_SQLITE_BUSY_TIMEOUT_MS / 1000),
    reraise=True,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        # busy_timeout makes writers queue; WAL lets the API read while the poller writes.
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        _wal_switch(cursor.execute, "PRAGMA journal_mode=WAL")
        # A page cache that holds the hot tables of a large fleet (the default is 2 MiB; it is
        # mostly the batch writer's: a reader's cache is dropped whenever another connection
        # commits), and reads through a memory map rather than a read() call per page.
        cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
    finally:
        cursor.close()


def _scrub(message: str, url: URL | None) -> str:
    password = url.password if url is not None else None
    if password:
        message = message.replace(str(password), "***")
    return message


@contextmanager
def named_failures(what: str) -> Iterator[None]:
    """Database errors inside become a StoreError naming `what` was being done; ours pass."""
    try:
        yield
    except MonitorError:
        raise
    except SQLAlchemyError as exc:
        raise store_error(exc, what) from exc


@contextmanager
def writing(sessions: sessionmaker[Session], what: str) -> Iterator[Session]:
    """A write transaction; database errors (its commit's too) become StoreError naming `what`."""
    with named_failures(what), sessions.begin() as session:
        if session.get_bind().dialect.name == "sqlite":
            # Take the write lock before reading, so that what we compare against cannot
            # change before we write (SQLite otherwise begins at the first write).
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


@contextmanager
def reading(sessions: sessionmaker[Session], what: str) -> Iterator[Session]:
    """A read-only session; database errors become StoreError naming `what`."""
    with named_failures(what), sessions() as session:
        yield session


@contextmanager
def connected(engine: Engine, what: str) -> Iterator[Connection]:
    """A connection for reads in SQLAlchemy Core; database errors become StoreError naming
    `what`.

    For the reads the status API makes per request. Without an ORM session, and with each
    statement built once (module-level, or once per shape of filter) so that SQLAlchemy
    neither rebuilds it nor recomputes its cache key, a read costs a quarter to a half of what
    it did: at 100k routers, a router by IMEI 0.30 ms of CPU instead of 1.36, a listing page
    1.39 ms instead of 2.34 (docs/performance.md)."""
    with named_failures(what), engine.connect() as connection:
        yield connection


def store_error(exc: SQLAlchemyError, what: str) -> StoreError:
    """A StoreError for a failed database call, with a hint when the schema is missing."""
    reason = describe(exc)
    if "no such table" in reason or "does not exist" in reason:
        reason += " (is the schema migrated? run `monitor db upgrade`)"
    return StoreError(f"{what}: {reason}")


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_for(session: Session, table: type[Any]) -> Any:
    """An INSERT of the session's dialect, which offers ON CONFLICT (SQLite and PostgreSQL)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    return (pg_insert if postgres else sqlite_insert)(table)


def upsert(session: Session, table: type[Any], values: dict[str, Any], key: str) -> None:
    """Insert a row, or update every other column of the row with the same `key`."""
    statement = insert_for(session, table).values(values)
    changes = {column: statement.excluded[column] for column in values if column != key}
    session.execute(statement.on_conflict_do_update(index_elements=[key], set_=changes))
