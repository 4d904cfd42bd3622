"""Dead-lettered messages: what one is, why it may not be retried, and its final error.

Where a broker keeps them is the broker adapter's business (``libs/queueops/broker_adapter/``);
this module holds what is the same on every broker. The stored body is the one enqueued for
the last attempt: its ``retries`` option is the number of retries used, but its ``traceback``
(written by the Retries middleware) is the *previous* attempt's, and there is none when the
message failed on its first attempt. So the worker records the final error itself, on nack
(``QueueStatsMiddleware``), in the coordination Redis under ``switchboard:dead-letter:<id>``,
expiring with the broker's dead-message TTL.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.errors import DecodeError

from libs.common.contracts import ActorContract, ContractError, check_arguments

#: The final error of one dead-lettered message, written by the worker.
ERROR_KEY = "switchboard:dead-letter:{id}"

#: Options that belong to one delivery attempt; a retried message starts without them.
ATTEMPT_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "eta", "redis_message_id", "broker_message_id"}
)

MAX_ERROR_CHARS = 1_000
MAX_TRACEBACK_CHARS = 20_000


def error_key(dead_letter_id: str) -> str:
    return ERROR_KEY.format(id=dead_letter_id)


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


def dead_letter_id(message: dramatiq.Message[Any]) -> str | None:
    """The id a broker gave this enqueue of ``message`` (each broker adapter sets one)."""
    value = message.options.get("redis_message_id") or message.options.get("broker_message_id")
    return str(value) if value else None


def entry(position: Position, body: bytes, record: bytes | None) -> DeadLetter:
    """A dead letter from its stored body and the worker's error record (either may be bad)."""
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


@dataclass
class BulkRetry:
    retried: int = 0
    #: Matching entries left in place, each with the reason.
    skipped: list[tuple[DeadLetter, str]] = dataclasses.field(default_factory=list)


def fresh_message(
    entry: DeadLetter, contract: ActorContract, **broker_options: Any
) -> dramatiq.Message[Any]:
    """The message a retry enqueues: same id, timestamp, arguments and request id; the attempt
    options go, so the Retries middleware gives it the actor's whole retry budget again. It
    goes to the contract's queue (the one the workers consume for this actor), without the
    delay-queue eta."""
    if entry.message is None:
        raise ValueError("an undecodable message cannot be retried")
    options = {k: v for k, v in entry.message.options.items() if k not in ATTEMPT_OPTIONS}
    options.update(broker_options)
    return dataclasses.replace(entry.message, queue_name=contract.queue, options=options)
