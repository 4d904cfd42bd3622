"""Per-queue throughput and the final error of dead-lettered messages, written to Redis.

Bookkeeping only: nothing here may fail or slow a message much. In a running worker a
processed message only adds to this process's counts in memory; a thread writes them once a
second in one pipelined round trip with a short timeout (a round trip per message was a third
of a no-op message's cost: see docs/benchmarks.md, "Queue throughput"). Outside a worker (no
boot) each message is written at once. Any error is logged (at most once a minute) and
dropped; a dead-lettered message costs one round trip more, when it is dead-lettered.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
from dramatiq.brokers.redis import DEFAULT_DEAD_MESSAGE_TTL
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

from libs.common.redis_client import redis_from_url
from libs.queueops import dead_letters, throughput

logger = logging.getLogger(__name__)

#: Seconds between two warnings about failed writes (Redis down means one per message).
WARN_EVERY_S = 60.0

#: How often a worker process writes the counts it gathered (the API's windows are minutes).
FLUSH_EVERY_S = 1.0


class QueueStatsMiddleware(Middleware):
    def __init__(
        self, redis_url: str, timeout_s: float = 1.0, flush_every_s: float = FLUSH_EVERY_S
    ) -> None:
        self.redis_url = redis_url
        self.timeout_s = timeout_s
        self.flush_every_s = flush_every_s
        self._client: redis.Redis | None = None
        self._client_pid: int | None = None
        self._lock = threading.Lock()
        self._last_warning = 0.0
        #: (queue, minute, failed) -> messages, not yet written.
        self._pending: Counter[tuple[str, int, bool]] = Counter()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        # In the worker process, after the fork: the thread belongs to this process.
        self._stop.clear()
        self._flusher = threading.Thread(target=self._flush_every, name="queue-stats", daemon=True)
        self._flusher.start()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # Every message has ended by now: stop the thread, then write what is left.
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=self.timeout_s + self.flush_every_s)
            self._flusher = None
        self.flush()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        key = (q_name(message.queue_name), throughput.minute_of(time.time()), exception is not None)
        with self._lock:
            self._pending[key] += 1
        if self._flusher is None:
            self.flush()  # no worker thread to write it later

    def flush(self) -> None:
        """Write the counts gathered since the last flush (one round trip), and forget them."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return
        buckets: dict[tuple[str, int], list[int]] = {}
        for (queue, minute, failed), count in pending.items():
            counts = buckets.setdefault((queue, minute), [0, 0])
            counts[0] += count
            counts[1] += count if failed else 0

        def queue_commands(pipe: Any) -> None:
            for (queue, minute), (processed, failed) in buckets.items():
                throughput.add(pipe, queue, minute, processed=processed, failed=failed)

        self._write(queue_commands)

    def _flush_every(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            self.flush()

    def after_nack(self, broker: Any, message: Any) -> None:
        """The message was just dead-lettered: keep its final error beside it.

        Runs before the worker clears the exception it stuffed into the message, whatever the
        reason (retries exhausted, a ``throws`` exception, age limit, unknown actor).
        """
        dead_letter_id = dead_letters.dead_letter_id(message)
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
