"""The Dramatiq broker, built with an explicit middleware list.

Dramatiq 2.x no longer adds Prometheus by default, so every middleware we rely on is named here.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from libs.common.contracts import QUEUES, URGENT_QUEUES
from libs.common.middleware import prometheus
from libs.common.middleware.heartbeat import HeartbeatMiddleware
from libs.common.middleware.queue_stats import QueueStatsMiddleware
from libs.common.middleware.request_context import RequestContextMiddleware
from libs.common.middleware.worker_context import WorkerContextMiddleware
from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings

#: A killed worker's unacked messages come back after this long without its heartbeat.
HEARTBEAT_TIMEOUT_MS = 60_000


class SwitchboardRedisBroker(RedisBroker):
    """A RedisBroker whose idle consumers of background queues poll less often.

    Dramatiq gives every consumer (each queue and its delay queue, in every worker process)
    the same idle poll; at 100 ms, ten idle consumers per process cost about a quarter of the
    throughput of a row-writing actor on 2 cores (docs/benchmarks.md, "Queue throughput").
    Only the urgent queues need it. A delay queue's consumer fetches a message as soon as it
    sees it and holds it until it is due, so its slower poll delays only messages due sooner
    than the poll; background work (imports, syncs, recordings, maintenance) starts within a
    second.
    """

    def __init__(self, *, background_poll_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.background_poll_ms = background_poll_ms

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        if queue_name not in URGENT_QUEUES:  # delay queues are "<queue>.DQ"
            timeout = max(timeout, self.background_poll_ms)
        return super().consume(queue_name, prefetch, timeout)


def worker_metrics_env(settings: Settings) -> dict[str, str]:
    """Where the worker's Prometheus files live; must be set before prometheus_client loads."""
    path = str(settings.metrics_dir / "worker")
    return {"PROMETHEUS_MULTIPROC_DIR": path, "dramatiq_prom_db": path}


def build_middleware(settings: Settings, *, worker: bool, prometheus: bool = True) -> list[Any]:
    middleware: list[Any] = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=3, min_backoff=5_000, max_backoff=300_000),
        CurrentMessage(),
        RequestContextMiddleware(),
    ]
    if worker:
        # Producers (api, calls, scheduler) never process messages, so they carry none of this.
        middleware.append(WorkerContextMiddleware(settings))
        if prometheus:
            middleware.append(_prometheus_middleware(settings))
        if settings.redis_url:
            middleware.append(
                HeartbeatMiddleware(
                    settings.redis_url,
                    settings.worker_heartbeat_interval_s,
                    settings.worker_heartbeat_ttl_s,
                )
            )
            # Throughput per queue and the final error of dead letters, for /api/admin.
            middleware.append(QueueStatsMiddleware(settings.redis_url))
    return middleware


def _prometheus_middleware(settings: Settings) -> Any:
    for name, value in worker_metrics_env(settings).items():
        os.environ.setdefault(name, value)
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    # Dramatiq's Prometheus module reads its database path from the environment at import,
    # which `build` does only now.
    return prometheus.build()


def build_broker(settings: Settings, *, worker: bool, stub: bool = False) -> dramatiq.Broker:
    """A RedisBroker for ``settings.redis_url``, or a StubBroker for unit tests of actors.

    The stub carries no Prometheus middleware: it needs the process boot that only the
    ``dramatiq`` command performs.
    """
    middleware = build_middleware(settings, worker=worker, prometheus=not stub)
    broker: dramatiq.Broker
    if stub:
        broker = StubBroker(middleware=middleware)
    else:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set; `switchboard run` provides an embedded one")
        # Dramatiq ignores socket options when given a URL, so it gets a client with bounded
        # timeouts: a producer must not hang on a Redis that went away mid-request.
        broker = SwitchboardRedisBroker(
            background_poll_ms=settings.worker_background_poll_ms,
            client=redis_from_url(settings.redis_url, timeout_s=10, retries=1),
            middleware=middleware,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def setup_broker(settings: Settings, *, worker: bool) -> dramatiq.Broker:
    """Build the process's broker and make it the global one, before any actor is declared."""
    broker = build_broker(settings, worker=worker)
    dramatiq.set_broker(broker)
    return broker
