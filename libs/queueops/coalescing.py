"""Coalescing: at most one message of a kind waiting in the queue.

A message whose work covers everything due when it runs (``dialer.dispatch`` fills every free
slot of its business; ``outcomes.price`` prices every unpriced call) needs no second copy while
one is waiting: the second would only find nothing to do. Such a message carries a *pending
mark* (``Outgoing.coalesce_key``), a Redis key with a time to live:

- the producer sets the mark (``SET NX``) AFTER its commit and enqueues only if it set it
  (``outbox.send``);
- the consumer clears the mark BEFORE it reads what is due (``clear``).

So a change committed while a message waits is seen by that message (it has not read yet), and
a change committed after the consumer cleared the mark sets it again and sends a new message:
nothing committed is ever missed. The time to live bounds what a lost message costs (the
reconciler repairs it meanwhile); a Redis that cannot answer means "send": a message too many
is harmless, a message too few is not.

Coalescing is on in the processes that install it at boot (``install``: the worker and the
calls service); elsewhere (unit tests, the CLI) every message is sent.
"""

from __future__ import annotations

import logging
import os

import redis

from libs.common.redis_client import redis_from_url

logger = logging.getLogger(__name__)

_url: str | None = None
#: (pid, client): a forked process opens its own connections.
_client: tuple[int, redis.Redis] | None = None


def install(url: str | None) -> None:
    """Coalesce from now on in this process, with the Redis at ``url`` (None: never)."""
    global _url, _client
    _url, _client = url, None


def installed() -> bool:
    return _url is not None


def _redis() -> redis.Redis | None:
    global _client
    if _url is None:
        return None
    if _client is None or _client[0] != os.getpid():
        # Short timeouts: a producer answering a webhook must not wait on a slow Redis.
        _client = (os.getpid(), redis_from_url(_url, timeout_s=0.5))
    return _client[1]


def claim_many(marks: list[tuple[str, float]]) -> list[bool]:
    """Set each pending mark (key, ttl_s) of ``marks``, in one round trip to Redis (a status
    callback that ends a call asks for two: the next dispatch, the price); for each, whether
    its message is to be sent (True when it set the mark, or when coalescing is off or Redis
    cannot say)."""
    client = _redis()
    if client is None or not marks:
        return [True] * len(marks)
    pipeline = client.pipeline(transaction=False)
    for key, ttl_s in marks:
        pipeline.set(key, b"1", nx=True, px=int(ttl_s * 1000))
    try:
        results = pipeline.execute(raise_on_error=False)
    except redis.RedisError as exc:
        logger.warning("pending marks not set (%s): sending anyway", type(exc).__name__)
        return [True] * len(marks)
    # A mark Redis could not set (an error in its slot) means "send".
    return [isinstance(result, Exception) or bool(result) for result in results]


def clear(key: str) -> None:
    """Clear the pending mark ``key``: by the consumer before it reads what is due, or by a
    producer whose message could not be sent."""
    client = _redis()
    if client is None:
        return
    try:
        client.delete(key)
    except redis.RedisError as exc:  # the mark expires on its own
        logger.warning("pending mark %s not cleared (%s)", key, type(exc).__name__)
