"""The worker's queue statistics: counted per queue and minute, and never in a message's way."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import redis
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from libs.common.settings import Settings
from libs.queueops import throughput
from libs.queueops.broker import build_middleware
from libs.queueops.middleware.queue_stats import QueueStatsMiddleware
from tests.support.services import unreachable_redis_url


def test_workers_count_and_producers_do_not(settings: Settings) -> None:
    def stats(worker: bool) -> list[object]:
        middleware = build_middleware(settings, worker=worker, prometheus=False)
        return [m for m in middleware if isinstance(m, QueueStatsMiddleware)]

    assert len(stats(worker=True)) == 1
    assert stats(worker=False) == []


def test_an_unreachable_redis_does_not_fail_or_stall_the_message() -> None:
    broker = StubBroker(middleware=[Retries(max_retries=0), QueueStatsMiddleware(
        unreachable_redis_url(), timeout_s=0.5)])  # fmt: skip
    broker.declare_queue("default")
    done: list[int] = []

    @dramatiq.actor(broker=broker, actor_name="tests.record")
    def record(value: int) -> None:
        done.append(value)

    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        started = time.monotonic()
        for value in range(3):
            record.send(value)
        broker.join("default", fail_fast=True, timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    assert done == [0, 1, 2]
    assert time.monotonic() - started < 5  # refused at once, never a long hang per message


def test_windows_slide_over_minute_buckets(redis_client: redis.Redis) -> None:
    minute = 29_000_000  # any Unix minute

    def at(m: int, second: int = 10) -> float:
        return m * 60 + second

    pipe = redis_client.pipeline()
    for _ in range(4):
        throughput.record(pipe, "default", failed=False, now=at(minute - 1))
    throughput.record(pipe, "default", failed=True, now=at(minute))
    throughput.record(pipe, "default", failed=False, now=at(minute))
    for _ in range(10):
        throughput.record(pipe, "default", failed=True, now=at(minute - 15))
    throughput.record(pipe, "default", failed=True, now=at(minute - 16))
    pipe.execute()

    # Half of the current minute is gone: the window reaches half into the minute before it.
    report = throughput.read(redis_client, ["default", "low"], now=at(minute, 30))
    assert report["default"]["processed"] == {"1m": 2 + 2, "5m": 6, "15m": 6 + 5}
    assert report["default"]["failed"] == {"1m": 1, "5m": 1, "15m": 1 + 5}
    assert report["low"]["processed"] == {"1m": 0, "5m": 0, "15m": 0}
    assert 0 < redis_client.ttl(throughput.bucket_key("default", minute)) <= 20 * 60


def _counting_worker(redis_url: str, flush_every_s: float) -> tuple[Any, Worker, Any]:
    stats = QueueStatsMiddleware(redis_url, flush_every_s=flush_every_s)
    broker = StubBroker(middleware=[Retries(max_retries=0), stats])
    broker.declare_queue("default")

    @dramatiq.actor(broker=broker, actor_name="tests.count")
    def count(value: int) -> None:
        if value < 0:
            raise ValueError("negative")

    return broker, Worker(broker, worker_timeout=50, worker_threads=2), count


def _processed(client: redis.Redis) -> dict[str, int]:
    report = throughput.read(client, ["default"])["default"]
    return {"processed": report["processed"]["1m"], "failed": report["failed"]["1m"]}


def test_a_running_worker_writes_counts_in_batches_not_per_message(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # A flush interval longer than the test: nothing may reach Redis while messages run.
    broker, worker, count = _counting_worker(redis_url, flush_every_s=3600)
    worker.start()
    try:
        for value in (1, 2, 3, -1):
            count.send(value)
        broker.join("default", timeout=10_000, fail_fast=False)
        worker.join()
        assert redis_client.keys("switchboard:throughput:*") == []
    finally:
        worker.stop()  # shutdown writes what was gathered
    assert _processed(redis_client) == {"processed": 4, "failed": 1}


def test_a_running_worker_flushes_on_its_own(redis_url: str, redis_client: redis.Redis) -> None:
    broker, worker, count = _counting_worker(redis_url, flush_every_s=0.1)
    worker.start()
    try:
        count.send(1)
        broker.join("default", timeout=10_000)
        deadline = time.monotonic() + 5
        while not redis_client.keys("switchboard:throughput:*") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _processed(redis_client) == {"processed": 1, "failed": 0}
    finally:
        worker.stop()
