"""POST /api/system/ping enqueues through the real broker; a dead broker leaves nothing behind."""

import json

import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select

from libs.common.db import Database
from libs.common.models import BackgroundJob
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.api.app import create_app
from tests.conftest import Tenant
from tests.support.services import unreachable_redis_url


def _job_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(BackgroundJob)) or 0)


def test_ping_creates_a_job_and_enqueues_it_by_id(
    client: FlaskClient, db: Database, tenant_a: Tenant, redis_client: redis.Redis
) -> None:
    response = client.post(
        "/api/system/ping", headers={**tenant_a.headers, "X-Request-ID": "req-ping-1"}
    )
    assert response.status_code == 202
    job = response.json["job"]
    assert job["status"] == "queued"
    assert job["business_id"] == tenant_a.business_id
    assert response.headers["X-Request-ID"] == "req-ping-1"
    # The message is in Dramatiq's Redis queue and carries only the id and the request id.
    ids = redis_client.lrange("dramatiq:default", 0, -1)
    assert len(ids) == 1
    stored = json.loads(redis_client.hget("dramatiq:default.msgs", ids[0]))
    assert stored["actor_name"] == "system.ping"
    assert stored["kwargs"] == {"background_job_id": job["id"]}
    assert stored["options"]["request_id"] == "req-ping-1"


def _app_with_dead_broker(settings: Settings) -> FlaskClient:
    dead = settings.with_overrides(redis_url=unreachable_redis_url())
    return create_app(dead, broker=build_broker(dead, worker=False)).test_client()


def test_broker_down_is_503_and_writes_nothing(
    settings: Settings, db: Database, tenant_a: Tenant
) -> None:
    client = _app_with_dead_broker(settings)
    response = client.post("/api/system/ping", headers=tenant_a.headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert response.headers["Retry-After"]
    assert _job_count(db) == 0


def test_readyz_names_the_broker_when_it_is_down(settings: Settings, db: Database) -> None:
    client = _app_with_dead_broker(settings)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["broker"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True
    assert "broker" in response.json["error"]["message"]
    assert client.get("/healthz").status_code == 200


def test_readyz_names_the_database_when_it_is_down(settings: Settings, redis_url: str) -> None:
    broken = settings.with_overrides(database_url="postgresql://nobody@127.0.0.1:1/none")
    client = create_app(broken, broker=build_broker(broken, worker=False)).test_client()
    response = client.get("/api/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["ok"] is False
    assert response.json["checks"]["broker"]["ok"] is True


def test_readyz_ok(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"
