"""The operations API against each real broker (Redis, RabbitMQ) and a real worker.

Messages are dead-lettered the way production does it: a Dramatiq worker runs an actor that
raises until its retries are used up, and the broker's nack dead-letters it. Every test runs
on both brokers and expects the same answers: the console promises the same behaviour.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import jsonschema
import pytest
import redis
from dramatiq import Worker
from dramatiq.middleware import CurrentMessage
from flask.testing import FlaskClient

from libs.common.contracts import DIALER_DISPATCH, QUEUES, SYSTEM_PING
from libs.common.settings import Settings
from libs.queueops import heartbeats
from libs.queueops.broker import build_broker
from libs.queueops.broker_adapter import BrokerAdapter, adapter_for
from services.api.app import create_app
from tests.conftest import Tenant
from tests.support.brokers import on_every_broker
from tests.support.services import unreachable_redis_url

pytestmark = on_every_broker

#: Retries quickly, so a message is dead-lettered in well under a second.
FAST_RETRIES = {"max_retries": 1, "min_backoff": 10, "max_backoff": 50}
#: An actor whose contract was removed: the worker still has it, the api no longer does.
LEGACY_ACTOR = "legacy.removed"
WORKER_QUEUES = {"default", "high", "low"}
#: A queue no test worker consumes: what is sent there stays ready (on RabbitMQ a paused
#: worker's consumer would still be handed messages up to its prefetch).
IDLE_QUEUE = "receipts"


@dataclass
class Outside:
    """What the test actors depend on: broken until the test "fixes the cause"."""

    broken: bool = True
    attempts: list[tuple[str, Any]] = field(default_factory=list)
    done: list[tuple[str, Any]] = field(default_factory=list)
    retries_seen: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, actor: str, value: Any) -> None:
        with self.lock:
            self.attempts.append((actor, value))
        if self.broken:
            raise RuntimeError(f"{actor}({value}): the downstream service is down")
        message = CurrentMessage.get_current_message()
        with self.lock:
            self.done.append((actor, value))
            self.retries_seen.append(message.options.get("retries") if message else "?")


@pytest.fixture
def outside() -> Outside:
    return Outside()


@pytest.fixture
def adapter(settings: Settings) -> Iterator[BrokerAdapter]:
    broker_adapter = adapter_for(settings)
    yield broker_adapter
    broker_adapter.close()


@pytest.fixture
def ops_broker(settings: Settings, redis_client: redis.Redis, outside: Outside) -> Iterator[Any]:
    """The worker's broker as production builds it (minus Prometheus, which needs the
    ``dramatiq`` command's process boot), with test implementations of two real contracts."""
    worker_settings = settings.with_overrides(service_role="worker", worker_background_poll_ms=50)
    broker = build_broker(worker_settings, worker=True, prometheus=False)

    def ping(background_job_id: int) -> None:
        outside.run(SYSTEM_PING.name, background_job_id)

    def dispatch(business_id: int) -> None:
        outside.run(DIALER_DISPATCH.name, business_id)

    def legacy(x: int) -> None:
        outside.run(LEGACY_ACTOR, x)

    dramatiq.actor(ping, actor_name=SYSTEM_PING.name, queue_name=SYSTEM_PING.queue,
                   broker=broker, **FAST_RETRIES)  # fmt: skip
    dramatiq.actor(dispatch, actor_name=DIALER_DISPATCH.name, queue_name=DIALER_DISPATCH.queue,
                   broker=broker, **FAST_RETRIES)  # fmt: skip
    dramatiq.actor(legacy, actor_name=LEGACY_ACTOR, queue_name="low", broker=broker, max_retries=0)
    yield broker
    broker.close()


@pytest.fixture
def ops_worker(ops_broker: Any) -> Iterator[Worker]:
    worker = Worker(ops_broker, queues=WORKER_QUEUES, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()


def wait_for(predicate: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def failed_items(client: FlaskClient, headers: dict[str, str], **query: Any) -> list[Any]:
    response = client.get("/api/admin/failed", headers=headers, query_string=query)
    assert response.status_code == 200, response.json
    items: list[Any] = response.json["items"]
    return items


def dead_letter(
    broker: Any, client: FlaskClient, headers: dict[str, str], message: dramatiq.Message[Any]
) -> dict[str, Any]:
    """Send ``message`` to the (broken) worker; its FailedMessage once it is dead-lettered and
    its final error recorded (the worker writes it just after Dramatiq moves the message)."""
    broker.enqueue(message)

    def listed() -> Any:
        items = failed_items(client, headers)
        return next(
            (i for i in items if i["message_id"] == message.message_id and i["error"]), None
        )

    found: dict[str, Any] = wait_for(listed)
    return found


#: The api's generated OpenAPI document, read once per test from its app.
DOCUMENT: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _document(client: FlaskClient) -> None:
    DOCUMENT.update(client.get("/api/openapi.json").json)


def validate(path: str, method: str, status: int, body: Any) -> None:
    document = DOCUMENT
    spec = document["paths"][path][method]["responses"][str(status)]
    schema = {**spec["content"]["application/json"]["schema"], "components": document["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


def _legacy_message(x: int, queue: str = "low") -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue, actor_name=LEGACY_ACTOR, args=(), kwargs={"x": x}, options={}
    )


ROUTES = [
    ("get", "/api/admin/queues"),
    ("get", "/api/admin/workers"),
    ("get", "/api/admin/failed"),
    ("post", "/api/admin/failed/abc/retry"),
    ("delete", "/api/admin/failed/abc"),
    ("post", "/api/admin/failed/retry"),
]


def test_business_tokens_get_403_and_no_token_401(client: FlaskClient, tenant_a: Tenant) -> None:
    for method, path in ROUTES:
        forbidden = client.open(path, method=method, headers=tenant_a.headers, json={})
        assert forbidden.status_code == 403, path
        assert forbidden.json["error"]["code"] == "forbidden"
        assert "operator token" in forbidden.json["error"]["message"]
        assert client.open(path, method=method, json={}).status_code == 401
    validate("/api/admin/queues", "get", 403, forbidden.json)


def test_a_dead_lettered_message_is_listed_then_retried_once_its_cause_is_fixed(
    client: FlaskClient,
    operator_headers: dict[str, str],
    ops_broker: Any,
    ops_worker: Worker,
    outside: Outside,
    adapter: BrokerAdapter,
) -> None:
    sent = SYSTEM_PING.message(background_job_id=7)
    item = dead_letter(ops_broker, client, operator_headers, sent)

    assert outside.attempts == [("system.ping", 7)] * 2  # the first attempt and one retry
    assert item["actor"] == "system.ping"
    assert item["queue"] == "default"
    assert item["kwargs"] == {"background_job_id": 7}
    assert item["args"] == []
    # The final attempt's exception, recorded by the worker when it dead-lettered the message.
    assert item["error"] == "RuntimeError: system.ping(7): the downstream service is down"
    assert "Traceback" in item["traceback"] and "RuntimeError" in item["traceback"]
    assert item["retries"] == 1
    assert item["retryable"] is True and item["reason"] is None
    assert item["dead_lettered_at"].endswith("+00:00")
    page = client.get("/api/admin/failed", headers=operator_headers)
    validate("/api/admin/failed", "get", 200, page.json)

    outside.broken = False
    retried = client.post(f"/api/admin/failed/{item['id']}/retry", headers=operator_headers)
    assert retried.status_code == 202, retried.json
    assert retried.json == {
        "id": item["id"],
        "message_id": sent.message_id,
        "actor": "system.ping",
        "queue": "default",
    }
    validate("/api/admin/failed/{dead_letter_id}/retry", "post", 202, retried.json)
    wait_for(lambda: outside.done)
    ops_worker.join()
    time.sleep(0.2)  # long enough for a duplicate to show up, were there one
    assert outside.done == [("system.ping", 7)]
    assert outside.retries_seen == [None]  # its retry budget started over
    assert failed_items(client, operator_headers) == []
    assert adapter.depths(["default"])["default"].dead == 0

    again = client.post(f"/api/admin/failed/{item['id']}/retry", headers=operator_headers)
    assert again.status_code == 404
    assert again.json["error"]["code"] == "not_found"
    validate("/api/admin/failed/{dead_letter_id}/retry", "post", 404, again.json)


def test_delete_filters_pages_and_bulk_retry_by_actor(
    client: FlaskClient,
    operator_headers: dict[str, str],
    ops_broker: Any,
    ops_worker: Worker,
    outside: Outside,
) -> None:
    headers = operator_headers
    first = dead_letter(ops_broker, client, headers, SYSTEM_PING.message(background_job_id=1))
    dead_letter(ops_broker, client, headers, SYSTEM_PING.message(background_job_id=2))
    dead_letter(ops_broker, client, headers, SYSTEM_PING.message(background_job_id=3))
    dead_letter(ops_broker, client, headers, DIALER_DISPATCH.message(business_id=5))

    deleted = client.delete(f"/api/admin/failed/{first['id']}", headers=headers)
    assert deleted.status_code == 204 and deleted.data == b""
    assert client.delete(f"/api/admin/failed/{first['id']}", headers=headers).status_code == 404

    pings = failed_items(client, headers, actor="system.ping")
    assert sorted(i["kwargs"]["background_job_id"] for i in pings) == [2, 3]
    assert [i["actor"] for i in failed_items(client, headers, queue="high")] == ["dialer.dispatch"]

    # Newest first, two per page; the cursor leads to the rest without overlap.
    one = client.get("/api/admin/failed", headers=headers, query_string={"limit": 2}).json
    assert len(one["items"]) == 2 and one["next_cursor"]
    two = client.get(
        "/api/admin/failed",
        headers=headers,
        query_string={"limit": 2, "cursor": one["next_cursor"]},
    ).json
    assert len(two["items"]) == 1 and two["next_cursor"] is None
    listed = [i["dead_lettered_at"] for i in one["items"] + two["items"]]
    assert listed == sorted(listed, reverse=True)
    assert len({i["id"] for i in one["items"] + two["items"]}) == 3
    bad = client.get("/api/admin/failed", headers=headers, query_string={"cursor": "nope"})
    assert bad.status_code == 400
    assert client.get("/api/admin/failed?queue=nope", headers=headers).status_code == 400

    outside.broken = False
    bulk = client.post("/api/admin/failed/retry", headers=headers, json={"actor": "system.ping"})
    assert bulk.status_code == 200, bulk.json
    assert bulk.json == {"retried": 2, "skipped": [], "skipped_total": 0}
    validate("/api/admin/failed/retry", "post", 200, bulk.json)
    wait_for(lambda: len(outside.done) == 2)
    assert sorted(outside.done) == [("system.ping", 2), ("system.ping", 3)]
    assert [i["actor"] for i in failed_items(client, headers)] == ["dialer.dispatch"]

    by_queue = client.post("/api/admin/failed/retry", headers=headers, json={"queue": "high"})
    assert by_queue.json["retried"] == 1
    wait_for(lambda: ("dialer.dispatch", 5) in outside.done)
    assert failed_items(client, headers) == []

    wrong = client.post("/api/admin/failed/retry", headers=headers, json={"actr": "x"})
    assert wrong.status_code == 400
    validate("/api/admin/failed/retry", "post", 400, wrong.json)


def test_an_actor_without_a_contract_is_reported_but_not_retried(
    client: FlaskClient, operator_headers: dict[str, str], ops_broker: Any, ops_worker: Worker
) -> None:
    item = dead_letter(ops_broker, client, operator_headers, _legacy_message(1))
    assert item["actor"] == LEGACY_ACTOR and item["queue"] == "low"
    assert item["retries"] == 0
    # No retry happened, so Dramatiq stored no traceback: the worker's record supplies it.
    assert item["error"] == "RuntimeError: legacy.removed(1): the downstream service is down"
    assert item["retryable"] is False
    assert "no contract named 'legacy.removed'" in item["reason"]

    refused = client.post(f"/api/admin/failed/{item['id']}/retry", headers=operator_headers)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "not_retryable"
    assert refused.json["error"]["details"]["reason"] == item["reason"]
    validate("/api/admin/failed/{dead_letter_id}/retry", "post", 409, refused.json)

    bulk = client.post("/api/admin/failed/retry", headers=operator_headers, json={})
    assert bulk.json["retried"] == 0 and bulk.json["skipped_total"] == 1
    assert bulk.json["skipped"] == [
        {"id": item["id"], "queue": "low", "actor": LEGACY_ACTOR, "reason": item["reason"]}
    ]
    assert [i["id"] for i in failed_items(client, operator_headers)] == [item["id"]]


def test_concurrent_retries_enqueue_the_message_once(
    api_app: Any,
    client: FlaskClient,
    operator_headers: dict[str, str],
    ops_broker: Any,
    ops_worker: Worker,
    outside: Outside,
) -> None:
    item = dead_letter(
        ops_broker, client, operator_headers, SYSTEM_PING.message(background_job_id=9)
    )
    ops_worker.pause()  # so the queue can be counted before anything consumes it
    outside.broken = False
    start = threading.Barrier(6)
    statuses: list[int] = []

    def retry() -> None:
        own_client = api_app.test_client()
        start.wait()
        response = own_client.post(
            f"/api/admin/failed/{item['id']}/retry", headers=operator_headers
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [404] * 5

    ops_worker.resume()
    wait_for(lambda: outside.done)
    ops_worker.join()
    time.sleep(0.2)
    assert outside.done == [("system.ping", 9)]


def test_queues_report_depths_and_throughput(
    client: FlaskClient,
    operator_headers: dict[str, str],
    ops_broker: Any,
    ops_worker: Worker,
    outside: Outside,
) -> None:
    dead_letter(ops_broker, client, operator_headers, SYSTEM_PING.message(background_job_id=1))
    outside.broken = False
    for job_id in (2, 3, 4):
        ops_broker.enqueue(SYSTEM_PING.message(background_job_id=job_id))
    wait_for(lambda: len(outside.done) == 3)
    ops_worker.join()
    # Nothing consumes the idle queue: what is sent there stays queued.
    ops_broker.enqueue(_legacy_message(1, IDLE_QUEUE))
    ops_broker.enqueue(_legacy_message(2, IDLE_QUEUE))
    ops_broker.enqueue(_legacy_message(3, IDLE_QUEUE), delay=60_000)

    def report() -> dict[str, Any]:
        response = client.get("/api/admin/queues", headers=operator_headers)
        assert response.status_code == 200, response.json
        validate("/api/admin/queues", "get", 200, response.json)
        return {q["name"]: q for q in response.json["queues"]}

    def settled(r: dict[str, Any]) -> bool:
        # RabbitMQ's management API counts held messages from statistics a few seconds old.
        default = r["default"]
        return default["processed"]["5m"] == 5 and (default["in_progress"], default["delayed"]) == (
            0,
            0,
        )

    queues = wait_for(lambda: settled(r := report()) and r, timeout_s=30)
    assert list(queues) == list(QUEUES)
    default = queues["default"]
    # Five attempts ended: the dead-lettered one's two, and three that succeeded.
    assert default["processed"]["5m"] == default["processed"]["15m"] == 5
    assert default["failed"]["5m"] == default["failed"]["15m"] == 2
    assert 4 <= default["processed"]["1m"] <= 5  # a minute may have turned since
    assert default["dead_lettered"] == 1
    assert (default["ready"], default["in_progress"], default["delayed"]) == (0, 0, 0)
    idle = queues[IDLE_QUEUE]
    assert (idle["ready"], idle["in_progress"], idle["delayed"], idle["dead_lettered"]) == (
        2,
        0,
        1,
        0,
    )
    assert idle["processed"] == {"1m": 0, "5m": 0, "15m": 0}
    assert queues["high"]["failed"] == {"1m": 0, "5m": 0, "15m": 0}


def test_workers_lists_the_running_worker_and_flags_a_silent_one(
    client: FlaskClient,
    operator_headers: dict[str, str],
    ops_worker: Worker,
    redis_client: redis.Redis,
) -> None:
    silent = {"host": "ghost", "pid": 1, "queues": ["low"], "started_at": time.time() - 600,
              "beat_at": time.time() - 30}  # fmt: skip
    redis_client.set(heartbeats.heartbeat_key("ghost", 1), json.dumps(silent), px=60_000)

    def listed() -> Any:
        body = client.get("/api/admin/workers", headers=operator_headers).json
        return len(body["workers"]) == 2 and body

    body = wait_for(listed)
    validate("/api/admin/workers", "get", 200, body)
    ghost, mine = body["workers"]  # oldest beat first
    assert mine["pid"] == os.getpid()
    assert mine["queues"] == sorted(WORKER_QUEUES)
    assert mine["stale"] is False and mine["heartbeat_age_s"] < 5
    assert (ghost["host"], ghost["stale"]) == ("ghost", True)
    assert body["count"] == 2 and body["stale_after_s"] == 10.0


def test_a_dead_broker_is_503(settings: Settings, operator_headers: dict[str, str]) -> None:
    dead = settings.with_overrides(redis_url=unreachable_redis_url())
    client = create_app(dead, broker=None).test_client()
    for path in ("/api/admin/queues", "/api/admin/failed", "/api/admin/workers"):
        response = client.get(path, headers=operator_headers)
        assert response.status_code == 503, path
        assert response.json["error"]["code"] == "queue_unavailable"
