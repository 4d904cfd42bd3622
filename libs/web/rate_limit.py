"""A fixed-window request limit in Redis, shared by every api process.

Fixed windows are coarse (up to twice the limit across a window edge) but need one INCR per
request and no clock agreement between processes: enough for manual actions like triggers.
"""

from __future__ import annotations

import math
import time

import redis

from libs.queueops.queue_health import QueueUnavailable
from libs.web.errors import ApiError

KEY = "switchboard:ratelimit:{name}:{caller}:{window}"


def enforce(
    client: redis.Redis,
    name: str,
    caller: str,
    limit: int,
    window_s: int = 60,
    now: float | None = None,
) -> None:
    """Count one request; raise 429 with Retry-After past ``limit`` per window."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    key = KEY.format(name=name, caller=caller, window=window)
    try:
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, window_s * 2)
        count = int(pipe.execute()[0])
    except (redis.RedisError, OSError) as exc:
        raise QueueUnavailable(
            f"the job queue is unreachable ({type(exc).__name__}); nothing was done"
        ) from exc
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * window_s - now))
        raise ApiError(
            429,
            "rate_limited",
            f"at most {limit} requests per {window_s} s; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
