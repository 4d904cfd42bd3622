"""Pooled connections: pinged on checkout only after sitting idle, and replaced when dead."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from libs.common.db import IDLE_PING_AFTER_S, create_db_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL to end a connection from the server's side")
    engine = create_db_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The connections the pool pinged, in order."""
    pinged: list[Any] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pinged.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    return pinged


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int, database_url: str) -> None:
    # From another engine: the pool under test must not lend its own connection for this.
    other = create_db_engine(database_url)
    try:
        with other.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()
    time.sleep(0.05)  # the backend's exit is asynchronous


def test_a_connection_returned_moments_ago_is_not_pinged(engine: Engine, pings: list[Any]) -> None:
    first = _backend_pid(engine)  # a new connection: proven by connecting
    second = _backend_pid(engine)
    assert first == second, "the pool has one connection"
    assert pings == []


def test_an_idle_connection_is_pinged_and_replaced_when_the_server_ended_it(
    engine: Engine, pings: list[Any], database_url: str
) -> None:
    before = _backend_pid(engine)
    _terminate(before, database_url)
    time.sleep(IDLE_PING_AFTER_S + 0.1)
    after = _backend_pid(engine)  # no error: the failed ping replaced the connection
    assert len(pings) == 1
    assert after != before


def test_a_connection_that_died_since_its_last_use_fails_once_then_the_pool_recovers(
    engine: Engine, pings: list[Any], database_url: str
) -> None:
    before = _backend_pid(engine)
    _terminate(before, database_url)
    # Reused within the idle window: not pinged, so the statement meets the dead connection.
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert pings == []
    assert _backend_pid(engine) != before  # the pool was invalidated, not left broken
