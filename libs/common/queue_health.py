"""Fail fast when the broker is unreachable, before anything is written."""

from __future__ import annotations

import redis

from libs.common.redis_client import shared_redis


class QueueUnavailable(Exception):
    """The broker cannot take messages now; endpoints answer 503 ``queue_unavailable``."""

    code = "queue_unavailable"

    def __init__(self, message: str = "the job queue is unreachable; nothing was done") -> None:
        super().__init__(message)
        self.message = message


def check_broker(redis_url: str | None, timeout_s: float) -> None:
    """Raise QueueUnavailable unless Redis answers PING within ``timeout_s``."""
    if not redis_url:
        raise QueueUnavailable("no broker is configured (REDIS_URL is unset)")
    try:
        shared_redis(redis_url, timeout_s).ping()
    except (redis.RedisError, OSError) as exc:
        raise QueueUnavailable(
            f"the job queue is unreachable ({type(exc).__name__}); nothing was done"
        ) from exc
