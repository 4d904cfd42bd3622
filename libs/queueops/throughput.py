"""Messages processed and failed per queue and minute, counted by the workers in Redis.

Dramatiq's Prometheus metrics stay in each worker host's files; the operations API needs one
answer across every worker and host, so each worker also adds its counts to one small Redis
hash per queue and minute. Buckets expire on their own, so nothing has to clean them up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis

#: One hash per queue and minute (Unix minute), fields ``processed`` and ``failed``.
KEY = "switchboard:throughput:{queue}:{minute}"

#: A bucket lives long enough to serve the longest window, plus margin for clock skew.
BUCKET_TTL_S = 20 * 60

#: The windows the API reports, in minutes.
WINDOWS_MIN = (1, 5, 15)

FIELDS = ("processed", "failed")


def minute_of(ts: float) -> int:
    return int(ts // 60)


def bucket_key(queue: str, minute: int) -> str:
    return KEY.format(queue=queue, minute=minute)


def record(pipe: Any, queue: str, *, failed: bool, now: float) -> None:
    """Queue the commands counting one processed message on ``pipe`` (the caller executes it).

    ``processed`` counts every attempt that ran to an end, ``failed`` those that raised.
    """
    add(pipe, queue, minute_of(now), processed=1, failed=int(failed))


def add(pipe: Any, queue: str, minute: int, *, processed: int, failed: int) -> None:
    """Queue the commands adding counts to one queue's bucket for ``minute`` on ``pipe``."""
    key = bucket_key(queue, minute)
    pipe.hincrby(key, "processed", processed)
    if failed:
        pipe.hincrby(key, "failed", failed)
    pipe.expire(key, BUCKET_TTL_S)


def read(
    client: redis.Redis, queues: Iterable[str], now: float | None = None
) -> dict[str, dict[str, dict[str, int]]]:
    """``{queue: {"processed": {"1m": n, "5m": n, "15m": n}, "failed": {...}}}``.

    A window of N minutes sums the current (partial) minute, the N-1 full minutes before it, and
    the share of the minute before those that still falls inside the window: a sliding estimate,
    so a "last minute" read just after the minute turns is not an empty bucket.
    """
    now = time.time() if now is None else now
    current = minute_of(now)
    oldest = current - max(WINDOWS_MIN)
    minutes = range(oldest, current + 1)
    queue_list = list(queues)
    pipe = client.pipeline(transaction=False)
    for queue in queue_list:
        for minute in minutes:
            pipe.hmget(bucket_key(queue, minute), *FIELDS)
    rows = iter(pipe.execute())
    elapsed_share = (now % 60) / 60
    report: dict[str, dict[str, dict[str, int]]] = {}
    for queue in queue_list:
        buckets = {minute: _ints(next(rows)) for minute in minutes}
        report[queue] = {
            field: {
                f"{window}m": round(_window(buckets, current, window, i, elapsed_share))
                for window in WINDOWS_MIN
            }
            for i, field in enumerate(FIELDS)
        }
    return report


def _ints(values: list[bytes | None]) -> list[int]:
    return [int(v) if v is not None else 0 for v in values]


def _window(
    buckets: dict[int, list[int]], current: int, window: int, field: int, elapsed_share: float
) -> float:
    whole = sum(buckets[m][field] for m in range(current - window + 1, current + 1))
    return whole + buckets[current - window][field] * (1 - elapsed_share)
