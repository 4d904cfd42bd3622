"""Fail fast when the broker is unreachable, before anything is written."""

from __future__ import annotations

import pika
import pika.exceptions
import redis

from libs.common.redis_client import shared_redis
from libs.common.settings import AMQP_SCHEMES
from libs.queueops.broker_adapter.errors import ENQUEUE_ERRORS, QueueUnavailable, unavailable
from libs.queueops.broker_adapter.rabbitmq import connection_parameters

__all__ = ["ENQUEUE_ERRORS", "QueueUnavailable", "check_broker", "unavailable"]


def check_broker(broker_url: str | None, timeout_s: float) -> None:
    """Raise QueueUnavailable unless the broker answers within ``timeout_s``.

    Redis: a PING on the process's pooled client. RabbitMQ: a new AMQP connection, opened and
    closed (a few milliseconds): a web process keeps no idle AMQP connection, since nothing in
    it would send the connection's heartbeats.
    """
    if not broker_url:
        raise QueueUnavailable("no broker is configured (BROKER_URL and REDIS_URL are unset)")
    try:
        if broker_url.startswith(AMQP_SCHEMES):
            pika.BlockingConnection(connection_parameters(broker_url, timeout_s)).close()
        else:
            shared_redis(broker_url, timeout_s).ping()
    except (redis.RedisError, pika.exceptions.AMQPError, OSError) as exc:
        raise unavailable(exc) from exc
