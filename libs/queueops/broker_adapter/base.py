"""What every broker adapter answers: the broker's side of status, metrics and the failed-jobs
console, with the same meaning on every broker.

Only ``libs/queueops/broker_adapter/`` knows how a broker stores messages; everything else asks
an adapter (a test fails if another module names a broker key or queue suffix).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import redis

from libs.common.contracts import ActorContract
from libs.queueops import dead_letters, throughput
from libs.queueops.broker_adapter.errors import unavailable
from libs.queueops.dead_letters import BulkRetry, DeadLetter, Position

#: Dead letters read and retried per round trip by a bulk retry.
BATCH = 200


@dataclass(frozen=True)
class QueueDepth:
    """Messages of one queue by state, counted the same way on every broker."""

    #: Waiting to be fetched by a worker.
    ready: int
    #: Fetched by a worker (prefetched or running) and not yet acknowledged; None when the
    #: broker cannot tell (RabbitMQ without its management API).
    in_progress: int | None
    #: Waiting for their time (retries' backoff, delayed sends), also those a worker holds.
    delayed: int
    #: Given up on (retries used up): the failed-jobs console's messages.
    dead: int

    def to_dict(self) -> dict[str, int | None]:
        return {
            "ready": self.ready,
            "in_progress": self.in_progress,
            "delayed": self.delayed,
            "dead": self.dead,
        }


class BrokerAdapter(abc.ABC):
    """One broker's messages, read and changed without knowing its layout.

    Methods raise ``QueueUnavailable`` when the broker (or the coordination Redis, for what is
    kept there) does not answer in time; they never hang.
    """

    #: ``redis`` or ``rabbitmq``.
    kind: str

    def __init__(self, coordination: redis.Redis) -> None:
        #: Where throughput counters and dead letters' final errors live, on every broker.
        self.coordination = coordination

    @abc.abstractmethod
    def ping(self) -> float:
        """The broker's round-trip time in milliseconds; raises ``QueueUnavailable``."""

    @abc.abstractmethod
    def depths(self, queues: Sequence[str]) -> dict[str, QueueDepth]:
        """Every queue's depth, read in as few round trips as the broker allows."""

    @abc.abstractmethod
    def dead_letters(
        self, queues: Sequence[str], *, actor: str | None, limit: int, after: Position | None
    ) -> tuple[list[DeadLetter], Position | None]:
        """Up to ``limit`` dead letters older than ``after``, newest first, and the next
        page's cursor (None on the last page)."""

    @abc.abstractmethod
    def find(self, dead_letter_id: str, queues: Sequence[str]) -> DeadLetter | None:
        """One dead letter by id (inspect), or None when it is gone."""

    @abc.abstractmethod
    def retry(self, entry: DeadLetter, contract: ActorContract) -> bool:
        """Put ``entry`` back on its contract's queue with a fresh retry budget, once: of
        concurrent calls one returns True, the others False (it was no longer there)."""

    @abc.abstractmethod
    def delete(self, entry: DeadLetter) -> bool:
        """Drop ``entry`` for good; False when it was no longer there."""

    @abc.abstractmethod
    def purge(self, queue: str) -> None:
        """Drop every message of ``queue``: ready, delayed and dead-lettered."""

    @abc.abstractmethod
    def dead_letter_positions(self, queues: Sequence[str]) -> list[Position]:
        """Every dead letter's position, read once (a bulk retry's snapshot)."""

    @abc.abstractmethod
    def load(self, positions: Sequence[Position]) -> list[DeadLetter]:
        """The entries at ``positions``; those gone since are left out."""

    def close(self) -> None:  # noqa: B027 (most adapters hold nothing to release)
        """Release connections (a no-op where there are none to release)."""

    # --- the same on every broker ---------------------------------------------------------

    def throughput(
        self, queues: Sequence[str], now: float | None = None
    ) -> dict[str, dict[str, dict[str, int]]]:
        """Processed and failed messages per queue over the last 1, 5 and 15 minutes, as the
        workers counted them in the coordination Redis (``libs/queueops/throughput.py``)."""
        try:
            return throughput.read(self.coordination, queues, now)
        except (redis.RedisError, OSError) as exc:
            raise unavailable(exc) from exc

    def retry_matching(
        self,
        queues: Sequence[str],
        *,
        actor: str | None,
        contracts: Mapping[str, ActorContract],
    ) -> BulkRetry:
        """Retry every entry dead-lettered so far in ``queues`` (of ``actor``, when given).

        The positions are read first, so a message that fails again during the run is not
        retried twice.
        """
        result = BulkRetry()
        for batch in _batched(self.dead_letter_positions(queues), BATCH):
            for entry in self.load(batch):
                if actor is not None and entry.actor != actor:
                    continue
                problem = entry.problem(contracts)
                if problem is not None or entry.message is None:
                    reason = problem or "the stored message cannot be decoded"
                    result.skipped.append((entry, reason))
                    continue
                if self.retry(entry, contracts[entry.message.actor_name]):
                    result.retried += 1
        return result


def _batched(items: Sequence[Position], size: int) -> Iterator[Sequence[Position]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["BrokerAdapter", "DeadLetter", "Position", "QueueDepth", "dead_letters"]
