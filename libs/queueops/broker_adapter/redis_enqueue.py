"""Several messages into Dramatiq's Redis broker in one round trip.

It calls Dramatiq's own enqueue script with the arguments ``RedisBroker._dispatch`` gives it,
so it knows the broker's layout (the delay queue's name, the script's arguments): that is why
it lives in the adapter, the one package allowed to (tests/common/test_broker_layout.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from redis.exceptions import NoScriptError


def enqueue_many(
    broker: RedisBroker, batch: Sequence[tuple[dramatiq.Message[Any], int | None]]
) -> None:
    """Enqueue each (message, delay) as ``broker.enqueue`` does, in one pipeline.

    A Redis that lost the script (a restart, a failover) has each of those messages sent again
    on its own, which loads it. A connection error raises, as ``enqueue`` does."""
    prepared = []
    for message, delay in batch:
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
        if delay is not None:
            queue_name = dq_name(queue_name)
            eta = current_millis() + delay
            message = message.copy(queue_name=queue_name, options={"eta": eta})
        broker.emit_before("enqueue", message, delay)
        prepared.append((queue_name, message, delay))
    script, unpack = broker.scripts["dispatch"], broker._max_unpack_size()  # type: ignore[no-untyped-call]
    pipeline = broker.client.pipeline(transaction=False)
    for queue_name, message, _ in prepared:
        # The arguments of Dramatiq's own ``do_enqueue`` (RedisBroker._dispatch).
        pipeline.evalsha(
            script.sha, 1, broker.namespace, "enqueue", current_millis(), queue_name,
            broker.broker_id, broker.heartbeat_timeout, broker.dead_message_ttl,
            broker._should_do_maintenance("enqueue"), unpack,
            message.options["redis_message_id"], message.encode(),
        )  # fmt: skip
    results = pipeline.execute(raise_on_error=False)
    for (queue_name, message, delay), result in zip(prepared, results, strict=True):
        if isinstance(result, NoScriptError):
            broker.do_enqueue(queue_name, message.options["redis_message_id"], message.encode())
        elif isinstance(result, Exception):
            raise result
        broker.emit_after("enqueue", message, delay)
