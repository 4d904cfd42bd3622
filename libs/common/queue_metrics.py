"""Queue depth for Prometheus: Dramatiq exports none, so this reads the broker's Redis keys
at scrape time. Registered by the api only, so each depth is reported once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from libs.common.contracts import QUEUES
from libs.common.redis_client import redis_from_url
from libs.common.status import DRAMATIQ_NAMESPACE


class QueueDepthCollector:
    def __init__(self, redis_url: str, timeout_s: float = 0.5) -> None:
        self.client = redis_from_url(redis_url, timeout_s=timeout_s)

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily(
            "switchboard_queue_messages",
            "Messages in the broker by queue and state (ready, delayed, dead-lettered).",
            labels=["queue", "state"],
        )
        up = GaugeMetricFamily(
            "switchboard_queue_collector_up", "1 when the broker answered the depth scrape."
        )
        try:
            pipe = self.client.pipeline(transaction=False)
            for queue in QUEUES:
                base = f"{DRAMATIQ_NAMESPACE}:{queue}"
                pipe.llen(base)
                pipe.llen(f"{base}.DQ")
                pipe.zcard(f"{base}.XQ")
            counts = pipe.execute()
        except Exception:  # a scrape reports the broker down, it does not fail
            up.add_metric([], 0)
            yield up
            return
        for i, queue in enumerate(QUEUES):
            for j, state in enumerate(("ready", "delayed", "dead")):
                depth.add_metric([queue, state], counts[i * 3 + j])
        up.add_metric([], 1)
        yield depth
        yield up
