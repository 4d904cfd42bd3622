"""What actors use, opened when a worker boots and closed at shutdown.

Settings, the database (engine created here, not at import: each forked worker process needs
its own connections), and lazily the Redis client, the Twilio client and the CPS limiter.
"""

from __future__ import annotations

import functools
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import Middleware

from libs.common.db import Database
from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings
from libs.telephony.rate_limit import CallRateLimiter

#: Threads of a worker process that place calls beside its worker threads (the dialer's placing
#: threads, services/worker/actors/dialer.py): each may hold a connection to store a call id.
PLACING_THREADS = 6


class WorkerContext:
    def __init__(
        self, settings: Settings, broker: dramatiq.Broker, *, threads: int | None = None
    ) -> None:
        self.settings = settings
        self.broker = broker
        # One pooled connection per worker thread: with fewer, every burst closed the surplus
        # connections on return and opened new ones (a PostgreSQL backend each) for the next
        # messages. The overflow stays for an actor that needs a second connection. The
        # placing threads store call ids side by side with the worker threads: theirs too.
        pool = {"pool_size": max(threads, 5) + PLACING_THREADS} if threads else {}
        self.database = Database(settings.database_url, **pool)

    @functools.cached_property
    def redis(self) -> redis.Redis:
        if not self.settings.redis_url:
            raise RuntimeError("REDIS_URL is not set")
        return redis_from_url(self.settings.redis_url, timeout_s=5, retries=1)

    @functools.cached_property
    def twilio(self) -> Any:
        from libs.telephony.twilio_provider import make_client

        return make_client(self.settings)

    @functools.cached_property
    def limiter(self) -> CallRateLimiter:
        return CallRateLimiter(self.redis, self.settings.twilio_cps)

    def close(self) -> None:
        self.database.dispose()


_context: WorkerContext | None = None


def worker_context() -> WorkerContext:
    if _context is None:
        raise RuntimeError("the worker context middleware has not booted in this process")
    return _context


class WorkerContextMiddleware(Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        global _context
        if _context is None:
            threads = getattr(worker, "worker_threads", None)
            _context = WorkerContext(self.settings, broker, threads=threads)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        global _context
        if _context is not None:
            _context.close()
            _context = None
