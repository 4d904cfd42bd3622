"""Fixtures: settings, a migrated database (PostgreSQL, or SQLite locally), Redis, apps, tokens.

Tests pass settings into create_app; nothing patches globals.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from libs.common import crypto, migrate, repositories
from libs.common.db import Database
from libs.common.models import Base, TokenRole
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from tests.support import rabbitmq, secret_scan, services, status_guard
from tests.support.brokers import purge_every_queue

# The log-secret scan (tests/support/secret_scan.py): capture every record from the start, and
# remember every encryption key a test generates; it runs when the session finishes.
secret_scan.capture_log_records()
_generate_key = crypto.generate_key
crypto.generate_key = lambda: secret_scan.remember(_generate_key())


def pytest_configure(config: pytest.Config) -> None:
    # A call's or job's status written outside the call lifecycle fails the test that did it.
    status_guard.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    findings = secret_scan.scan_all()
    if findings:
        print("\nSECRETS IN LOGS (tests/support/secret_scan.py):", *findings[:50], sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Tests must not read the developer's environment for these.
for _name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "APP_ENV", "SERVICE_ROLE",
              "PROMETHEUS_MULTIPROC_DIR", "RABBITMQ_MANAGEMENT_URL"):  # fmt: skip
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def session_tmp() -> Iterator[Path]:
    # Short: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="sb-") as path:
        yield Path(path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for the session; skips (fails in CI) without a server."""
    if not services.postgres_reachable():
        services.missing_service("PostgreSQL")
    with services.temporary_postgres_database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(session_tmp: Path) -> str:
    url = f"sqlite:///{session_tmp / 'test.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def database_url(session_tmp: Path) -> Iterator[str]:
    """PostgreSQL when reachable (always in CI), else SQLite: the backend most tests run on."""
    if services.postgres_reachable():
        with services.temporary_postgres_database() as url:
            migrate.upgrade(url)
            yield url
    elif services.IN_CI:
        pytest.fail("PostgreSQL is required in CI (CI=true) but is not reachable")
    else:
        url = f"sqlite:///{session_tmp / 'main.db'}"
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def redis_url(session_tmp: Path) -> Iterator[str]:
    """The real Redis server (database 9), or the embedded one when none runs (never in CI)."""
    if services.redis_reachable(services.REDIS_TEST_URL):
        yield services.REDIS_TEST_URL
    elif services.IN_CI:
        pytest.fail("Redis is required in CI (CI=true) but is not reachable")
    else:
        with services.embedded_redis(session_tmp) as url:
            yield url


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A virtual host of the shared RabbitMQ for this session (deleted after): other test runs
    on the machine use the same server at the same time."""
    if not rabbitmq.reachable():
        services.missing_service("RabbitMQ (with its management plugin)")
    with rabbitmq.temporary_vhost() as url:
        yield url


@pytest.fixture
def broker_kind(request: pytest.FixtureRequest) -> str:
    """``redis`` unless a test is parametrized over the brokers (tests/support/brokers.py)."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture
def broker_url(
    broker_kind: str, request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis
) -> str | None:
    """``BROKER_URL`` of the test's broker: None means the Redis of ``redis_url``, as when the
    variable is unset. A RabbitMQ test starts with its session's queues empty."""
    if broker_kind == "redis":
        return None
    url = str(request.getfixturevalue("rabbitmq_url"))
    purge_every_queue(url, redis_url)
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The session's database, emptied after each test."""
    database = Database(database_url)
    yield database
    empty_database(database)
    database.dispose()


def empty_database(database: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        if database.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def settings(database_url: str, redis_url: str, broker_url: str | None, tmp_path: Path) -> Settings:
    return Settings(
        app_env="test",
        service_role="api",
        database_url=database_url,
        redis_url=redis_url,
        broker_url=broker_url,
        var_dir=tmp_path,
        metrics_dir=tmp_path / "metrics",
        recordings_dir=tmp_path / "recordings",
    )


@pytest.fixture
def api_app(settings: Settings, db: Database, redis_client: redis.Redis) -> Flask:
    from services.api.app import create_app

    return create_app(settings, broker=build_broker(settings, worker=False))


@pytest.fixture
def client(api_app: Flask) -> FlaskClient:
    return api_app.test_client()


@dataclass(frozen=True)
class Tenant:
    business_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(db: Database, name: str) -> Tenant:
    with db.session() as session:
        business = repositories.create_business(session, name, "America/New_York")
        _, secret = repositories.create_token(session, TokenRole.BUSINESS, business.id, "test")
        session.commit()
        return Tenant(business.id, secret)


@pytest.fixture
def tenant_a(db: Database) -> Tenant:
    return make_tenant(db, "Business A")


@pytest.fixture
def tenant_b(db: Database) -> Tenant:
    return make_tenant(db, "Business B")


@pytest.fixture
def operator_headers(db: Database) -> dict[str, str]:
    with db.session() as session:
        _, secret = repositories.create_token(session, TokenRole.OPERATOR, None, "ops")
        session.commit()
    return {"Authorization": f"Bearer {secret}"}
