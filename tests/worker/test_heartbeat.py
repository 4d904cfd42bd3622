"""Live workers are listed from heartbeats with a TTL."""

import os
import time

import redis
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from libs.queueops import heartbeats


def test_a_running_worker_is_listed_and_removed_at_shutdown(
    stub_broker: StubBroker, redis_client: redis.Redis
) -> None:
    worker = Worker(stub_broker, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not heartbeats.live_workers(redis_client) and time.monotonic() < deadline:
            time.sleep(0.05)
        [beat] = heartbeats.live_workers(redis_client)
        assert beat.pid == os.getpid()
        assert "default" in beat.queues and "maintenance" in beat.queues
        assert beat.age_s() < 5
    finally:
        worker.stop()
    assert heartbeats.live_workers(redis_client) == []


def test_a_silent_worker_expires(redis_client: redis.Redis) -> None:
    heartbeats.beat(redis_client, ["default"], time.time(), ttl_s=0.2)
    assert len(heartbeats.live_workers(redis_client)) == 1
    time.sleep(0.3)
    assert heartbeats.live_workers(redis_client) == []
