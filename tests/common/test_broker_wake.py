"""Idle consumers of the urgent queues on Redis are woken by the enqueue, not by their poll.

Each worker here blocks up to ten minutes between fetches, so a message that reaches its actor
within the test's wait was fetched because something woke the blocked consumer: every way a
message enters an urgent queue (enqueue, a batch, a due delayed message, a dead-letter retry)
must push that wake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq import Worker

from libs.common.contracts import ActorContract
from libs.queueops.broker import SwitchboardRedisBroker
from libs.queueops.broker_adapter.redis import WAKE_TOKENS_MAX, RedisAdapter
from libs.queueops.broker_adapter.redis_wake import WakingConsumer
from tests.support.waiting import wait_until

#: Far longer than any wait below: only a wake can end it within the test.
NEVER_MS = 600_000
QUEUE = "default"
CONTRACT = ActorContract(name="wake.probe", queue=QUEUE, params=("n",))


class Probe:
    def __init__(self, redis_url: str) -> None:
        # The socket timeout outlasts the block, as in production (redis-py's default, 5 s,
        # would end the block with an error and restart the consumer).
        self.broker = SwitchboardRedisBroker(
            background_poll_ms=50,
            idle_block_ms=NEVER_MS,
            client=redis.Redis.from_url(redis_url, socket_timeout=NEVER_MS / 1000 + 60),
        )
        self.seen: list[int] = []
        self.broker.declare_queue(QUEUE)

        @dramatiq.actor(broker=self.broker, actor_name=CONTRACT.name, queue_name=QUEUE)
        def probe(n: int) -> None:
            self.seen.append(n)

        # A worker thread waits this long for work; its timeout is also the poll of a full
        # consumer. Neither lets a blocked consumer fetch.
        self.worker = Worker(self.broker, worker_threads=1, worker_timeout=100)

    def consumers_blocked(self, client: redis.Redis) -> bool:
        db = client.connection_pool.connection_kwargs.get("db", 0)
        blocked = [c for c in client.client_list() if c["cmd"] == "blpop" and c["db"] == str(db)]
        return len(blocked) >= 1


@pytest.fixture
def probe(redis_url: str, redis_client: redis.Redis) -> Iterator[Probe]:
    probe = Probe(redis_url)
    probe.worker.start()
    # The worker's first fetch found nothing: its consumer now waits on the wake list.
    assert wait_until(lambda: probe.consumers_blocked(redis_client), 10, 0.02)
    yield probe
    probe.worker.stop()
    probe.broker.close()


def test_an_enqueue_wakes_the_blocked_consumer(probe: Probe) -> None:
    probe.broker.enqueue(CONTRACT.message(n=1))
    assert wait_until(lambda: probe.seen == [1], 30, 0.02)


def test_a_batch_wakes_the_blocked_consumer(probe: Probe) -> None:
    probe.broker.enqueue_many([(CONTRACT.message(n=1), None), (CONTRACT.message(n=2), None)])
    assert wait_until(lambda: sorted(probe.seen) == [1, 2], 30, 0.02)


def test_a_due_delayed_message_wakes_the_blocked_consumer(probe: Probe) -> None:
    # The delay queue's consumer (polling at 50 ms here) holds it until due, then enqueues it.
    probe.broker.enqueue(CONTRACT.message(n=3), delay=200)
    assert wait_until(lambda: probe.seen == [3], 30, 0.02)


def test_a_dead_letter_retry_wakes_the_blocked_consumer(
    probe: Probe, redis_client: redis.Redis
) -> None:
    message = CONTRACT.message(n=4).copy(options={"redis_message_id": "dead-1"})
    redis_client.hset(f"dramatiq:{QUEUE}.XQ.msgs", "dead-1", message.encode())
    redis_client.zadd(f"dramatiq:{QUEUE}.XQ", {"dead-1": time.time() * 1000})
    adapter = RedisAdapter(redis_client)
    entry = adapter.find("dead-1", [QUEUE])
    assert entry is not None
    assert adapter.retry(entry, CONTRACT)
    assert wait_until(lambda: probe.seen == [4], 30, 0.02)


def test_shutdown_does_not_wait_for_the_block(redis_url: str, redis_client: redis.Redis) -> None:
    probe = Probe(redis_url)
    probe.worker.start()
    try:
        assert wait_until(lambda: probe.consumers_blocked(redis_client), 10, 0.02)
        stopping = threading.Thread(target=probe.worker.stop)
        stopping.start()
        stopping.join(60)  # a tenth of the block
        assert not stopping.is_alive()
        assert not probe.consumers_blocked(redis_client)
    finally:
        probe.broker.close()


def test_wake_lists_stay_short_without_consumers(redis_url: str, redis_client: redis.Redis) -> None:
    probe = Probe(redis_url)  # no worker started
    try:
        for n in range(WAKE_TOKENS_MAX + 5):
            probe.broker.enqueue(CONTRACT.message(n=n))
        probe.broker.enqueue_many([(CONTRACT.message(n=n), None) for n in range(100)])
        assert redis_client.llen(f"dramatiq:{QUEUE}.wake") == WAKE_TOKENS_MAX
        # Background queues have no blocking consumers, so no wake list either.
        probe.broker.declare_queue("low")
        probe.broker.enqueue(CONTRACT.message(n=0).copy(queue_name="low"))
        assert not redis_client.exists("dramatiq:low.wake")
    finally:
        probe.broker.close()


def test_a_full_consumer_leaves_the_tokens_to_idle_ones(
    redis_url: str, redis_client: redis.Redis
) -> None:
    probe = Probe(redis_url)
    try:
        consumer: Any = probe.broker.consume(QUEUE, prefetch=1, timeout=10)
        assert isinstance(consumer, WakingConsumer)
        probe.broker.enqueue(CONTRACT.message(n=1))
        probe.broker.enqueue(CONTRACT.message(n=2))
        first = next(consumer)
        assert first is not None and first.kwargs == {"n": 1}
        # Message 2 keeps its token (the one of message 1 went with its fetch); the consumer's
        # one prefetch slot holds a message being processed: it must not take that token
        # (another process's idle consumer would not be woken for message 2).
        assert redis_client.llen(f"dramatiq:{QUEUE}.wake") == 1
        assert next(consumer) is None
        assert redis_client.llen(f"dramatiq:{QUEUE}.wake") == 1
        consumer.ack(first)  # type: ignore[no-untyped-call]
        second = next(consumer)
        assert second is not None and second.kwargs == {"n": 2}
        consumer.ack(second)  # type: ignore[no-untyped-call]
    finally:
        probe.broker.close()


def test_a_fetch_leaves_no_more_tokens_than_messages_listed(
    redis_url: str, redis_client: redis.Redis
) -> None:
    probe = Probe(redis_url)
    try:
        consumer: Any = probe.broker.consume(QUEUE, prefetch=10, timeout=10)
        for n in range(3):
            probe.broker.enqueue(CONTRACT.message(n=n))
        assert redis_client.llen(f"dramatiq:{QUEUE}.wake") == 3
        # Fetched without waiting: their tokens would each cost an idle consumer an empty fetch.
        first = next(consumer)
        assert first is not None
        assert redis_client.llen(f"dramatiq:{QUEUE}.wake") == 0
        # A fetch cut at its room leaves a token per message still listed.
        more: Any = probe.broker.consume(QUEUE, prefetch=1, timeout=10)
        for n in range(3, 6):
            probe.broker.enqueue(CONTRACT.message(n=n))
        assert next(more) is not None
        assert redis_client.llen(f"dramatiq:{QUEUE}.wake") == 2
    finally:
        probe.broker.close()


def test_a_fetch_after_redis_lost_the_script_still_fetches(
    redis_url: str, redis_client: redis.Redis
) -> None:
    probe = Probe(redis_url)
    try:
        probe.broker.enqueue(CONTRACT.message(n=1))  # loads the script
        # As after a Redis restart, the server does not know the script's hash.
        probe.broker.scripts["dispatch"].sha = "0" * 40
        consumer: Any = probe.broker.consume(QUEUE, prefetch=10, timeout=10)
        message = next(consumer)
        assert message is not None and message.kwargs == {"n": 1}
    finally:
        probe.broker.close()
