"""One adapter per broker for everything that reads or changes queued messages outside
Dramatiq itself: depths, dead letters (list, inspect, retry, delete), purge, throughput and
the fail-fast reachability check. ``adapter_for(settings)`` picks the implementation."""

from __future__ import annotations

import functools

from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings
from libs.queueops.broker_adapter.base import BrokerAdapter, QueueDepth
from libs.queueops.broker_adapter.errors import QueueUnavailable, unavailable
from libs.queueops.broker_adapter.rabbitmq import RabbitmqAdapter
from libs.queueops.broker_adapter.redis import RedisAdapter

__all__ = ["BrokerAdapter", "QueueDepth", "QueueUnavailable", "adapter_for", "unavailable"]


def adapter_for(settings: Settings, timeout_s: float = 5.0) -> BrokerAdapter:
    """The adapter of ``settings``' broker, each wait bounded by ``timeout_s``.

    Raises QueueUnavailable when no broker is configured.
    """
    url = settings.queue_broker_url
    if not url:
        raise QueueUnavailable("no broker is configured (BROKER_URL and REDIS_URL are unset)")
    if settings.broker_kind == "rabbitmq":
        if not settings.redis_url:
            raise QueueUnavailable("REDIS_URL is unset: RabbitMQ's dead letters are kept there")
        return RabbitmqAdapter(
            url,
            redis_from_url(settings.redis_url, timeout_s=timeout_s),
            timeout_s=timeout_s,
            management_url=settings.rabbitmq_management_url,
        )
    coordination = (
        redis_from_url(settings.redis_url, timeout_s=timeout_s)
        if settings.redis_url and settings.redis_url != url
        else None
    )
    return RedisAdapter(redis_from_url(url, timeout_s=timeout_s), coordination)


@functools.cache
def shared_adapter(settings: Settings, timeout_s: float = 5.0) -> BrokerAdapter:
    """One adapter (and its connection pools) per settings and timeout, per process."""
    return adapter_for(settings, timeout_s)
