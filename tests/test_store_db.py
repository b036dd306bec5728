"""open_database: SQLite set-up, and errors that name the database but never its password."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from monitor.errors import StoreError
from monitor.store import open_database


def test_sqlite_file_directory_is_created_and_pragmas_are_set(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "monitor.db"

    engine = open_database(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            journal = connection.execute(text("PRAGMA journal_mode")).scalar()
            foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar()
            busy = connection.execute(text("PRAGMA busy_timeout")).scalar()
            cache = connection.execute(text("PRAGMA cache_size")).scalar()
            mmap = connection.execute(text("PRAGMA mmap_size")).scalar()
    finally:
        engine.dispose()

    assert path.exists()
    assert (journal, foreign_keys) == ("wal", 1)
    assert busy is not None
    assert busy > 0
    assert cache is not None
    assert cache <= -16 * 1024  # at least 16 MiB (negative: KiB), not the 2 MiB default
    assert mmap is not None
    assert mmap > 0


def test_opens_every_test_database(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize(
    "url",
    ["not a url", "postgresql+psycopg://monitor:s3cr3t-pw@[::1:bad/db", "://s3cr3t-pw@x"],
)
def test_bad_url_is_a_store_error_without_the_password(url: str) -> None:
    with pytest.raises(StoreError, match="not a valid database URL") as caught:
        open_database(url)
    assert "s3cr3t-pw" not in str(caught.value)


def test_unknown_driver_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot use database") as caught:
        open_database("nosuchdb://monitor:s3cr3t-pw@localhost/db")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    url = "postgresql+psycopg://monitor:s3cr3t-pw@127.0.0.1:1/monitor?connect_timeout=3"

    with pytest.raises(StoreError, match="cannot connect to database") as caught:
        open_database(url)

    message = str(caught.value)
    assert "s3cr3t-pw" not in message
    assert "postgresql+psycopg://monitor:***@127.0.0.1:1/monitor" in message
    assert caught.value.__cause__ is not None
