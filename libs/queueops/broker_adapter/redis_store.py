"""Dead letters held in Redis: per queue, a sorted set of ids scored by the dead-letter time in
milliseconds, and a hash of those ids to the encoded message.

Dramatiq's RedisBroker keeps its dead letters exactly so (its ``<queue>.XQ`` keys); the
RabbitMQ adapter moves RabbitMQ's dead letters into the same layout under keys of its own, so
listing, paging, inspecting and deleting are this one implementation on both brokers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import redis

from libs.queueops.dead_letters import DeadLetter, Position, entry, error_key

#: Entries read per round trip.
BATCH = 200

# Starts by removing the id from the set: of two concurrent calls only the one whose ZREM
# removed it goes on, so a message is deleted (or retried) exactly once.
# KEYS: set, bodies, error record. ARGV: dead-letter id
DELETE_LUA = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("del", KEYS[3])
return 1
"""


class SortedSetStore:
    """Dead letters under ``set_key(queue)`` (ids by time) and ``bodies_key(queue)``."""

    def __init__(
        self,
        client: redis.Redis,
        set_key: Callable[[str], str],
        bodies_key: Callable[[str], str],
    ) -> None:
        self.client = client
        self.set_key = set_key
        self.bodies_key = bodies_key
        self._delete = client.register_script(DELETE_LUA)

    def counts(self, queues: Sequence[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zcard(self.set_key(queue))
        return dict(zip(queues, pipe.execute(), strict=True))

    def page(
        self, queues: Sequence[str], *, actor: str | None, limit: int, after: Position | None
    ) -> tuple[list[DeadLetter], Position | None]:
        """The actor is inside each body, so an actor filter reads bodies until the page is
        full (or the sets end); the sets hold at most the dead-message TTL (7 days)."""
        merged = heapq.merge(*(self._positions(queue, after) for queue in queues), reverse=True)
        batch_size = BATCH if actor else limit + 1
        found: list[DeadLetter] = []
        for batch in batched(merged, batch_size):
            for item in self.load(batch):
                if actor is None or item.actor == actor:
                    found.append(item)
                    if len(found) > limit:
                        return found[:limit], found[limit - 1].position
        return found, None

    def find(self, dead_letter_id: str, queues: Sequence[str]) -> DeadLetter | None:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zscore(self.set_key(queue), dead_letter_id)
        for queue, score in zip(queues, pipe.execute(), strict=True):
            if score is not None:
                loaded = self.load([Position(int(score), queue, dead_letter_id)])
                return loaded[0] if loaded else None
        return None

    def positions(self, queues: Sequence[str]) -> list[Position]:
        return [
            Position(int(score), queue, member.decode())
            for queue in queues
            for member, score in scored(
                self.client.zrange(self.set_key(queue), 0, -1, withscores=True)
            )
        ]

    def load(self, positions: Sequence[Position]) -> list[DeadLetter]:
        """Bodies and error records of ``positions``, in one round trip; vanished ones
        (retried or deleted since the set was read) dropped."""
        pipe = self.client.pipeline(transaction=False)
        for position in positions:
            pipe.hget(self.bodies_key(position.queue), position.id)
            pipe.get(error_key(position.id))
        replies = pipe.execute()
        entries = []
        for i, position in enumerate(positions):
            body, record = replies[2 * i], replies[2 * i + 1]
            if body is not None:
                entries.append(entry(position, body, record))
        return entries

    def delete(self, item: DeadLetter) -> bool:
        keys = [self.set_key(item.queue), self.bodies_key(item.queue), error_key(item.id)]
        return bool(self._delete(keys=keys, args=[item.id]))

    def _positions(self, queue: str, after: Position | None) -> Iterator[Position]:
        """One queue's entries, newest first, lazily, in chunks."""
        key = self.set_key(queue)
        top: float | str = "+inf" if after is None else after.dead_lettered_ms
        offset = 0
        while True:
            rows = scored(
                self.client.zrevrangebyscore(
                    key, top, "-inf", start=offset, num=BATCH, withscores=True
                )
            )
            offset += len(rows)
            for member, score in rows:
                position = Position(int(score), queue, member.decode())
                # Ties on the cursor's millisecond: only what sorts strictly after the cursor.
                if after is None or position < after:
                    yield position
            if len(rows) < BATCH:
                return


def scored(reply: Any) -> list[tuple[bytes, float]]:
    """A sorted-set reply read WITHSCORES (redis-py types it loosely)."""
    return cast(list[tuple[bytes, float]], reply)


def batched(items: Iterable[Position], size: int) -> Iterator[list[Position]]:
    batch: list[Position] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
