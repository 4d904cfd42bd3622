"""RabbitMQ's dead letters through the adapter: moved out of ``.XQ`` exactly once, even when a
move is interrupted; a retry whose publish never happened is not lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
import redis

from libs.common.contracts import BY_NAME, SYSTEM_PING
from libs.common.settings import Settings
from libs.queueops.broker_adapter.base import now_ms
from libs.queueops.broker_adapter.rabbitmq import RabbitmqAdapter, dead_queue
from tests.support.services import free_port


@pytest.fixture
def rabbitmq_settings(settings: Settings, rabbitmq_url: str, redis_client: redis.Redis) -> Settings:
    return settings.with_overrides(broker_url=rabbitmq_url)


@pytest.fixture
def adapter(rabbitmq_settings: Settings, redis_client: redis.Redis) -> Iterator[RabbitmqAdapter]:
    url = rabbitmq_settings.broker_url or ""
    adapter = RabbitmqAdapter(url, redis_client)
    for queue in ("default", "low"):
        adapter.purge(queue)
    yield adapter


def _dead_letter(url: str, message_id: str, job_id: int) -> None:
    """A message as Dramatiq's nack leaves it in ``default.XQ``."""
    message = SYSTEM_PING.message(background_job_id=job_id).copy(
        options={"broker_message_id": message_id, "retries": 3}
    )
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().basic_publish(
        "", dead_queue("default"), message.encode(), pika.BasicProperties(delivery_mode=2)
    )
    connection.close()


def _ready(adapter: RabbitmqAdapter, queue: str) -> Any:
    return adapter.depths([queue])[queue]


def test_a_move_interrupted_before_its_ack_stores_the_message_once(
    adapter: RabbitmqAdapter, rabbitmq_settings: Settings
) -> None:
    url = rabbitmq_settings.broker_url or ""
    _dead_letter(url, "dl-1", 1)
    # The first reader writes it to Redis, then dies before acknowledging: its connection
    # closes and RabbitMQ gives the message back to .XQ (redelivered).
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    method, _properties, body = channel.basic_get(dead_queue("default"), auto_ack=False)
    assert method is not None
    adapter._move(
        keys=[adapter._set_key("default"), adapter._bodies_key("default"), adapter.claims_key],
        args=["dl-1", now_ms(), body, "default dl-1"],
    )
    connection.close()
    assert _ready(adapter, "default").dead == 2  # in .XQ again, and in the store
    entries, _ = adapter.dead_letters(["default"], actor=None, limit=10, after=None)
    assert [e.id for e in entries] == ["dl-1"]
    assert _ready(adapter, "default").dead == 1  # .XQ emptied: counted once


def test_listing_takes_nothing_else_and_keeps_the_order(
    adapter: RabbitmqAdapter, rabbitmq_settings: Settings
) -> None:
    url = rabbitmq_settings.broker_url or ""
    for n in range(5):
        _dead_letter(url, f"dl-{n}", n)
    entries, _ = adapter.dead_letters(["default"], actor=None, limit=10, after=None)
    assert sorted(e.id for e in entries) == [f"dl-{n}" for n in range(5)]
    again, _ = adapter.dead_letters(["default"], actor=None, limit=10, after=None)
    assert [e.id for e in again] == [e.id for e in entries]  # a second read changes nothing
    assert _ready(adapter, "default").ready == 0  # nothing went back to work


def test_a_retry_that_cannot_publish_leaves_the_entry_in_place(
    adapter: RabbitmqAdapter, rabbitmq_settings: Settings, redis_client: redis.Redis
) -> None:
    _dead_letter(rabbitmq_settings.broker_url or "", "dl-9", 9)
    entry = adapter.find("dl-9", ["default"])
    assert entry is not None
    down = RabbitmqAdapter(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", redis_client)
    down.prefix, down.claims_key = adapter.prefix, adapter.claims_key
    with pytest.raises(Exception, match="unreachable"):
        down.retry(entry, BY_NAME["system.ping"])
    assert adapter.find("dl-9", ["default"]) is not None  # released, still retryable
    assert adapter.retry(entry, BY_NAME["system.ping"]) is True
    assert adapter.find("dl-9", ["default"]) is None
    assert _ready(adapter, "default").ready == 1


def test_a_claim_whose_process_died_returns_after_its_lease(
    adapter: RabbitmqAdapter, rabbitmq_settings: Settings, redis_client: redis.Redis
) -> None:
    _dead_letter(rabbitmq_settings.broker_url or "", "dl-7", 7)
    entry = adapter.find("dl-7", ["default"])
    assert entry is not None
    # A retry claimed it, then its process died before publishing (an hour ago).
    adapter._claim(keys=[adapter._set_key("default"), adapter.claims_key],
                   args=["dl-7", "default dl-7", 0])  # fmt: skip
    assert adapter.find("dl-7", ["default"]) is not None  # the expired claim came back
    assert redis_client.zcard(adapter.claims_key) == 0
