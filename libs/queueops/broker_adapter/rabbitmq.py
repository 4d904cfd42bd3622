"""Dramatiq's RabbitmqBroker, read over AMQP (and RabbitMQ's management API for what AMQP
does not tell).

Dramatiq declares, per queue, three durable queues: ``<queue>``, its delay queue
``<queue>.DQ`` and its dead-letter queue ``<queue>.XQ`` (messages expire from it after 7 days);
the first two dead-letter into the third (``x-dead-letter-routing-key``), which is where a
worker's nack sends a message it gives up on.

**Depths.** A queue declare answers the exact number of *ready* messages. How many messages
consumers hold (prefetched or running; delayed messages a worker keeps until they are due)
only the management API knows, from statistics it refreshes every few seconds; without it
``in_progress`` is None and ``delayed`` counts only the delayed messages no worker holds.

**Dead letters.** AMQP cannot list a queue without taking its messages: reading ``.XQ`` with
``basic_get`` and putting the messages back (nack with requeue) would mark them redelivered,
reorder them, and hide them from every other reader while one holds them. So the adapter
*moves* dead letters out of the ``.XQ`` queues, before each read, into the coordination Redis,
in the layout Dramatiq's RedisBroker uses for its own (``redis_store.SortedSetStore``): each
message is written there first and acknowledged after, so a crash in between leaves it in
``.XQ`` to be moved again, and the write is idempotent by the message's per-enqueue id. From
there it is listed, paged, inspected and deleted exactly as on Redis. A retry first claims the
entry in Redis (one script: of concurrent retries one wins, the others get False), publishes
the message with a publisher confirm, then forgets it; a claim whose publish never finished
(the process died) returns to the list after ``CLAIM_LEASE_S``, so a retry is never lost, at
worst repeated once, which idempotent actors absorb.
"""

from __future__ import annotations

import calendar
import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote, urlsplit, urlunsplit

import dramatiq
import pika
import pika.exceptions
import redis
import requests
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
from dramatiq.errors import DecodeError
from pika.adapters.blocking_connection import BlockingChannel

from libs.common.contracts import ActorContract
from libs.queueops.broker_adapter.base import BrokerAdapter, QueueDepth, now_ms
from libs.queueops.broker_adapter.errors import unavailable
from libs.queueops.broker_adapter.redis_store import SortedSetStore
from libs.queueops.dead_letters import DeadLetter, Position, error_key, fresh_message

#: How long a retry may take between claiming a dead letter and publishing it.
CLAIM_LEASE_S = 60
#: Most messages moved out of one ``.XQ`` queue per read, so a read stays bounded.
MAX_MOVED_PER_READ = 5_000
#: The option holding a message's per-enqueue id (``SwitchboardRabbitmqBroker`` sets it).
MESSAGE_ID_OPTION = "broker_message_id"
#: The management API's port when its URL is derived from the broker's.
MANAGEMENT_PORT = 15672

ERRORS = (pika.exceptions.AMQPError, redis.RedisError, OSError, requests.RequestException)


def delay_queue(queue: str) -> str:
    return f"{queue}.DQ"


def dead_queue(queue: str) -> str:
    return f"{queue}.XQ"


def queue_arguments(queue: str) -> dict[str, Any]:
    """The arguments Dramatiq declares a queue and its delay queue with."""
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_queue(queue)}


# KEYS: set, bodies, claims. ARGV: id, score, body, claim member
MOVE_LUA = """
if redis.call("hexists", KEYS[2], ARGV[1]) == 1 or redis.call("zscore", KEYS[3], ARGV[4]) then
    return 0
end
redis.call("hset", KEYS[2], ARGV[1], ARGV[3])
redis.call("zadd", KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# KEYS: set, claims. ARGV: id, claim member, now (ms)
CLAIM_LUA = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("zadd", KEYS[2], ARGV[3], ARGV[2])
return 1
"""

# KEYS: claims, bodies, error record. ARGV: claim member, id
FORGET_LUA = """
redis.call("zrem", KEYS[1], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[2])
redis.call("del", KEYS[3])
return 1
"""

# KEYS: set, claims. ARGV: id, claim member, score
RELEASE_LUA = """
if redis.call("zrem", KEYS[2], ARGV[2]) == 1 then
    redis.call("zadd", KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""


class RabbitmqAdapter(BrokerAdapter):
    kind = "rabbitmq"

    def __init__(
        self,
        url: str,
        coordination: redis.Redis,
        *,
        timeout_s: float = 5.0,
        management_url: str | None = None,
    ) -> None:
        super().__init__(coordination)
        self.parameters = connection_parameters(url, timeout_s)
        self.timeout_s = timeout_s
        self.vhost = self.parameters.virtual_host
        self.management_url = management_url or derived_management_url(url)
        #: The store's keys; the virtual host in them keeps two deployments (or two test
        #: sessions) sharing one Redis apart.
        self.prefix = f"switchboard:rabbitmq:{self.vhost}:dead"
        self.claims_key = f"{self.prefix}-claims"
        self.store = SortedSetStore(coordination, self._set_key, self._bodies_key)
        self._move = coordination.register_script(MOVE_LUA)
        self._claim = coordination.register_script(CLAIM_LUA)
        self._forget = coordination.register_script(FORGET_LUA)
        self._release = coordination.register_script(RELEASE_LUA)

    def _set_key(self, queue: str) -> str:
        return f"{self.prefix}:{queue}"

    def _bodies_key(self, queue: str) -> str:
        return f"{self.prefix}:{queue}:bodies"

    # --- reading --------------------------------------------------------------------------

    def ping(self) -> float:
        started = time.perf_counter()
        with self._channel():
            pass
        return (time.perf_counter() - started) * 1000

    def depths(self, queues: Sequence[str]) -> dict[str, QueueDepth]:
        with self._channel() as channel:
            ready = {}
            for queue in queues:
                counts = declare(channel, queue)
                ready[queue] = counts
            stored_dead = self.store.counts(queues)
        held = self._held_by_consumers()
        depths = {}
        for queue in queues:
            queued, delayed, dead = ready[queue]
            if held is None:
                in_progress = None
            else:
                in_progress = held.get(queue, 0)
                delayed += held.get(delay_queue(queue), 0)
            # Not yet moved out of .XQ (ready there) plus moved: every dead letter once.
            depths[queue] = QueueDepth(queued, in_progress, delayed, dead + stored_dead[queue])
        return depths

    def dead_letters(
        self, queues: Sequence[str], *, actor: str | None, limit: int, after: Position | None
    ) -> tuple[list[DeadLetter], Position | None]:
        with self._answering():
            self.move_dead_letters(queues)
            return self.store.page(queues, actor=actor, limit=limit, after=after)

    def find(self, dead_letter_id: str, queues: Sequence[str]) -> DeadLetter | None:
        with self._answering():
            self.move_dead_letters(queues)
            return self.store.find(dead_letter_id, queues)

    def dead_letter_positions(self, queues: Sequence[str]) -> list[Position]:
        with self._answering():
            self.move_dead_letters(queues)
            return self.store.positions(queues)

    def load(self, positions: Sequence[Position]) -> list[DeadLetter]:
        with self._answering():
            return self.store.load(positions)

    # --- changing -------------------------------------------------------------------------

    def retry(self, entry: DeadLetter, contract: ActorContract) -> bool:
        member = f"{entry.queue} {entry.id}"
        with self._answering():
            claimed = self._claim(
                keys=[self._set_key(entry.queue), self.claims_key],
                args=[entry.id, member, now_ms()],
            )
        if not claimed:
            return False
        message = fresh_message(entry, contract, **{MESSAGE_ID_OPTION: str(uuid.uuid4())})
        try:
            with self._channel() as channel:
                channel.confirm_delivery()
                channel.basic_publish(
                    exchange="",
                    routing_key=contract.queue,
                    body=message.encode(),
                    properties=pika.BasicProperties(delivery_mode=2),
                    mandatory=True,
                )
        except BaseException:
            # Not published: the entry goes back where it was, for the next retry.
            keys = [self._set_key(entry.queue), self.claims_key]
            self._release(keys=keys, args=[entry.id, member, entry.position.dead_lettered_ms])
            raise
        with self._answering():
            keys = [self.claims_key, self._bodies_key(entry.queue), error_key(entry.id)]
            self._forget(keys=keys, args=[member, entry.id])
        return True

    def delete(self, entry: DeadLetter) -> bool:
        with self._answering():
            return self.store.delete(entry)

    def purge(self, queue: str) -> None:
        with self._channel() as channel:
            declare(channel, queue)
            for name in (queue, delay_queue(queue), dead_queue(queue)):
                channel.queue_purge(name)
            self.coordination.delete(self._set_key(queue), self._bodies_key(queue))

    # --- moving dead letters out of .XQ ---------------------------------------------------

    def move_dead_letters(self, queues: Sequence[str]) -> int:
        """Move what ``.XQ`` holds into the store (see the module's docstring); also returns
        expired claims and drops entries past the dead-message TTL. Returns how many moved."""
        self._return_expired_claims()
        moved = 0
        with self._channel() as channel:
            for queue in queues:
                self.coordination.zremrangebyscore(
                    self._set_key(queue), "-inf", now_ms() - DEAD_MESSAGE_TTL
                )
                moved += self._move_queue(channel, queue)
        return moved

    def _move_queue(self, channel: BlockingChannel, queue: str) -> int:
        declare(channel, queue)
        moved = 0
        while moved < MAX_MOVED_PER_READ:
            method, properties, body = channel.basic_get(dead_queue(queue), auto_ack=False)
            if method is None:
                return moved
            entry_id, score = identify(body, properties)
            self._move(
                keys=[self._set_key(queue), self._bodies_key(queue), self.claims_key],
                args=[entry_id, score, body, f"{queue} {entry_id}"],
            )
            # Acknowledged only once it is stored: a crash before this leaves it in .XQ.
            channel.basic_ack(method.delivery_tag)
            moved += 1
        return moved

    def _return_expired_claims(self) -> None:
        expired = self.coordination.zrangebyscore(
            self.claims_key, "-inf", now_ms() - CLAIM_LEASE_S * 1000
        )
        for member in cast(list[bytes], expired):
            queue, entry_id = member.decode().split(" ", 1)
            self._release(
                keys=[self._set_key(queue), self.claims_key], args=[entry_id, member, now_ms()]
            )

    # --- connections ----------------------------------------------------------------------

    @contextmanager
    def _channel(self) -> Iterator[BlockingChannel]:
        """A channel on a fresh connection, closed afterwards: a few milliseconds, and no
        connection left idle in a web process, where nothing would send its heartbeats."""
        with self._answering():
            connection = pika.BlockingConnection(self.parameters)
            try:
                yield connection.channel()
            finally:
                if connection.is_open:
                    connection.close()

    @contextmanager
    def _answering(self) -> Iterator[None]:
        try:
            yield
        except ERRORS as exc:
            raise unavailable(exc) from exc

    def _held_by_consumers(self) -> dict[str, int] | None:
        """Unacknowledged messages per queue name, from the management API; None without it."""
        url = f"{self.management_url}/api/queues/{quote(self.vhost, safe='')}"
        credentials = self.parameters.credentials
        try:
            response = requests.get(
                url,
                params={"columns": "name,messages_unacknowledged"},
                auth=(credentials.username, credentials.password),
                timeout=self.timeout_s,
            )
            response.raise_for_status()
            return {q["name"]: int(q.get("messages_unacknowledged") or 0) for q in response.json()}
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None


def declare(channel: BlockingChannel, queue: str) -> tuple[int, int, int]:
    """Declare ``queue`` as Dramatiq does (a no-op when it exists) and return the ready counts
    of it, its delay queue and its dead-letter queue."""
    counts = []
    for name, arguments in (
        (queue, queue_arguments(queue)),
        (delay_queue(queue), queue_arguments(queue)),
        (dead_queue(queue), {"x-message-ttl": DEAD_MESSAGE_TTL}),
    ):
        result = channel.queue_declare(queue=name, durable=True, arguments=arguments)
        counts.append(int(result.method.message_count))
    return counts[0], counts[1], counts[2]


def identify(body: bytes, properties: pika.BasicProperties) -> tuple[str, int]:
    """A dead letter's id (its per-enqueue id, else a digest of the body) and its score, the
    time RabbitMQ dead-lettered it (``x-death``), in milliseconds."""
    entry_id = None
    try:
        entry_id = dramatiq.Message.decode(body).options.get(MESSAGE_ID_OPTION)
    except DecodeError:
        pass
    entry_id = entry_id or hashlib.sha256(body).hexdigest()[:32]
    score = now_ms()
    deaths = (properties.headers or {}).get("x-death") or []
    died_at = deaths[0].get("time") if deaths else None
    if isinstance(died_at, datetime):  # pika decodes AMQP timestamps as naive UTC
        score = calendar.timegm(died_at.utctimetuple()) * 1000
    return str(entry_id), score


def connection_parameters(url: str, timeout_s: float) -> pika.URLParameters:
    """The URL's parameters, every wait bounded by ``timeout_s``: one attempt, no retry."""
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = timeout_s
    parameters.stack_timeout = timeout_s
    parameters.blocked_connection_timeout = timeout_s
    return parameters


def derived_management_url(url: str) -> str:
    """``http://<broker host>:15672``: the management API beside the AMQP listener."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "amqps" else "http"
    return urlunsplit((scheme, f"{parts.hostname or 'localhost'}:{MANAGEMENT_PORT}", "", "", ""))
