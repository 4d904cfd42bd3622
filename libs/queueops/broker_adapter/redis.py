"""Dramatiq's RedisBroker, read in its own key layout (Dramatiq 2.x,
``dramatiq/brokers/redis.py`` and ``redis/dispatch.lua``):

- ``dramatiq:<queue>``: a list of the ids of ready messages; ``dramatiq:<queue>.msgs``: a hash
  of every stored message of the queue (ready, and fetched by a worker but not yet acked);
- ``dramatiq:<queue>.DQ`` / ``.DQ.msgs``: the same for the queue's delayed messages (a worker
  fetches a delayed message at once and holds it until it is due: it leaves the list, not the
  hash);
- ``dramatiq:<queue>.XQ``: a sorted set of dead-lettered ids by time, ``.XQ.msgs`` their bodies;
- ``dramatiq:<queue>.wake`` (Switchboard's, not Dramatiq's): a short list of wake tokens, one
  pushed with every message made ready on an urgent queue, on which that queue's idle consumers
  block instead of polling (``redis_wake.py``).

The ids are the broker's per-enqueue ids (the message's ``redis_message_id`` option).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from libs.common.contracts import URGENT_QUEUES, ActorContract
from libs.queueops.broker_adapter.base import BrokerAdapter, QueueDepth
from libs.queueops.broker_adapter.errors import unavailable
from libs.queueops.broker_adapter.redis_store import SortedSetStore
from libs.queueops.dead_letters import DeadLetter, Position, error_key, fresh_message

#: Dramatiq's Redis key namespace.
NAMESPACE = "dramatiq"


def queue_key(queue: str) -> str:
    return f"{NAMESPACE}:{queue}"


def messages_key(queue: str) -> str:
    return f"{NAMESPACE}:{queue}.msgs"


def delay_queue(queue: str) -> str:
    return f"{queue}.DQ"


def wake_key(queue: str) -> str:
    return f"{NAMESPACE}:{queue}.wake"


def stop_key(broker_id: str) -> str:
    """One worker process's own wake list: its shutdown wakes its blocked consumers only."""
    return f"{NAMESPACE}:__wake__.{broker_id}"


#: A wake list keeps at most this many tokens (LTRIM after each push), so it cannot grow when
#: no consumer runs; the consumer that starts later pays one empty fetch per leftover token.
WAKE_TOKENS_MAX = 32


def dead_key(queue: str) -> str:
    return f"{NAMESPACE}:{queue}.XQ"


def dead_messages_key(queue: str) -> str:
    return f"{NAMESPACE}:{queue}.XQ.msgs"


# Removal from the dead-letter set and the enqueue are one script: of concurrent retries only
# the one whose ZREM removed the id goes on, and a crash cannot separate the two.
# An urgent target queue gets a wake token with the message (its idle consumers block on it).
# KEYS: XQ, XQ.msgs, error record, target queue, target queue's .msgs, its wake list or ""
# ARGV: dead-letter id, new broker id, new encoded message, WAKE_TOKENS_MAX
RETRY_LUA = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("del", KEYS[3])
redis.call("hset", KEYS[5], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[4], ARGV[2])
if KEYS[6] ~= "" then
    redis.call("rpush", KEYS[6], "1")
    redis.call("ltrim", KEYS[6], -tonumber(ARGV[4]), -1)
end
return 1
"""


class RedisAdapter(BrokerAdapter):
    kind = "redis"

    def __init__(self, client: redis.Redis, coordination: redis.Redis | None = None) -> None:
        super().__init__(coordination if coordination is not None else client)
        self.client = client
        self.store = SortedSetStore(client, dead_key, dead_messages_key)
        self._retry = client.register_script(RETRY_LUA)

    def ping(self) -> float:
        started = time.perf_counter()
        with self._answering():
            self.client.ping()
        return (time.perf_counter() - started) * 1000

    def depths(self, queues: Sequence[str]) -> dict[str, QueueDepth]:
        # One MULTI, so a message moving between the list and its hash is not counted twice.
        pipe = self.client.pipeline(transaction=True)
        for queue in queues:
            pipe.llen(queue_key(queue))
            pipe.hlen(messages_key(queue))
            pipe.hlen(messages_key(delay_queue(queue)))
            pipe.zcard(dead_key(queue))
        with self._answering():
            counts = pipe.execute()
        depths = {}
        for i, queue in enumerate(queues):
            ready, stored, delayed, dead = counts[4 * i : 4 * i + 4]
            # Fetched by a worker and not yet acknowledged: stored but no longer listed.
            depths[queue] = QueueDepth(ready, max(0, stored - ready), delayed, dead)
        return depths

    def dead_letters(
        self, queues: Sequence[str], *, actor: str | None, limit: int, after: Position | None
    ) -> tuple[list[DeadLetter], Position | None]:
        with self._answering():
            return self.store.page(queues, actor=actor, limit=limit, after=after)

    def find(self, dead_letter_id: str, queues: Sequence[str]) -> DeadLetter | None:
        with self._answering():
            return self.store.find(dead_letter_id, queues)

    def dead_letter_positions(self, queues: Sequence[str]) -> list[Position]:
        with self._answering():
            return self.store.positions(queues)

    def load(self, positions: Sequence[Position]) -> list[DeadLetter]:
        with self._answering():
            return self.store.load(positions)

    def retry(self, entry: DeadLetter, contract: ActorContract) -> bool:
        new_id = str(uuid.uuid4())
        message = fresh_message(entry, contract, redis_message_id=new_id)
        keys = [
            dead_key(entry.queue),
            dead_messages_key(entry.queue),
            error_key(entry.id),
            queue_key(contract.queue),
            messages_key(contract.queue),
            wake_key(contract.queue) if contract.queue in URGENT_QUEUES else "",
        ]
        args: list[str | bytes | int] = [entry.id, new_id, message.encode(), WAKE_TOKENS_MAX]
        with self._answering():
            return bool(self._retry(keys=keys, args=args))

    def delete(self, entry: DeadLetter) -> bool:
        with self._answering():
            return self.store.delete(entry)

    def purge(self, queue: str) -> None:
        keys = [queue_key(queue), messages_key(queue), dead_key(queue), dead_messages_key(queue)]
        keys += [queue_key(delay_queue(queue)), messages_key(delay_queue(queue)), wake_key(queue)]
        with self._answering():
            self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()

    @contextmanager
    def _answering(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, OSError) as exc:
            raise unavailable(exc) from exc
