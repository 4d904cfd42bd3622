"""Redis clients with bounded timeouts: a dead Redis must answer 'no' quickly, never hang."""

from __future__ import annotations

import functools

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_from_url(url: str, *, timeout_s: float = 5.0, retries: int = 0) -> redis.Redis:
    # redis-py retries failed commands with backoff by default; for health checks and producers
    # that must fail fast we turn that off, so one bounded attempt decides.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
        health_check_interval=30,
    )


@functools.cache
def shared_redis(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """One client (and connection pool) per URL per process."""
    return redis_from_url(url, timeout_s=timeout_s)
