"""Bare Dramatiq, as a user would start with it: ``dramatiq bench.queue_bare``.

A RedisBroker (or, with ``BENCH_RABBITMQ_URL`` set, a RabbitmqBroker) with Dramatiq's default
middleware, two ``@dramatiq.actor`` functions, and a plain SQLAlchemy engine (library defaults)
opened lazily in each worker process.
"""

from __future__ import annotations

import os
import threading

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, create_engine, text

from bench.queue_workloads import INSERT_ROW, NOOP, QUEUE, WRITE_ROW
from libs.common.db import normalize_url

broker: dramatiq.Broker
if os.environ.get("BENCH_RABBITMQ_URL"):
    broker = RabbitmqBroker(url=os.environ["BENCH_RABBITMQ_URL"])
else:
    broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)

_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine() -> Engine:
    # Created on first use in each forked worker process, never before the fork.
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = create_engine(normalize_url(os.environ["DATABASE_URL"]))
        return _engine


@dramatiq.actor(actor_name=NOOP, queue_name=QUEUE)
def noop(n: int) -> None:
    """Nothing: what is left is Dramatiq's own cost per message."""


@dramatiq.actor(actor_name=WRITE_ROW, queue_name=QUEUE)
def write_row(n: int) -> None:
    with engine().begin() as connection:
        connection.execute(text(INSERT_ROW), {"n": n})
