"""Idle consumers of Dramatiq's Redis broker that block on a wake list instead of polling.

Dramatiq's ``_RedisConsumer`` sleeps after an empty fetch (a backoff up to the worker's
timeout), so a message waits for the sleep to end and every idle consumer thread of every
worker process wakes to poll Redis. A ``WakingConsumer`` of a queue blocks instead (``BLPOP``)
on the queue's wake list, where every enqueue to the queue pushes a token after its message
(``redis_enqueue.py``, the dead-letter retry script in ``redis.py``): a token pushed before the
consumer blocks stays on the list, so no wake is lost between its fetch and its block, and a
spurious one costs one empty fetch. Each fetch cuts the wake list to as many tokens as messages
are still listed, so the tokens of messages a busy consumer fetched without waking do not cost
the idle ones an empty fetch each. The block ends after ``block_ms`` in any case: the next fetch
then finds what no token announced (a dead worker's messages moved back by Dramatiq's
maintenance), and it refreshes this broker's heartbeat, which every fetch writes.

A consumer that cannot fetch (its prefetch is full of messages being processed) polls as
Dramatiq's does, up to 100 ms: it must not take a token another process could use.
When its worker shuts down, the broker pushes a token per consumer on its own stop list (each
consumer blocks on both lists) and its consumers poll again, so the shutdown waits for no block.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from redis.exceptions import NoScriptError

from libs.queueops.broker_adapter import redis_enqueue
from libs.queueops.broker_adapter.redis import queue_key, stop_key, wake_key

#: The longest wait of a consumer whose prefetch is full for the acks that free it.
FULL_POLL_MS = 100

#: A stop list outlives a worker killed during its shutdown by no more than this (seconds).
STOP_LIST_TTL_S = 60


class WakingConsumer(_RedisConsumer):
    """A consumer of ``queue_name`` that waits for work on the queue's wake list.

    ``timeout`` (Dramatiq's worker timeout) bounds the poll of a full consumer, with
    ``FULL_POLL_MS``; ``block_ms`` is the longest block of an idle one. ``waker`` tells
    whether the worker is stopping."""

    def __init__(
        self,
        broker: RedisBroker,
        queue_name: str,
        prefetch: int,
        timeout: int,
        *,
        block_ms: int,
        waker: Waker,
    ) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self.block_s = block_ms / 1000
        self.waker = waker
        self.keys = [wake_key(queue_name), waker.key]
        #: The last fetch took messages and left none listed.
        self.drained = False
        waker.consumers.add(self)

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # as Dramatiq's consumer (its issue #266)
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                room = self.prefetch - self.outstanding_message_count
                if room > 0:
                    if self.drained and not self.waker.stopping:
                        # The last fetch left nothing listed: a message since has its token,
                        # so the fetch that would find the list empty is skipped.
                        self.drained = False
                        self._block()
                        return None
                    self.message_cache = self._fetch(room)
                    if self.message_cache:
                        continue
                    if not self.waker.stopping:
                        self._block()
                        return None
                # Full (or stopping): wait for acks as Dramatiq's consumer does, but never
                # longer than FULL_POLL_MS, whatever the worker's timeout: its threads would
                # idle with messages listed.
                ceiling = min(self.timeout, FULL_POLL_MS)
                self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=ceiling)
                time.sleep(backoff_ms / 1000)
                return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None  # type: ignore[no-untyped-call]

    def _fetch(self, room: int) -> list[bytes]:
        """Dramatiq's fetch of up to ``room`` messages, then the queue's wake list cut to as
        many tokens as messages are still listed, in one round trip.

        A token more than the listed messages announces one that a consumer took without
        waking (a busy one fetches as long as it finds messages): left, it would cost an idle
        consumer an empty fetch. A listed message keeps a token: no wake is lost."""
        broker = self.broker
        script, unpack = broker.scripts["dispatch"], broker._max_unpack_size()
        pipeline = broker.client.pipeline(transaction=False)
        # The arguments of Dramatiq's own ``do_fetch`` (RedisBroker._dispatch).
        pipeline.evalsha(
            script.sha, 1, broker.namespace, "fetch", current_millis(), self.queue_name,
            broker.broker_id, broker.heartbeat_timeout, broker.dead_message_ttl,
            broker._should_do_maintenance("fetch"), unpack, room,
        )  # fmt: skip
        pipeline.evalsha(self.waker.trim.sha, 2, queue_key(self.queue_name), self.keys[0])
        fetched, listed = pipeline.execute(raise_on_error=False)
        if isinstance(fetched, NoScriptError):  # a restarted Redis: Dramatiq's call loads it
            fetched = broker.do_fetch(self.queue_name, room)
        elif isinstance(fetched, Exception):
            raise fetched
        if isinstance(listed, NoScriptError):
            listed = self.waker.trim(keys=[queue_key(self.queue_name), self.keys[0]])
        elif isinstance(listed, Exception):
            raise listed
        messages: list[bytes] = fetched
        self.drained = bool(messages) and listed == 0
        return messages

    def _block(self) -> None:
        try:
            self.broker.client.blpop(self.keys, self.block_s)
        except redis.ResponseError as e:
            # A master demoted by a Sentinel failover unblocks its blocked clients: a wake like
            # any other; the next fetch meets the demotion (READONLY) and the client finds the
            # new master (libs/common/redis_client.py).
            if not str(e).startswith("UNBLOCKED"):
                raise

    def requeue(self, messages: Any) -> None:
        """Put a stopping worker's unprocessed messages back, and wake a consumer for each."""
        messages = list(messages)
        super().requeue(messages)  # type: ignore[no-untyped-call]
        if messages:
            redis_enqueue.wake(self.broker.client, Counter({self.queue_name: len(messages)}))


#: KEYS: a queue's list, its wake list. Cuts the wake list to as many tokens as listed messages.
TRIM_LUA = """
local listed = redis.call("llen", KEYS[1])
if redis.call("llen", KEYS[2]) > listed then
    if listed == 0 then
        redis.call("del", KEYS[2])
    else
        redis.call("ltrim", KEYS[2], 0, listed - 1)
    end
end
return listed
"""


class Waker:
    """The waking consumers of one broker (one worker process) and its stop list."""

    def __init__(self, client: redis.Redis, broker_id: str) -> None:
        self.client = client
        self.trim = client.register_script(TRIM_LUA)
        self.key = stop_key(broker_id)
        self.stopping = False
        self.consumers: weakref.WeakSet[WakingConsumer] = weakref.WeakSet()

    def start(self) -> None:
        self.stopping = False
        self.client.delete(self.key)

    def stop(self) -> None:
        """Wake every consumer blocked now; none blocks again (they poll until they stop).

        A token per consumer, blocked or about to block: each takes one at most, since it
        reads ``stopping`` after its block."""
        self.stopping = True
        count = len(self.consumers) or 1
        pipeline = self.client.pipeline(transaction=False)
        pipeline.rpush(self.key, *("1",) * count)
        pipeline.expire(self.key, STOP_LIST_TTL_S)
        pipeline.execute()
