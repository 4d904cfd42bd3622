"""Writes this worker process's heartbeat (host, pid, queues, time) to Redis with a TTL."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from dramatiq.middleware import Middleware

from libs.common.redis_client import redis_from_url
from libs.queueops import heartbeats

logger = logging.getLogger(__name__)


class HeartbeatMiddleware(Middleware):
    def __init__(self, redis_url: str, interval_s: float, ttl_s: float) -> None:
        self.redis_url = redis_url
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        queues = sorted(getattr(worker, "consumer_whitelist", None) or broker.get_declared_queues())
        client = redis_from_url(self.redis_url, timeout_s=min(self.interval_s, 5.0))
        started_at = time.time()
        self._stop.clear()
        # Worker processes may run threads; only web processes must not.
        self._thread = threading.Thread(
            target=self._run, args=(client, queues, started_at), name="heartbeat", daemon=True
        )
        self._thread.start()

    def _run(self, client: redis.Redis, queues: list[str], started_at: float) -> None:
        while not self._stop.is_set():
            try:
                heartbeats.beat(client, queues, started_at, self.ttl_s)
            except (redis.RedisError, OSError) as exc:
                logger.warning("heartbeat not written: %s", type(exc).__name__)
            self._stop.wait(self.interval_s)
        try:
            heartbeats.clear(client)
        except (redis.RedisError, OSError):
            pass  # the key expires by itself

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
