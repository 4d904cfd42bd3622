"""Queue depth for Prometheus: Dramatiq exports none, so this asks the broker adapter at
scrape time. Registered by the api only, so each depth is reported once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from libs.common.contracts import QUEUES
from libs.queueops.broker_adapter import BrokerAdapter, QueueUnavailable

#: The states exported, as the adapter's QueueDepth names them.
STATES = ("ready", "in_progress", "delayed", "dead")


class QueueDepthCollector:
    def __init__(self, adapter: BrokerAdapter) -> None:
        self.adapter = adapter

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily(
            "switchboard_queue_messages",
            "Messages in the broker by queue and state (ready, in_progress, delayed, dead).",
            labels=["queue", "state"],
        )
        up = GaugeMetricFamily(
            "switchboard_queue_collector_up", "1 when the broker answered the depth scrape."
        )
        try:
            depths = self.adapter.depths(QUEUES)
        except QueueUnavailable:  # a scrape reports the broker down, it does not fail
            up.add_metric([], 0)
            yield up
            return
        for queue in QUEUES:
            counts = depths[queue].to_dict()
            for state in STATES:
                value = counts[state]
                if value is not None:  # unknown (RabbitMQ without management) is left out
                    depth.add_metric([queue, state], value)
        up.add_metric([], 1)
        yield depth
        yield up
