"""Read-only transactions (``Database.reader``): on SQLite they never wait for the write lock,
on both backends a write in one fails, and the pooled connection is a writer again after."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from libs.common import repositories
from libs.common.db import Database
from libs.common.models import Business


@pytest.fixture(params=["sqlite", "default"])
def database(request: pytest.FixtureRequest, sqlite_url: str, db: Database) -> Iterator[Database]:
    """The SQLite file and the session's backend (PostgreSQL in CI), one connection each."""
    if request.param == "default":
        yield db
        return
    database = Database(sqlite_url, pool_size=1, max_overflow=0)
    yield database
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM businesses"))
    database.dispose()


def test_a_write_in_a_read_only_session_fails_and_the_connection_writes_again(
    database: Database,
) -> None:
    with database.read_sessionmaker() as session:
        assert session.scalar(select(Business).limit(1)) is None
        session.add(Business(name="Sneaky", timezone="UTC"))
        with pytest.raises(DBAPIError):
            session.flush()
        session.rollback()
    with database.session() as session:
        repositories.create_business(session, "Allowed")
        session.commit()
    with database.read_sessionmaker() as session:
        assert session.scalars(select(Business.name)).all() == ["Allowed"]


def test_sqlite_reads_never_wait_for_another_process_s_write_lock(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    database.ping()  # the file is in WAL mode from here on
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        database.ping(timeout_s=0.5)
        with database.read_sessionmaker() as session:
            session.scalars(select(Business)).all()
        assert time.monotonic() - started < 0.5
        # A writer does wait (and here gives up after its bound): the lock is really held.
        with pytest.raises(DBAPIError, match="locked"), database.engine.connect() as connection:
            # Set on the driver's connection: a statement would BEGIN IMMEDIATE first.
            raw = connection.connection.dbapi_connection
            raw.execute("PRAGMA busy_timeout=100")  # type: ignore[union-attr]
            connection.execute(text("SELECT 1"))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        database.dispose()
