"""Dead-lettered messages, read, retried and deleted in Dramatiq's own Redis layout.

Dramatiq 2.x's RedisBroker (``dramatiq/brokers/redis/dispatch.lua``, command ``nack``) moves a
message it gives up on out of ``<ns>:<queue>.msgs`` into:

- ``<ns>:<queue>.XQ``: a sorted set of the broker's per-enqueue ids (the message's
  ``redis_message_id`` option), scored by the dead-letter time in milliseconds;
- ``<ns>:<queue>.XQ.msgs``: a hash of those ids to the encoded message.

The stored body is the one enqueued for the last attempt: its ``retries`` option is the number
of retries used, but its ``traceback`` (written by the Retries middleware) is the *previous*
attempt's, and there is none when the message failed on its first attempt. So the worker
records the final error itself, on nack (``QueueStatsMiddleware``), under
``switchboard:dead-letter:<id>``, expiring with the broker's dead-message TTL.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
import redis
from dramatiq.errors import DecodeError

from libs.common.contracts import ActorContract, ContractError, check_arguments
from libs.common.status import DRAMATIQ_NAMESPACE

#: The final error of one dead-lettered message, written by the worker.
ERROR_KEY = "switchboard:dead-letter:{id}"

#: Options that belong to one delivery attempt; a retried message starts without them.
ATTEMPT_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "eta", "redis_message_id"}
)

MAX_ERROR_CHARS = 1_000
MAX_TRACEBACK_CHARS = 20_000
_BATCH = 200


def xq_key(queue: str) -> str:
    return f"{DRAMATIQ_NAMESPACE}:{queue}.XQ"


def xq_messages_key(queue: str) -> str:
    return f"{DRAMATIQ_NAMESPACE}:{queue}.XQ.msgs"


def error_key(dead_letter_id: str) -> str:
    return ERROR_KEY.format(id=dead_letter_id)


# Both scripts start by removing the id from the dead-letter set: of two concurrent calls only
# the one whose ZREM removed it goes on, so a message is re-enqueued (or deleted) exactly once,
# and the removal and the enqueue cannot be separated by a crash.
# KEYS: XQ, XQ.msgs, error record, target queue, target queue's .msgs
# ARGV: dead-letter id, new broker id, new encoded message
_RETRY_LUA = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("del", KEYS[3])
redis.call("hset", KEYS[5], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[4], ARGV[2])
return 1
"""

# KEYS: XQ, XQ.msgs, error record. ARGV: dead-letter id
_DELETE_LUA = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("del", KEYS[3])
return 1
"""


@dataclass(frozen=True, order=True)
class Position:
    """Where an entry sits in the listing (newest first); also the page cursor."""

    dead_lettered_ms: int
    queue: str
    id: str

    def encode(self) -> str:
        return f"{self.dead_lettered_ms}:{self.queue}:{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Position:
        """Raises ValueError for anything ``encode`` did not produce."""
        score, queue, entry_id = raw.split(":", 2)
        if not score.isdigit() or not queue or not entry_id:
            raise ValueError(raw)
        return cls(int(score), queue, entry_id)


@dataclass(frozen=True)
class DeadLetter:
    position: Position
    #: None when the stored body cannot be decoded (it is still listed, so it can be deleted).
    message: dramatiq.Message[Any] | None
    error: str | None
    traceback: str | None

    @property
    def id(self) -> str:
        return self.position.id

    @property
    def queue(self) -> str:
        return self.position.queue

    @property
    def actor(self) -> str | None:
        return self.message.actor_name if self.message else None

    def problem(self, contracts: Mapping[str, ActorContract]) -> str | None:
        """Why this message must not be retried, or None when it may."""
        if self.message is None:
            return "the stored message cannot be decoded"
        contract = contracts.get(self.message.actor_name)
        if contract is None:
            return (
                f"no contract named {self.message.actor_name!r} exists any more: "
                "no worker would run it"
            )
        try:
            check_arguments(contract, self.message.kwargs)
        except ContractError as exc:
            return f"its arguments no longer match the contract: {exc}"
        return None

    def to_dict(self, contracts: Mapping[str, ActorContract]) -> dict[str, Any]:
        message = self.message
        options = message.options if message else {}
        problem = self.problem(contracts)
        return {
            "id": self.id,
            "message_id": message.message_id if message else None,
            "queue": self.queue,
            "actor": self.actor,
            "args": list(message.args) if message else [],
            "kwargs": dict(message.kwargs) if message else {},
            "error": self.error,
            "traceback": self.traceback,
            "retries": int(options.get("retries") or 0),
            "dead_lettered_at": _iso(self.position.dead_lettered_ms),
            "enqueued_at": _iso(message.message_timestamp) if message else None,
            "request_id": options.get("request_id"),
            "retryable": problem is None,
            "reason": problem,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


# --- the worker's side --------------------------------------------------------------------


def record_error(
    pipe: Any, dead_letter_id: str, exception: BaseException | None, traceback_text: str | None,
    ttl_ms: int,
) -> None:  # fmt: skip
    """Queue the write of a dead-lettered message's final error on ``pipe``."""
    error = f"{type(exception).__name__}: {exception}" if exception is not None else None
    record = {
        "error": error[:MAX_ERROR_CHARS] if error else None,
        "traceback": traceback_text[-MAX_TRACEBACK_CHARS:] if traceback_text else None,
    }
    pipe.set(error_key(dead_letter_id), json.dumps(record), px=ttl_ms)


# --- reading ------------------------------------------------------------------------------


def dead_lettered_counts(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zcard(xq_key(queue))
    return dict(zip(queues, pipe.execute(), strict=True))


def page(
    client: redis.Redis,
    queues: Sequence[str],
    *,
    actor: str | None,
    limit: int,
    after: Position | None = None,
) -> tuple[list[DeadLetter], Position | None]:
    """Up to ``limit`` entries older than ``after``, newest first, and the next page's cursor.

    The actor is inside each body, so an actor filter reads bodies until the page is full (or
    the sets end); the sets hold at most the broker's dead-message TTL (7 days) of failures.
    """
    merged = heapq.merge(*(_positions(client, queue, after) for queue in queues), reverse=True)
    batch_size = _BATCH if actor else limit + 1
    found: list[DeadLetter] = []
    for batch in _batched(merged, batch_size):
        for entry in _load(client, batch):
            if actor is None or entry.actor == actor:
                found.append(entry)
                if len(found) > limit:
                    return found[:limit], found[limit - 1].position
    return found, None


def find(client: redis.Redis, dead_letter_id: str, queues: Sequence[str]) -> DeadLetter | None:
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zscore(xq_key(queue), dead_letter_id)
    for queue, score in zip(queues, pipe.execute(), strict=True):
        if score is not None:
            loaded = _load(client, [Position(int(score), queue, dead_letter_id)])
            return loaded[0] if loaded else None
    return None


def _positions(client: redis.Redis, queue: str, after: Position | None) -> Iterator[Position]:
    """One queue's entries, newest first, lazily, in chunks."""
    key = xq_key(queue)
    top: float | str = "+inf" if after is None else after.dead_lettered_ms
    offset = 0
    while True:
        rows = _scored(
            client.zrevrangebyscore(key, top, "-inf", start=offset, num=_BATCH, withscores=True)
        )
        offset += len(rows)
        for member, score in rows:
            position = Position(int(score), queue, member.decode())
            # Ties on the cursor's millisecond: only what sorts strictly after the cursor.
            if after is None or position < after:
                yield position
        if len(rows) < _BATCH:
            return


def _scored(reply: Any) -> list[tuple[bytes, float]]:
    """A sorted-set reply read WITHSCORES (redis-py types it loosely)."""
    return cast(list[tuple[bytes, float]], reply)


def _batched(items: Iterable[Position], size: int) -> Iterator[list[Position]]:
    batch: list[Position] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _load(client: redis.Redis, positions: Sequence[Position]) -> list[DeadLetter]:
    """Bodies and error records of ``positions``, in one round trip; vanished ones dropped."""
    pipe = client.pipeline(transaction=False)
    for position in positions:
        pipe.hget(xq_messages_key(position.queue), position.id)
        pipe.get(error_key(position.id))
    replies = pipe.execute()
    entries = []
    for i, position in enumerate(positions):
        body, record = replies[2 * i], replies[2 * i + 1]
        if body is None:  # retried or deleted since the set was read
            continue
        entries.append(_entry(position, body, record))
    return entries


def _entry(position: Position, body: bytes, record: bytes | None) -> DeadLetter:
    try:
        message: dramatiq.Message[Any] | None = dramatiq.Message.decode(body)
    except DecodeError:
        message = None
    error = traceback_text = None
    if record is not None:
        try:
            stored = json.loads(record)
            error, traceback_text = stored.get("error"), stored.get("traceback")
        except (ValueError, AttributeError):
            pass  # a damaged record: fall back to what the body holds
    if error is None and message is not None:
        # No record (written before this existed, or Redis failed the worker's write): the
        # body's traceback is the previous attempt's, the best there is.
        traceback_text = traceback_text or message.options.get("traceback")
        if traceback_text:
            lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
            error = lines[-1][:MAX_ERROR_CHARS] if lines else None
    return DeadLetter(position, message, error, traceback_text)


# --- changing ---------------------------------------------------------------------------


def retry(client: redis.Redis, entry: DeadLetter, contract: ActorContract) -> bool:
    """Move ``entry`` back onto its contract's queue; False when it was no longer there."""
    return bool(_run_retry(client, entry, contract))


def delete(client: redis.Redis, entry: DeadLetter) -> bool:
    script = client.register_script(_DELETE_LUA)
    keys = [xq_key(entry.queue), xq_messages_key(entry.queue), error_key(entry.id)]
    return bool(script(keys=keys, args=[entry.id]))


@dataclass
class BulkRetry:
    retried: int = 0
    #: Matching entries left in place, each with the reason.
    skipped: list[tuple[DeadLetter, str]] = dataclasses.field(default_factory=list)


def retry_matching(
    client: redis.Redis,
    queues: Sequence[str],
    *,
    actor: str | None,
    contracts: Mapping[str, ActorContract],
) -> BulkRetry:
    """Retry every entry dead-lettered so far in ``queues`` (of ``actor``, when given).

    The ids are read first, so a message that fails again during the run is not retried twice.
    """
    result = BulkRetry()
    snapshot = [
        Position(int(score), queue, member.decode())
        for queue in queues
        for member, score in _scored(client.zrange(xq_key(queue), 0, -1, withscores=True))
    ]
    for batch in _batched(snapshot, _BATCH):
        pipe = client.pipeline(transaction=False)
        queued = 0
        for entry in _load(client, batch):
            if actor is not None and entry.actor != actor:
                continue
            problem = entry.problem(contracts)
            if problem is not None or entry.message is None:
                result.skipped.append((entry, problem or "the stored message cannot be decoded"))
                continue
            _run_retry(pipe, entry, contracts[entry.message.actor_name])
            queued += 1
        if queued:
            result.retried += sum(int(done) for done in pipe.execute())
    return result


def _run_retry(client: redis.Redis, entry: DeadLetter, contract: ActorContract) -> Any:
    """Run the retry script for ``entry`` (on a pipeline: queue it)."""
    if entry.message is None:
        raise ValueError("an undecodable message cannot be retried")
    new_id = str(uuid.uuid4())
    # Same id, timestamp, arguments and request id; the attempt options go, so the Retries
    # middleware gives it the actor's whole retry budget again. It goes to the contract's queue
    # (the one the workers consume for this actor), without the delay-queue eta.
    options = {k: v for k, v in entry.message.options.items() if k not in ATTEMPT_OPTIONS}
    options["redis_message_id"] = new_id
    fresh = dataclasses.replace(entry.message, queue_name=contract.queue, options=options)
    keys = [
        xq_key(entry.queue),
        xq_messages_key(entry.queue),
        error_key(entry.id),
        f"{DRAMATIQ_NAMESPACE}:{contract.queue}",
        f"{DRAMATIQ_NAMESPACE}:{contract.queue}.msgs",
    ]
    # On a pipeline, redis-py loads the script into the server before the pipeline executes.
    return client.register_script(_RETRY_LUA)(keys=keys, args=[entry.id, new_id, fresh.encode()])
