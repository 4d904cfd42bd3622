"""Per-queue throughput and the final error of dead-lettered messages, written to Redis.

Bookkeeping only: nothing here may fail or slow a message much. Each processed message costs
one pipelined round trip with a short timeout, and any error is logged (at most once a minute)
and dropped; a dead-lettered message costs one more, when it is dead-lettered.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import redis
from dramatiq.brokers.redis import DEFAULT_DEAD_MESSAGE_TTL
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

from libs.common import dead_letters, throughput
from libs.common.redis_client import redis_from_url

logger = logging.getLogger(__name__)

#: Seconds between two warnings about failed writes (Redis down means one per message).
WARN_EVERY_S = 60.0


class QueueStatsMiddleware(Middleware):
    def __init__(self, redis_url: str, timeout_s: float = 1.0) -> None:
        self.redis_url = redis_url
        self.timeout_s = timeout_s
        self._client: redis.Redis | None = None
        self._client_pid: int | None = None
        self._lock = threading.Lock()
        self._last_warning = 0.0

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        queue = q_name(message.queue_name)
        failed = exception is not None
        self._write(lambda pipe: throughput.record(pipe, queue, failed=failed, now=time.time()))

    def after_nack(self, broker: Any, message: Any) -> None:
        """The message was just dead-lettered: keep its final error beside it.

        Runs before the worker clears the exception it stuffed into the message, whatever the
        reason (retries exhausted, a ``throws`` exception, age limit, unknown actor).
        """
        dead_letter_id = message.options.get("redis_message_id")
        if not dead_letter_id:
            return
        exception: BaseException | None = getattr(message, "_exception", None)
        text = (
            "".join(traceback.format_exception(exception, limit=30))
            if exception is not None and exception.__traceback__ is not None
            else None
        )
        ttl_ms = int(getattr(broker, "dead_message_ttl", DEFAULT_DEAD_MESSAGE_TTL))
        self._write(
            lambda pipe: dead_letters.record_error(pipe, dead_letter_id, exception, text, ttl_ms)
        )

    def _redis(self) -> redis.Redis:
        # Made on first use in the process that uses it: `dramatiq` forks worker processes after
        # the broker (and this middleware) is built, and a connection must not cross a fork.
        pid = os.getpid()
        with self._lock:
            if self._client is None or self._client_pid != pid:
                self._client = redis_from_url(self.redis_url, timeout_s=self.timeout_s)
                self._client_pid = pid
            return self._client

    def _write(self, queue_commands: Callable[[Any], None]) -> None:
        try:
            pipe = self._redis().pipeline(transaction=False)
            queue_commands(pipe)
            pipe.execute()
        except Exception as exc:  # bookkeeping must never fail the message it describes
            now = time.monotonic()
            if now - self._last_warning >= WARN_EVERY_S:
                self._last_warning = now
                logger.warning("queue stats not written: %s: %s", type(exc).__name__, exc)
