"""Finding the real PostgreSQL and Redis the tests use, or an embedded Redis outside CI."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from devtools.embedded_redis import redis_server_argv, wait_until_ready

IN_CI = os.environ.get("CI", "").lower() == "true"

#: The server database the tests create their own databases in (trust auth on dev and CI).
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def missing_service(what: str) -> None:
    """Skip locally; under CI=true a missing service fails the run."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) but is not reachable")
    pytest.skip(f"{what} is not reachable")


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """A new, empty database for this test session; dropped afterwards."""
    name = f"switchboard_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_reachable(url: str) -> bool:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        return True
    except (redis.RedisError, OSError):
        return False


@contextmanager
def embedded_redis(directory: Path) -> Iterator[str]:
    """The local stack's embedded Redis, for machines without a Redis server."""
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(redis_server_argv(directory, socket_path))
    try:
        wait_until_ready(socket_path)
        yield f"unix://{socket_path}"
    finally:
        process.terminate()
        process.wait(timeout=10)


#: Ports handed out lately: a test picks several before anything binds them.
_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A port nothing listens on, for a server a test starts, outside the kernel's ephemeral
    range: the source ports of outgoing connections come from that range, so a port picked
    there (as ``bind(0)`` picks) can be taken by a client socket (a starting service's
    database connection) before the server binds it (seen: nginx "Address already in use")."""
    low, high = _ephemeral_range()
    candidates = range(10_000, low) if low > 11_000 else range(high + 1, 65_536)
    for _ in range(1_000):
        port = random.choice(candidates)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port in {candidates}")


def unreachable_redis_url() -> str:
    """A Redis URL on a port nothing listens on: the broker-down case."""
    return f"redis://127.0.0.1:{free_port()}/0"
