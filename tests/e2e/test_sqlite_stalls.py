"""On the embedded default (SQLite), a long write never stalls a read: the operator's health
read answers within its own timeout and a business's pages stay fast while another process
holds the write lock, as an import or a busy worker does (issue 24: the status read took
BEGIN IMMEDIATE and waited 30 s, and /api/me timed out behind it).

Against a real gunicorn api on a SQLite file in WAL mode, with concurrent requests.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from libs.common import migrate, repositories
from libs.common.db import Database
from libs.common.models import TokenRole
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import free_port

#: How long the other process holds SQLite's write lock: far longer than any bound below, so a
#: read that queued for the lock cannot pass.
HOLD_S = 6.0
#: The health read's own bound (DATABASE_CHECK_TIMEOUT_S).
CHECK_TIMEOUT_S = 1.0


@dataclass
class SqliteApi:
    url: str
    path: Path
    business: dict[str, str]
    operator: dict[str, str]


@pytest.fixture
def sqlite_api(redis_url: str, redis_client: object, tmp_path: Path) -> Iterator[SqliteApi]:
    path = tmp_path / "embedded.db"
    database_url = f"sqlite:///{path}"
    migrate.upgrade(database_url)
    database = Database(database_url)
    with database.session() as session:
        business = repositories.create_business(session, "Embedded Co")
        _, business_secret = repositories.create_token(session, TokenRole.BUSINESS, business.id)
        _, operator_secret = repositories.create_token(session, TokenRole.OPERATOR, None)
        session.commit()
    database.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        API_BIND=f"127.0.0.1:{port}",
        SERVICE_ROLE="api",
        DATABASE_CHECK_TIMEOUT_S=str(CHECK_TIMEOUT_S),
    )
    with running(gunicorn_argv("api"), env, tmp_path / "api.log", f"{url}/healthz"):
        yield SqliteApi(
            url,
            path,
            {"Authorization": f"Bearer {business_secret}"},
            {"Authorization": f"Bearer {operator_secret}"},
        )


def _hold_write_lock(path: Path, held: threading.Event, seconds: float) -> None:
    """Another process's long write: the write lock taken and kept for ``seconds``."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE businesses SET name = name || ''")
        held.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


def _timed_get(url: str, headers: dict[str, str]) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = requests.get(url, headers=headers, timeout=HOLD_S * 3)
    return time.monotonic() - started, response


def test_a_long_write_stalls_neither_the_health_read_nor_other_requests(
    sqlite_api: SqliteApi,
) -> None:
    api = sqlite_api
    # Warm each gunicorn worker's pool, so connecting is not what gets measured.
    for _ in range(4):
        assert requests.get(f"{api.url}/api/me", headers=api.business, timeout=10).ok
    held = threading.Event()
    writer = threading.Thread(target=_hold_write_lock, args=(api.path, held, HOLD_S))
    writer.start()
    assert held.wait(5), "the writer never got the lock"
    lock_taken = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        statuses = [
            pool.submit(_timed_get, f"{api.url}/api/queue/status", api.operator) for _ in range(2)
        ]
        me: list[tuple[float, requests.Response]] = []
        # Pages keep being asked for while the health reads run and the lock is held.
        while time.monotonic() - lock_taken < HOLD_S - 2 and len(me) < 40:
            me.append(_timed_get(f"{api.url}/api/me", api.business))
            time.sleep(0.05)
        status_results = [future.result() for future in statuses]
    still_held = writer.is_alive()
    writer.join()
    assert still_held, "the writer let go before the reads were measured"

    for seconds, response in status_results:
        assert response.status_code == 200, response.text
        assert response.json()["components"]["database"]["ok"] is True, response.text
        # Its own bound, plus the rest of the report (Redis) and a loaded machine's slack;
        # a read that waited for the lock would take the whole HOLD_S.
        assert seconds < CHECK_TIMEOUT_S + 2.0, seconds
    assert all(r.status_code == 200 for _, r in me)
    durations = [seconds for seconds, _ in me]
    assert len(durations) >= 10
    assert statistics.median(durations) < 0.2, durations
    assert max(durations) < 1.5, durations
