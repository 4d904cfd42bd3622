"""Messages into Dramatiq's Redis broker, each batch in one round trip, with the wake tokens of
the queues whose idle consumers block (``redis_wake.py``).

It calls Dramatiq's own enqueue script with the arguments ``RedisBroker._dispatch`` gives it,
so it knows the broker's layout (the delay queue's name, the script's arguments): that is why
it lives in the adapter, the one package allowed to (tests/common/test_broker_layout.py).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from redis.exceptions import NoScriptError

from libs.queueops.broker_adapter.redis import WAKE_TOKENS_MAX, wake_key


def enqueue_many(
    broker: RedisBroker,
    batch: Sequence[tuple[dramatiq.Message[Any], int | None]],
    *,
    waking: Collection[str] = (),
) -> list[dramatiq.Message[Any]]:
    """Enqueue each (message, delay) as ``broker.enqueue`` does, in one pipeline, and return
    the messages as enqueued.

    A message made ready on a queue of ``waking`` pushes a token on the queue's wake list in
    the same pipeline, after the message, so a consumer that wakes on it finds the message. A
    delayed message pushes none: the worker holding it enqueues it here again when it is due.
    A Redis that lost the script (a restart, a failover) has each of those messages sent again
    on its own, then their tokens. A connection error raises, as ``enqueue`` does."""
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
    tokens = Counter(queue for queue, _, _ in prepared if queue in waking)
    _push_tokens(pipeline, tokens)
    results = pipeline.execute(raise_on_error=False)
    for result in results[len(prepared) :]:
        if isinstance(result, Exception):
            raise result
    resent: Counter[str] = Counter()
    for (queue_name, message, delay), result in zip(prepared, results, strict=False):
        if isinstance(result, NoScriptError):
            broker.do_enqueue(queue_name, message.options["redis_message_id"], message.encode())
            if queue_name in waking:
                resent[queue_name] += 1
        elif isinstance(result, Exception):
            raise result
        broker.emit_after("enqueue", message, delay)
    if resent:
        # The tokens above went out before these messages existed: a consumer they woke found
        # nothing and blocks again.
        wake(broker.client, resent)
    return [message for _, message, _ in prepared]


def wake(client: redis.Redis, tokens: Counter[str]) -> None:
    """Push ``tokens[queue]`` wake tokens on each queue's wake list (one round trip)."""
    pipeline = client.pipeline(transaction=False)
    _push_tokens(pipeline, tokens)
    pipeline.execute()


def _push_tokens(pipeline: Any, tokens: Counter[str]) -> None:
    for queue, count in tokens.items():
        key = wake_key(queue)
        # One token wakes one blocked consumer, which fetches up to its prefetch; more tokens
        # than the list keeps would wake no more consumers than exist.
        pipeline.rpush(key, *("1",) * min(count, WAKE_TOKENS_MAX))
        pipeline.ltrim(key, -WAKE_TOKENS_MAX, -1)
