"""The Dramatiq broker, built with an explicit middleware list.

``BROKER_URL=amqp://…`` selects Dramatiq's RabbitmqBroker; otherwise the RedisBroker runs on
``BROKER_URL`` or ``REDIS_URL`` (either may be a ``redis+sentinel://`` URL). Dramatiq 2.x no
longer adds Prometheus by default, so every middleware we rely on is named here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from libs.common.contracts import QUEUES, URGENT_QUEUES
from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings
from libs.queueops.broker_adapter import redis_enqueue, redis_wake
from libs.queueops.broker_adapter.rabbitmq import MESSAGE_ID_OPTION
from libs.queueops.middleware import prometheus
from libs.queueops.middleware.heartbeat import HeartbeatMiddleware
from libs.queueops.middleware.queue_stats import QueueStatsMiddleware
from libs.queueops.middleware.request_context import RequestContextMiddleware
from libs.queueops.middleware.worker_context import WorkerContextMiddleware

#: A killed worker's unacked messages come back after this long without its heartbeat.
HEARTBEAT_TIMEOUT_MS = 60_000

#: Out of a million Redis broker commands, how many also run Dramatiq's maintenance (moving a
#: dead worker's unacked messages back to their queue once its heartbeat is HEARTBEAT_TIMEOUT_MS
#: old). Dramatiq's 1,000 assumed idle consumers polling every 100 ms; blocked consumers of the
#: urgent queues fetch 20 times less often, which left an idle worker process about 13 commands
#: a second instead of 32, so the chance grows by as much to find a dead worker as soon.
MAINTENANCE_CHANCE = 2_500

#: AMQP heartbeat (seconds) unless the URL sets one: a dead connection, or a worker host that
#: vanished, is noticed within two of them and its unacked messages go back to their queue.
AMQP_HEARTBEAT_S = 20
#: Connecting to RabbitMQ: one attempt bounded by these (Dramatiq retries an enqueue itself).
AMQP_CONNECT_TIMEOUT_S = 5.0


class SwitchboardRedisBroker(RedisBroker):
    """A RedisBroker whose idle consumers of urgent queues wait to be woken by the enqueue, and
    whose idle consumers of background queues poll slowly.

    Dramatiq's consumers poll: after an empty fetch they sleep up to the worker's timeout, so
    a message waits for the sleep and every idle consumer thread of every process polls Redis.
    The urgent queues' consumers block on the queue's wake list instead, where every enqueue
    pushes a token with its message, so a message reaches an idle worker in one Redis round
    trip, and an idle one costs a fetch per ``idle_block_ms`` (docs/benchmarks.md, "Waking
    consumers"). The others poll at ``background_poll_ms``: background work (imports, syncs,
    recordings, maintenance) starts within it, and a delay queue's consumer fetches a delayed
    message as soon as it sees it and holds it until due, so its slower poll delays only
    messages due sooner than the poll.
    """

    def __init__(self, *, background_poll_ms: int, idle_block_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.background_poll_ms = background_poll_ms
        self.idle_block_ms = idle_block_ms
        self.waker = redis_wake.Waker(self.client, self.broker_id)
        self.add_middleware(_WakeOnShutdown())

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        if queue_name in URGENT_QUEUES:  # a delay queue's name is not a queue's
            return redis_wake.WakingConsumer(
                self, queue_name, prefetch, timeout, block_ms=self.idle_block_ms, waker=self.waker
            )
        return super().consume(queue_name, prefetch, max(timeout, self.background_poll_ms))

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        """Dramatiq's enqueue, with the wake token of an urgent queue in the same round trip
        (also when a worker moves a due delayed message to its queue)."""
        [enqueued] = redis_enqueue.enqueue_many(self, [(message, delay)], waking=URGENT_QUEUES)
        return enqueued

    def enqueue_many(self, batch: Sequence[tuple[dramatiq.Message[Any], int | None]]) -> None:
        """Enqueue each (message, delay) as ``enqueue`` does, in one round trip to Redis.

        A status callback that ends a call sends two messages (the outcome, the next dispatch):
        one pipeline of the script calls costs the calls service less CPU than two commands.
        A Redis that lost the script (a restart, a failover) has each of those messages sent
        again on its own, which loads it. A connection error raises, as ``enqueue`` does."""
        redis_enqueue.enqueue_many(self, batch, waking=URGENT_QUEUES)


class _WakeOnShutdown(Middleware):
    """A stopping worker's blocked consumers are woken (and poll until they stop), so its
    shutdown waits for no block; a worker started again on the broker blocks again."""

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        broker.waker.start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        broker.waker.stop()


class SwitchboardRabbitmqBroker(RabbitmqBroker):
    """A RabbitmqBroker that gives every enqueue its own id, as the RedisBroker does, and
    whose idle consumers wake less often.

    The failed-jobs console names a dead letter by the id, and the worker files the final error
    of a dead-lettered message under it (``QueueStatsMiddleware``). RabbitMQ pushes messages to
    consumers, so a consumer's idle timeout delays no message on its queue: it only sets how
    often an idle consumer thread wakes (and so how soon a due delayed message it holds is
    moved, as on Redis's delay queues). Every consumer gets the background poll.
    """

    def __init__(self, *, background_poll_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.background_poll_ms = background_poll_ms

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        return super().consume(queue_name, prefetch, max(timeout, self.background_poll_ms))

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        message = message.copy(options={MESSAGE_ID_OPTION: str(uuid.uuid4())})
        return super().enqueue(message, delay=delay)


def amqp_parameters(url: str) -> pika.URLParameters:
    """``url``'s connection parameters, with heartbeats and bounded connects unless it sets
    them itself."""
    parameters = pika.URLParameters(url)
    query = url.partition("?")[2]
    if "heartbeat" not in query:
        parameters.heartbeat = AMQP_HEARTBEAT_S
    if "socket_timeout" not in query:
        parameters.socket_timeout = AMQP_CONNECT_TIMEOUT_S
    if "stack_timeout" not in query:
        parameters.stack_timeout = 2 * AMQP_CONNECT_TIMEOUT_S
    if "blocked_connection_timeout" not in query:
        # A broker under a memory or disk alarm blocks publishers: fail instead of hanging.
        parameters.blocked_connection_timeout = 30
    return parameters


def worker_metrics_dir(settings: Settings, metrics_port: int | None = None) -> Path:
    """The Prometheus files of one ``switchboard worker``: its own directory per metrics port,
    so two workers on one host (each with its port) never sum, or wipe at start, each other's
    files (a restarted worker emptied a running one's directory under it)."""
    name = "worker" if metrics_port is None else f"worker-{metrics_port}"
    return settings.metrics_dir / name


def worker_metrics_env(settings: Settings, metrics_port: int | None = None) -> dict[str, str]:
    """Where the worker's Prometheus files live; must be set before prometheus_client loads."""
    path = str(worker_metrics_dir(settings, metrics_port))
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
            # Heartbeats and queue statistics live in the coordination Redis on every broker.
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


def build_broker(
    settings: Settings, *, worker: bool, stub: bool = False, prometheus: bool | None = None
) -> dramatiq.Broker:
    """The broker of ``settings.queue_broker_url``, or a StubBroker for unit tests of actors.

    Prometheus needs the process boot that only the ``dramatiq`` command performs: the stub
    carries none, and tests running a Worker in their own process ask for none.
    """
    with_prometheus = not stub if prometheus is None else prometheus
    middleware = build_middleware(settings, worker=worker, prometheus=with_prometheus)
    broker: dramatiq.Broker
    url = settings.queue_broker_url
    if stub:
        broker = StubBroker(middleware=middleware)
    elif not url:
        raise RuntimeError("REDIS_URL is not set; `switchboard run` provides an embedded one")
    elif settings.broker_kind == "rabbitmq":
        # Publisher confirms: an enqueue returns once RabbitMQ has the message (on disk, for
        # these durable queues), so "enqueued after commit" means kept. Each worker process's
        # prefetch is sized to its threads by Dramatiq: 2 x threads, one message waiting per
        # thread while acknowledgements travel (1 x threads cost a quarter more CPU per no-op
        # message: docs/benchmarks.md).
        broker = SwitchboardRabbitmqBroker(
            background_poll_ms=settings.worker_background_poll_ms,
            confirm_delivery=True,
            url=url,
            middleware=middleware,
        )
        broker.parameters = amqp_parameters(url)
    else:
        # Dramatiq ignores socket options when given a URL, so it gets a client with bounded
        # timeouts: a producer must not hang on a Redis that went away mid-request. Two
        # retries ride out a Sentinel failover's reconnect (libs/common/redis_client.py).
        retries = 3 if url.startswith("redis+sentinel:") else 1
        broker = SwitchboardRedisBroker(
            background_poll_ms=settings.worker_background_poll_ms,
            idle_block_ms=settings.worker_idle_block_ms,
            client=redis_from_url(url, timeout_s=10, retries=retries),
            middleware=middleware,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
        )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def setup_broker(settings: Settings, *, worker: bool) -> dramatiq.Broker:
    """Build the process's broker and make it the global one, before any actor is declared."""
    broker = build_broker(settings, worker=worker)
    dramatiq.set_broker(broker)
    return broker
