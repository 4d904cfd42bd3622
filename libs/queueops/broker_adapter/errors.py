"""The one error the broker's callers handle: the broker cannot answer now."""

from __future__ import annotations

import dramatiq.errors
import redis

#: What an enqueue raises when the broker does not take the message: redis-py's errors (the
#: Redis broker) and Dramatiq's BrokerConnectionError (RabbitMQ, after its own retries).
ENQUEUE_ERRORS: tuple[type[BaseException], ...] = (
    redis.RedisError,
    dramatiq.errors.BrokerConnectionError,
    OSError,
)


class QueueUnavailable(Exception):
    """The broker cannot take messages now; endpoints answer 503 ``queue_unavailable``."""

    code = "queue_unavailable"

    def __init__(self, message: str = "the job queue is unreachable; nothing was done") -> None:
        super().__init__(message)
        self.message = message


def unavailable(exc: BaseException) -> QueueUnavailable:
    """The QueueUnavailable that reports ``exc`` (its type only: messages may hold URLs)."""
    return QueueUnavailable(
        f"the job queue is unreachable ({type(exc).__name__}); nothing was done"
    )
