"""Actors and their contracts on each real broker (Redis, RabbitMQ), with a real Worker.

``test_actors.py`` runs the actors' logic on Dramatiq's StubBroker; these run a few of them
through the brokers production uses, and send a message of every contract through each, so a
message that one broker would mangle or route elsewhere fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker

from libs.common import metrics
from libs.common.contracts import ALL_CONTRACTS, SYSTEM_PING
from libs.common.db import Database
from libs.common.models import BackgroundJob, JobStatus
from libs.common.request_context import set_request_id
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from libs.queueops.broker_adapter import adapter_for
from services.worker.actors import register_actors
from tests.support.brokers import on_every_broker
from tests.support.waiting import wait_until

pytestmark = on_every_broker


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return settings.with_overrides(
        service_role="worker", worker_background_poll_ms=50, worker_idle_block_ms=50
    )


@pytest.fixture
def broker(worker_settings: Settings, db: Database) -> Iterator[dramatiq.Broker]:
    real = build_broker(worker_settings, worker=True, prometheus=False)
    register_actors(real)
    worker = Worker(real, worker_timeout=50, worker_threads=2)
    worker.start()
    yield real
    worker.stop()
    real.close()


def _new_job(db: Database) -> int:
    with db.session() as session:
        job = BackgroundJob(kind="system.ping")
        session.add(job)
        session.commit()
        return job.id


def _job(db: Database, job_id: int) -> BackgroundJob:
    with db.session() as session:
        job = session.get(BackgroundJob, job_id)
        assert job is not None
        return job


def test_ping_runs_with_the_request_id(db: Database, broker: dramatiq.Broker) -> None:
    job_id = _new_job(db)
    set_request_id("req-on-a-real-broker")
    try:
        SYSTEM_PING.send(broker, background_job_id=job_id)
    finally:
        set_request_id(None)
    assert wait_until(lambda: _job(db, job_id).status is JobStatus.SUCCEEDED, 20)
    result = _job(db, job_id).result
    assert result is not None and result["request_id"] == "req-on-a-real-broker"


def test_a_redelivered_ping_changes_nothing(db: Database, broker: dramatiq.Broker) -> None:
    job_id = _new_job(db)
    SYSTEM_PING.send(broker, background_job_id=job_id)
    assert wait_until(lambda: _job(db, job_id).finished_at is not None, 20)
    first = _job(db, job_id).finished_at
    before = metrics.ACTOR_MISSING_ROWS.labels("system.ping")._value.get()
    SYSTEM_PING.send(broker, background_job_id=job_id)  # at-least-once: a second delivery
    SYSTEM_PING.send(broker, background_job_id=987654)  # and one for a row that is not there
    assert wait_until(
        lambda: metrics.ACTOR_MISSING_ROWS.labels("system.ping")._value.get() == before + 1, 20
    )
    assert _job(db, job_id).finished_at == first


def test_a_missing_row_is_not_dead_lettered(
    db: Database, broker: dramatiq.Broker, settings: Settings
) -> None:
    before = metrics.ACTOR_MISSING_ROWS.labels("system.ping")._value.get()
    SYSTEM_PING.send(broker, background_job_id=424242)
    assert wait_until(
        lambda: metrics.ACTOR_MISSING_ROWS.labels("system.ping")._value.get() == before + 1, 20
    )
    adapter = adapter_for(settings)
    try:
        assert adapter.depths(["default"])["default"].dead == 0
    finally:
        adapter.close()


def _arguments(params: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: (i + 1) if name.endswith("_id") else f"value-{i}" for i, name in enumerate(params)
    }


def test_every_contract_crosses_the_broker_intact(settings: Settings, db: Database) -> None:
    """Sent by a producer's broker, received by a consumer: same actor, queue and arguments."""
    # An idle consumer of an urgent queue blocks up to the idle block before `next` says None.
    producer = build_broker(settings.with_overrides(worker_idle_block_ms=50), worker=False)
    try:
        sent = {}
        for contract in ALL_CONTRACTS:
            message = contract.message(**_arguments(contract.params))
            producer.enqueue(message)
            sent[message.message_id] = message
        received = {}
        for queue in sorted({c.queue for c in ALL_CONTRACTS}):
            consumer = producer.consume(queue, prefetch=50, timeout=200)
            try:
                while (proxy := next(consumer)) is not None:
                    received[proxy.message_id] = proxy._message
                    consumer.ack(proxy)
            finally:
                consumer.close()
    finally:
        producer.close()
    assert set(received) == set(sent)
    for message_id, message in sent.items():
        got = received[message_id]
        assert (got.actor_name, got.queue_name, got.kwargs) == (
            message.actor_name,
            message.queue_name,
            message.kwargs,
        )
